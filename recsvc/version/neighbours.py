"""Products like a given one: how a neighbour is scored and ranked, and the neighbour lists a
version may carry. Both sides use these pieces: the training job to precompute every product's
list when it writes a version, the service to compute one product's neighbours live.

Bought alike: the other products of the customers who bought this one, each purchase weighted by
its recency (half-life `HALF_LIFE_DAYS` before the version's last purchase day, `trained_until_day`:
the version's data, not the request's clock, so a list written with the version and a live answer
agree). The share of a neighbour: the product's buyers who also bought it, each buyer counted
1 / (products they bought) ** `AlikeParams.buyer_power` (so that a wholesaler who bought half
the catalogue does not outvote everyone), over all of them counted so. The score is 1 plus the
share times the neighbour's `trend_lift` (1 + `AlikeParams.trend_weight` x its buyers in the
last `RECENT_DAYS` relative to the best-seller's): what sells now. Both settings are chosen per
shop on the hold-out (`training.recommender.similar.tune_alike`); 0 and 0 (older versions) is the
plain share. Similar attributes: cosine similarity of the model's item vectors, mapped to 0..1.
Scores are float32 on both sides and ranked best first, ties by catalogue order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from recsvc.version.scoring import Purchases

# A co-purchase this many days before the version's last day counts half. 30 ranked between 14 and
# 90 days on both shops measured (demo 1.31x popularity against 1.24-1.38x, Online Retail 1.12x
# against 1.03-1.12x): a guess about other shops, not a tuned value.
HALF_LIFE_DAYS: Final = 30.0
# Buyers of a product counted at most (the first ones in customer order): what a product page (and
# a cart's live bought-alike view, per product) reads for a product everybody buys; the lists count
# the same buyers. A cart's search for neighbours has its own bound (`carts.CART_BUYERS_READ`).
BUYERS_READ: Final = 20_000

# What sells now: a product's buyers in a version's last this many days (its `trend_lift`, and the
# training job's recent-popularity prior, `training.recommender.season`).
RECENT_DAYS: Final = 28

# A neighbour's reason as the lists store it (uint8); 0 pads a list.
NO_NEIGHBOUR: Final = 0
BOUGHT_ALIKE_CODE: Final = 1
SIMILAR_ATTRIBUTES_CODE: Final = 2
REASONS: Final = ("", "bought_alike", "similar_attributes")

# The smallest float32 above 1: a bought-alike score stays above every closeness even when its
# share is too small to show in float32 (a purchase years before the version's last day).
_ABOVE_ONE = np.nextafter(np.float32(1), np.float32(2))


@dataclass(frozen=True, slots=True)
class AlikeParams:
    """How a version weighs bought-alike neighbours (see the module's docstring)."""

    buyer_power: float = 0.0
    trend_weight: float = 0.0


PLAIN_ALIKE: Final = AlikeParams()  # the plain share: older versions, and the default


@dataclass(frozen=True, slots=True)
class SimilarLists:
    """Each product's best neighbours as the service would rank them live, written with the
    version: row i holds item indices best first, -1 padded (only when the catalogue has fewer
    other products than the list's length), their float32 scores (-inf padding) and reasons."""

    items: np.ndarray  # int32 (n_items, n)
    scores: np.ndarray  # float32 (n_items, n)
    reasons: np.ndarray  # uint8 (n_items, n): BOUGHT_ALIKE_CODE, SIMILAR_ATTRIBUTES_CODE, 0 pad

    @property
    def length(self) -> int:
        return int(self.items.shape[1])


def recency_weights(age_days: np.ndarray) -> np.ndarray:
    """A purchase's weight (float64) by its age in days before the version's last day: 1 on the
    day, 1/2 a half-life before."""
    weights: np.ndarray = np.exp2(-age_days / HALF_LIFE_DAYS)
    return weights


def purchase_weights(purchases: Purchases, trained_until_day: int) -> np.ndarray:
    """The recency weight (float64) of every purchase row of a version's history."""
    return recency_weights(trained_until_day - np.asarray(purchases.last_day))


def recent_buyers(purchases: Purchases, n_items: int, until_day: int) -> np.ndarray:
    """Per product (int64), the customers whose last purchase of it falls in the `RECENT_DAYS`
    days up to `until_day`."""
    recent = np.asarray(purchases.last_day) > until_day - RECENT_DAYS
    counts: np.ndarray = np.bincount(np.asarray(purchases.items)[recent], minlength=n_items)
    return counts[:n_items]


def buyer_weights(purchases: Purchases, power: float) -> np.ndarray:
    """Per customer (float64), what their purchases count in a share: 1 / (products they bought)
    ** `power` (all 1 at power 0)."""
    bought = np.maximum(np.diff(np.asarray(purchases.indptr)), 1).astype(np.float64)
    weights: np.ndarray = bought**-power if power else np.ones(bought.size)
    return weights


def trend_lift(purchases: Purchases, n_items: int, until_day: int, weight: float) -> np.ndarray:
    """Per product (float64), 1 + `weight` x its recent buyers relative to the product with the
    most (all 1 at weight 0 or with no recent buyers)."""
    if not weight:
        return np.ones(n_items)
    recent = recent_buyers(purchases, n_items, until_day).astype(np.float64)
    top = float(recent.max()) if recent.size else 0.0
    lift: np.ndarray = 1.0 + weight * recent / top if top else np.ones(n_items)
    return lift


def item_buyers(purchases: Purchases, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Who bought each item: the purchase history turned around (item -> customer rows, CSR:
    indptr int64, rows int32, each item's buyers in customer order)."""
    items = np.asarray(purchases.items)
    per_customer = np.diff(np.asarray(purchases.indptr))
    owners = np.repeat(np.arange(per_customer.size, dtype=np.int32), per_customer)
    rows = owners[np.argsort(items, kind="stable")]
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(items, minlength=n_items)[:n_items], out=indptr[1:])
    return indptr, rows


def first_buyers(buyers: tuple[np.ndarray, np.ndarray], item: int) -> np.ndarray:
    """The customer rows who bought `item`, at most BUYERS_READ of them (in customer order), from
    an `item_buyers` index: what a product page reads for a product everybody buys."""
    indptr, rows = buyers
    start = int(indptr[item])
    return rows[start : min(int(indptr[item + 1]), start + BUYERS_READ)]


def unit_vectors(item_vectors: np.ndarray) -> np.ndarray:
    """Each item's vector scaled to length 1 (float32): cosine similarity is then a dot product."""
    vectors = np.asarray(item_vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, np.float32(1e-12))
    return unit


def bought_alike_scores(share: np.ndarray) -> np.ndarray:
    """1 plus each neighbour's share (float64, 0.. : lifted by its `trend_lift`), as float32 above
    1."""
    scores: np.ndarray = np.maximum((1.0 + share).astype(np.float32), _ABOVE_ONE)
    return scores


def attribute_scores(cosine: np.ndarray) -> np.ndarray:
    """Cosine similarity (float32) of item vectors mapped to 0..1."""
    scores: np.ndarray = ((cosine + np.float32(1)) / np.float32(2)).astype(np.float32, copy=False)
    return scores


def best_first(scores: np.ndarray, items: np.ndarray, n: int) -> np.ndarray:
    """Positions in `items` (ascending catalogue indices) of the `n` best `scores`, best first,
    ties by catalogue order, also at the n-th place."""
    if items.size > n:
        kth = -np.partition(-scores, n - 1)[n - 1]
        above = scores > kth
        tied = np.flatnonzero(scores == kth)[: n - int(np.count_nonzero(above))]
        chosen = np.sort(np.concatenate([np.flatnonzero(above), tied]))
    else:
        chosen = np.arange(items.size)
    picked: np.ndarray = chosen[np.argsort(-scores[chosen], kind="stable")]
    return picked
