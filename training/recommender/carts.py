"""How much the bought-alike view weighs in an anonymous cart's suggestions, chosen per shop on the
hold-out (`recsvc.version.carts`; the version's `cart_alike_weight`).

Each evaluated customer's latest `CART_PRODUCTS` distinct products before the cut-off are a cart,
asked of the hold-out model as the service would ask a stranger's (the customer never stands in
for themself), and what they bought after the cut-off, outside the cart, is the truth. Each of
`ALIKE_WEIGHTS` is scored by NDCG@k on the first `MAX_CUSTOMERS` evaluated customers; the best
wins, ties to the lighter weight. Why per shop: fusing the two views ranked at 1.12x the model
alone on Online Retail and 0.91x on the demo shop (`bench/bench_cart.py`).
"""

from __future__ import annotations

from typing import Final

import msgspec
import numpy as np

from recsvc.version.carts import cart_vector, fused_scores, listed_alike_sums
from recsvc.version.neighbours import PLAIN_ALIKE, AlikeParams, item_buyers
from recsvc.version.scoring import ModelArrays, Purchases, score_items, top_rows
from training.recommender.metrics import item_sets, ndcg_per_user
from training.recommender.similar import similar_lists

CART_PRODUCTS: Final = 50
ALIKE_WEIGHTS: Final = (0.0, 0.5, 1.0)
MAX_CUSTOMERS: Final = 1_000
# Neighbours per product in the hold-out's lists when the version is written without them (its
# service then sums the first 10 cart products' shares live: close to the lists' sums, not equal).
_LIST_LENGTH: Final = 100


class CartFusion(msgspec.Struct, frozen=True, kw_only=True):
    """The choice and what it rested on."""

    weight: float  # the version's cart_alike_weight
    ndcg: dict[str, float]  # NDCG@k of each weight tried ("0", "0.5", "1")
    customers: int  # evaluated carts


def tune_cart_fusion(
    model: ModelArrays,
    train: Purchases,
    users: np.ndarray,
    truth: list[np.ndarray],
    *,
    k: int,
    list_length: int,
    params: AlikeParams = PLAIN_ALIKE,
) -> CartFusion | None:
    """Choose the weight (see the module's docstring) for the customers `users` (rows of `train`)
    with their held-out products `truth`, on neighbour lists ranked with `params` (the version's);
    None when none has both a cart and a truth left."""
    users, truth = users[:MAX_CUSTOMERS], truth[:MAX_CUSTOMERS]
    if not users.size or not train.items.size:
        return None
    last_day = int(np.asarray(train.last_day).max())
    lists = similar_lists(model, last_day, list_length or _LIST_LENGTH, params, show_progress=False)
    buyers = item_buyers(train, model.n_items)

    tops: dict[float, list[np.ndarray]] = {w: [] for w in ALIKE_WEIGHTS}
    truths: list[np.ndarray] = []
    for user, bought_after in zip(users.tolist(), truth, strict=True):
        cart = _cart(train, user)
        wanted = np.setdiff1d(bought_after, cart)
        vector = cart_vector(model, buyers, cart, leave_out=user)
        if vector is None or not wanted.size:
            continue
        truths.append(wanted)
        by_model = score_items(model, vector)
        alike = listed_alike_sums(lists, cart, model.n_items)
        for weight in ALIKE_WEIGHTS:
            if weight and alike.any():
                scores = fused_scores(by_model, alike, cart, weight)
            else:
                scores = by_model.astype(np.float64)
            scores[cart] = -np.inf
            tops[weight].append(top_rows(scores[None, :], k)[0][0])
    if not truths:
        return None
    truth_matrix = item_sets(truths, model.n_items)
    ndcg = {w: float(ndcg_per_user(np.stack(tops[w]), truth_matrix).mean()) for w in ALIKE_WEIGHTS}
    best = max(ALIKE_WEIGHTS, key=lambda w: (ndcg[w], -w))
    return CartFusion(
        weight=best,
        ndcg={f"{w:g}": round(v, 6) for w, v in ndcg.items()},
        customers=len(truths),
    )


def _cart(train: Purchases, user: int) -> np.ndarray:
    """The customer's latest `CART_PRODUCTS` distinct products (sorted item indices)."""
    span = train.row(user)
    items, days = np.asarray(train.items[span]), np.asarray(train.last_day[span])
    latest = np.argsort(-days, kind="stable")[:CART_PRODUCTS]
    return np.sort(items[latest]).astype(np.int32)
