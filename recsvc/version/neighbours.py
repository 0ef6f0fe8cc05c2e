"""Products like a given one: how a neighbour is scored and ranked, and the neighbour lists a
version may carry. Both sides use these pieces: the training job to precompute every product's
list when it writes a version, the service to compute one product's neighbours live.

Bought alike: the other products of the customers who bought this one, each purchase weighted by
its recency (half-life `HALF_LIFE_DAYS` before the version's last purchase day, `trained_until_day`:
the version's data, not the request's clock, so a list written with the version and a live answer
agree). The score is 1 plus the share of the product's (weighted) buyers who also bought the
neighbour. Similar attributes: cosine similarity of the model's item vectors, mapped to 0..1.
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
# Buyers of a product counted at most (the first ones in customer order): what one request of a
# cart or a product page reads for a product everybody buys; the lists count the same buyers.
BUYERS_READ: Final = 20_000

# A neighbour's reason as the lists store it (uint8); 0 pads a list.
NO_NEIGHBOUR: Final = 0
BOUGHT_ALIKE_CODE: Final = 1
SIMILAR_ATTRIBUTES_CODE: Final = 2
REASONS: Final = ("", "bought_alike", "similar_attributes")

# The smallest float32 above 1: a bought-alike score stays above every closeness even when its
# share is too small to show in float32 (a purchase years before the version's last day).
_ABOVE_ONE = np.nextafter(np.float32(1), np.float32(2))


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
    an `item_buyers` index: what one request of a cart or a product page reads for a product
    everybody buys."""
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
    """1 plus the share (float64, 0..1) of a product's buyers who also bought each neighbour, as
    float32 above 1."""
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
