"""An anonymous cart's scores over the catalogue. Both sides use these pieces: the service to
answer `POST /v1/recommendations` (`recsvc.service.cart`), the training job to choose, on its
hold-out, how much the bought-alike view weighs (`training.recommender.carts`).

Two views of a cart (sorted item indices):

1. **The model** (`cart_vector`): the `NEIGHBOURS` known customers whose purchase histories share
   the most products with the cart, their model vectors averaged (weighted by how many cart
   products each bought). In a blend, the EASE half of the vector is EASE's own answer to the
   cart (the sum of the cart's input rows). The neighbours are sought among the buyers of the
   cart's products, at most about `CART_BUYERS_READ` of them (`cart_buyers`).
2. **Bought alike** (`listed_alike_sums`): for each cart product, the share of its buyers who also
   bought each other product (recency-weighted, as a product page ranks them), summed over the
   cart, from the version's neighbour lists.

They are fused by their ranks (`fused_scores`, reciprocal rank fusion: Cormack, Clarke and
Buettcher 2009): an item scores 1 / (`FUSION_K` + its rank by the model) plus `alike_weight` /
(`FUSION_K` + its rank by bought-alike), within each ranking's first `FUSION_DEPTH`; the rest keep
the model's order below them. The weight is chosen per shop by the training run (the version's
`cart_alike_weight`; 0: the model alone).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from recsvc.version.neighbours import BOUGHT_ALIKE_CODE, SimilarLists
from recsvc.version.scoring import ModelArrays, known_customer_vectors

# Customers whose purchases stand in for the shopper. 20 and 100 ranked alike on the demo shop
# (1.02x and 0.98x the known-customer path): a guess about other shops, not a tuned value.
NEIGHBOURS: Final = 20
# The fusion's constant and depth: 60 is the paper's, not tuned here; a page needs far fewer
# than 200 items, and past them the model's order is kept.
FUSION_K: Final = 60
FUSION_DEPTH: Final = 200
# Buyer rows one cart reads at most (about) to find its neighbours: what bounds a request of many
# best-sellers on a large shop (at a million customers, 50 best-sellers read 990,000 rows and took
# 18 ms, 200 took 39 ms; `bench/bench_cart.py --serving`). Past it, the neighbours are sought
# among the customers below one row bound, the same customers for every product of the cart, so
# that each one's overlap with the cart is counted whole: a sample of the shop's customers (rows
# are in customer id order), not the first buyers of each product.
CART_BUYERS_READ: Final = 100_000
# Buyer rows sampled (evenly along each product's buyers) to place that bound.
_BOUND_SAMPLE: Final = 10_000


def cart_vector(
    arrays: ModelArrays,
    buyers: tuple[np.ndarray, np.ndarray],
    cart: np.ndarray,
    *,
    leave_out: int | None = None,
) -> np.ndarray | None:
    """The model's view of the cart: a user vector, or None when the cart tells the model nothing.
    `buyers`: who bought each item (`neighbours.item_buyers`); `leave_out`: a customer row never
    taken as a neighbour (the training job's hold-out customer, whose own cart it is)."""
    vector = _neighbour_vector(arrays, buyers, cart, leave_out)
    inputs = arrays.item_input_vectors
    if inputs is not None and cart.size:
        ease_part = inputs[cart].sum(axis=0)
        if vector is None:
            vector = np.zeros(arrays.item_vectors.shape[1], dtype=np.float32)
        vector = vector.copy()
        vector[arrays.lightfm_dims :] = ease_part
        if not vector.any():
            vector = None
    return vector


def cart_buyers(
    buyers: tuple[np.ndarray, np.ndarray], cart: np.ndarray, budget: int = CART_BUYERS_READ
) -> np.ndarray:
    """The customer rows who bought each of the cart's products, one after another (int32): all
    of them when they number at most `budget`, otherwise those of the customers below one row
    bound placed so that about `budget` are read (see `CART_BUYERS_READ`)."""
    indptr, rows = buyers
    spans = [rows[indptr[i] : indptr[i + 1]] for i in cart.tolist()]
    total = sum(span.size for span in spans)
    if total > budget:
        # Every stride-th buyer of each product: an even sample of the rows the cart would read,
        # whose budget/total quantile is the bound (each product's buyers are in row order).
        stride = max(1, total // _BOUND_SAMPLE)
        sample = np.concatenate([span[::stride] for span in spans])
        quantile = sample.size * budget // total
        bound = np.partition(sample, quantile)[quantile]
        spans = [span[: np.searchsorted(span, bound)] for span in spans]
    together: np.ndarray = (
        np.concatenate(spans).astype(np.int32, copy=False) if spans else np.zeros(0, np.int32)
    )
    return together


def _neighbour_vector(
    arrays: ModelArrays,
    buyers: tuple[np.ndarray, np.ndarray],
    cart: np.ndarray,
    leave_out: int | None,
) -> np.ndarray | None:
    """The overlap-weighted mean vector of the customers who bought most of the cart, or None."""
    if not cart.size:
        return None
    together = cart_buyers(buyers, cart)
    if leave_out is not None:
        together = together[together != leave_out]
    if not together.size:
        return None
    customers, overlap = np.unique(together, return_counts=True)
    if customers.size > NEIGHBOURS:
        best = np.argpartition(-overlap, NEIGHBOURS)[:NEIGHBOURS]
        customers, overlap = customers[best], overlap[best]
    vectors = known_customer_vectors(arrays, customers.astype(np.int64))
    weights = overlap.astype(np.float32) / np.float32(overlap.sum())
    vector: np.ndarray = (weights @ vectors).astype(np.float32)
    return vector


def listed_alike_sums(lists: SimilarLists, cart: np.ndarray, n_items: int) -> np.ndarray:
    """Per item (float64), the summed bought-alike shares of the cart's products, from their
    neighbour lists (a listed bought-alike score is 1 plus the share); 0 on the cart itself."""
    items = np.asarray(lists.items[cart]).ravel()
    alike = np.asarray(lists.reasons[cart]).ravel() == BOUGHT_ALIKE_CODE
    shares = np.asarray(lists.scores[cart]).ravel()[alike].astype(np.float64) - 1.0
    sums = np.bincount(items[alike], weights=shares, minlength=n_items)
    sums[cart] = 0.0
    return sums


def fused_scores(
    model_scores: np.ndarray, alike: np.ndarray, cart: np.ndarray, alike_weight: float
) -> np.ndarray:
    """The whole catalogue's scores (float64): the model's and the bought-alike ranks fused (see
    the module's docstring); the cart ranks in neither."""
    model_scores = model_scores.astype(np.float64)
    rest = np.ones(model_scores.size, dtype=bool)
    rest[cart] = False
    if not rest.any():
        return model_scores
    low, high = float(model_scores[rest].min()), float(model_scores[rest].max())
    # Below every fused rank (1 / (FUSION_K + FUSION_DEPTH) > 1e-3), in the model's order.
    fused = (np.where(rest, model_scores, low) - low) / max(high - low, 1e-12) * 1e-6
    model_scores[cart] = -np.inf  # after every other item
    depth = min(FUSION_DEPTH, int(rest.sum()))
    top = np.argpartition(-model_scores, depth - 1)[:depth]
    top = top[np.argsort(-model_scores[top], kind="stable")]
    fused[top] += 1.0 / (FUSION_K + np.arange(top.size))
    listed = np.flatnonzero(alike)
    listed = listed[np.argsort(-alike[listed], kind="stable")][:FUSION_DEPTH]
    fused[listed] += alike_weight / (FUSION_K + np.arange(listed.size))
    return fused
