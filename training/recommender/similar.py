"""Each product's best neighbours, computed when a version is written.

The service answers `GET /v1/products/{id}/similar` from these lists (`recsvc.service.similar`)
whenever a product's list holds enough neighbours that pass the request's filters, instead of
summing the purchases of the product's buyers per request. The scores are the service's
(`recsvc.version.neighbours`), computed for every product at once: co-purchases as a sparse
product of the item-by-buyer matrix (each product's first `BUYERS_READ` buyers, as the service
reads) with the customer-by-item matrix of recency weights, in blocks of items; then, for the
products with fewer co-purchased neighbours than the list holds, cosine closeness in the item
space fills the rest, one product at a time as the service computes it. Recency is measured to the version's last day (`trained_until_day`), as the
service's live computation does, so the list is the live answer as of the version's data.
"""

from __future__ import annotations

from typing import Final

import msgspec
import numpy as np
import scipy.sparse as sp

from recsvc.version.neighbours import (
    BOUGHT_ALIKE_CODE,
    BUYERS_READ,
    PLAIN_ALIKE,
    SIMILAR_ATTRIBUTES_CODE,
    AlikeParams,
    SimilarLists,
    attribute_scores,
    best_first,
    bought_alike_scores,
    buyer_weights,
    item_buyers,
    purchase_weights,
    trend_lift,
    unit_vectors,
)
from recsvc.version.scoring import ModelArrays, item_space, top_rows
from training.progress import Progress
from training.recommender.metrics import item_sets, ndcg_per_user

# Multiply-adds of co-purchase sums per sparse product: bounds a block's result (a few hundred MB
# at most) whatever the products' popularity.
_WORK_PER_BLOCK = 20_000_000


def similar_lists(
    model: ModelArrays,
    trained_until_day: int,
    n: int,
    params: AlikeParams = PLAIN_ALIKE,
    *,
    show_progress: bool = True,
) -> SimilarLists:
    """The best `n` neighbours of every product, as the service ranks them live on a version
    whose last purchase day is `trained_until_day` and whose bought-alike settings are `params`."""
    n_items = model.n_items
    width = min(n, n_items - 1)
    items = np.full((n_items, n), -1, dtype=np.int32)
    scores = np.full((n_items, n), -np.inf, dtype=np.float32)
    reasons = np.zeros((n_items, n), dtype=np.uint8)
    if width <= 0:
        return SimilarLists(items=items, scores=scores, reasons=reasons)
    purchases = model.purchases
    buyers, counts = _first_buyers(model, n_items, buyer_weights(purchases, params.buyer_power))
    lift = trend_lift(purchases, n_items, trained_until_day, params.trend_weight)
    bought = _recency_weighted(model, trained_until_day)
    # Per product, the multiply-adds of its co-purchase sums: its buyers' purchase rows.
    work = np.cumsum(buyers @ np.diff(bought.indptr).astype(np.float64))
    progress = Progress("similar lists", total=n_items, unit="products", enabled=show_progress)
    to_fill: list[tuple[int, np.ndarray, np.ndarray]] = []
    start = 0
    while start < n_items:
        done = work[start - 1] if start else 0.0
        stop = max(start + 1, int(np.searchsorted(work, done + _WORK_PER_BLOCK)))
        together = buyers[start:stop] @ bought  # row i: weighted buyers of i who bought each item
        together.sort_indices()  # ascending catalogue order, as the service's candidates
        for row in range(stop - start):
            item = start + row
            lo, hi = together.indptr[row], together.indptr[row + 1]
            neighbours = together.indices[lo:hi]
            other = neighbours != item
            neighbours = neighbours[other].astype(np.int32)
            share = np.minimum(together.data[lo:hi][other] / counts[item], 1.0)
            alike = bought_alike_scores(share * lift[neighbours])
            if neighbours.size >= width:
                best = best_first(alike, neighbours, width)
                items[item, :width] = neighbours[best]
                scores[item, :width] = alike[best]
                reasons[item, :width] = BOUGHT_ALIKE_CODE
            else:
                to_fill.append((item, neighbours, alike))
        progress.advance(stop - start)
        start = stop
    _fill_from_item_space(model, to_fill, width, items, scores, reasons)
    progress.finish()
    return SimilarLists(items=items, scores=scores, reasons=reasons)


def _recency_weighted(model: ModelArrays, trained_until_day: int) -> sp.csr_matrix:
    """The customer-by-item matrix of each purchase's recency weight as of `trained_until_day`."""
    purchases = model.purchases
    return sp.csr_matrix(
        (purchase_weights(purchases, trained_until_day), purchases.items, purchases.indptr),
        shape=(model.n_customers, model.n_items),
    )


def _first_buyers(
    model: ModelArrays, n_items: int, weights: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The item-by-customer matrix of each product's first `BUYERS_READ` buyers (their `weights`),
    and the sum of those weights per product (1 where nobody bought it)."""
    indptr, rows = item_buyers(model.purchases, n_items)
    per_item = np.diff(indptr)
    rank = np.arange(rows.size) - np.repeat(indptr[:-1], per_item)
    counted = rank < BUYERS_READ
    capped = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.minimum(per_item, BUYERS_READ), out=capped[1:])
    buyers = sp.csr_matrix(
        (weights[rows[counted]], rows[counted], capped),
        shape=(n_items, model.n_customers),
    )
    totals = np.asarray(buyers.sum(axis=1)).ravel()
    return buyers, np.where(totals > 0, totals, 1.0)


def _fill_from_item_space(
    model: ModelArrays,
    to_fill: list[tuple[int, np.ndarray, np.ndarray]],
    width: int,
    items: np.ndarray,
    scores: np.ndarray,
    reasons: np.ndarray,
) -> None:
    """The lists of products with fewer co-purchased neighbours than `width`: those first, then
    the closest in the item space, ranked together as the service ranks them.

    One matrix-vector product per product, the service's own: a block's matrix product rounds the
    float32 cosines differently in their last bit (80% of them, measured on 50k items), enough to
    change a score's sixth decimal or the order of two near-ties."""
    units = unit_vectors(item_space(model))
    catalogue = np.arange(model.n_items)
    for item, neighbours, alike_scores in to_fill:
        row = attribute_scores(units @ units[item])
        row[neighbours] = alike_scores
        alike = np.zeros(row.size, dtype=bool)
        alike[neighbours] = True
        others = np.delete(catalogue, item)
        best = others[best_first(row[others], others, width)]
        items[item, :width] = best
        scores[item, :width] = row[best]
        reasons[item, :width] = np.where(alike[best], BOUGHT_ALIKE_CODE, SIMILAR_ATTRIBUTES_CODE)


def similar_arrays(lists: SimilarLists) -> dict[str, np.ndarray]:
    """The lists as the artifact's arrays (see `recsvc.version.artifacts.OPTIONAL_ARRAYS`)."""
    return {
        "similar_items": lists.items,
        "similar_scores": lists.scores,
        "similar_reasons": lists.reasons,
    }


# The bought-alike settings a run chooses between on its hold-out (`tune_alike`). Buyer power 0.5
# ranked above 0 on Online Retail's last two 28-day windows, the demo shop and the Instacart sample,
# and below it on MovieLens 100K; the trend lift helped Online Retail's Christmas weeks and
# MovieLens, and cost the demo shop (bench/bench_similar.py, docs/recommender.md): per shop, then.
BUYER_POWERS: Final = (0.0, 0.5)
TREND_WEIGHTS: Final = (0.0, 1.0, 4.0)
MAX_CUSTOMERS: Final = 1_000
_PAGES_PER_BLOCK: Final = 64  # product pages scored at once (dense rows over the catalogue)


class AlikeChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The bought-alike settings chosen on the hold-out, and what the choice rested on."""

    buyer_power: float
    trend_weight: float
    ndcg: dict[str, float]  # NDCG@k per "buyer power/trend weight" tried
    customers: int  # evaluated product pages

    @property
    def params(self) -> AlikeParams:
        return AlikeParams(buyer_power=self.buyer_power, trend_weight=self.trend_weight)


def chosen_params(choice: AlikeChoice | None) -> AlikeParams:
    """The settings a version's lists are ranked with: the evaluation's choice, or the plain share
    when it made none."""
    return choice.params if choice is not None else PLAIN_ALIKE


def tune_alike(
    model: ModelArrays, users: np.ndarray, truth: list[np.ndarray], *, k: int
) -> AlikeChoice | None:
    """Choose the version's `AlikeParams` as a product page would be judged: each evaluated
    customer's last product before the cut-off (of their last purchase day, the first in catalogue
    order) asks for its `k` neighbours, ranked as the lists rank them (bought alike, then the item
    space), and what they bought after the cut-off, other than it, is the truth. Every pair of
    `BUYER_POWERS` and `TREND_WEIGHTS` is scored by NDCG@k on the first `MAX_CUSTOMERS` customers
    (rows of the model's purchases); the best wins, ties to the lighter settings. None when no
    customer has a product and a truth left."""
    purchases, n_items = model.purchases, model.n_items
    seeds: list[int] = []
    truths: list[np.ndarray] = []
    for user, after in zip(users[:MAX_CUSTOMERS].tolist(), truth[:MAX_CUSTOMERS], strict=True):
        span = purchases.row(user)
        items, days = np.asarray(purchases.items[span]), np.asarray(purchases.last_day[span])
        if not items.size:
            continue
        seed = int(items[days == days.max()].min())
        wanted = after[after != seed]
        if wanted.size:
            seeds.append(seed)
            truths.append(wanted)
    if not seeds or n_items < 2:
        return None
    last_day = int(np.asarray(purchases.last_day).max())
    pages = np.asarray(seeds)
    units = unit_vectors(item_space(model))
    bought = _recency_weighted(model, last_day)
    settings = [(p, t) for p in BUYER_POWERS for t in TREND_WEIGHTS]
    lifts = {t: trend_lift(purchases, n_items, last_day, t) for t in TREND_WEIGHTS}
    tops: dict[tuple[float, float], list[np.ndarray]] = {pair: [] for pair in settings}
    weighed = {p: _first_buyers(model, n_items, buyer_weights(purchases, p)) for p in BUYER_POWERS}
    for start in range(0, pages.size, _PAGES_PER_BLOCK):
        block = pages[start : start + _PAGES_PER_BLOCK]
        rows = np.arange(block.size)
        closeness = attribute_scores(units[block] @ units.T)
        for power in BUYER_POWERS:
            buyers, totals = weighed[power]
            shares = np.minimum((buyers[block] @ bought).toarray() / totals[block, None], 1.0)
            shares[rows, block] = 0.0
            for trend in TREND_WEIGHTS:
                lifted = shares * lifts[trend]
                scores = np.where(lifted > 0, bought_alike_scores(lifted), closeness)
                scores[rows, block] = -np.inf
                tops[power, trend].append(top_rows(scores, k)[0])
    truth_matrix = item_sets(truths, n_items)
    ndcg = {
        pair: float(ndcg_per_user(np.concatenate(tops[pair]), truth_matrix).mean())
        for pair in settings
    }
    best = max(settings, key=lambda pair: (ndcg[pair], -pair[0], -pair[1]))
    return AlikeChoice(
        buyer_power=best[0],
        trend_weight=best[1],
        ndcg={f"{p:g}/{t:g}": round(v, 6) for (p, t), v in ndcg.items()},
        customers=len(seeds),
    )
