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

import numpy as np
import scipy.sparse as sp

from recsvc.version.neighbours import (
    BOUGHT_ALIKE_CODE,
    BUYERS_READ,
    SIMILAR_ATTRIBUTES_CODE,
    SimilarLists,
    attribute_scores,
    best_first,
    bought_alike_scores,
    item_buyers,
    purchase_weights,
    unit_vectors,
)
from recsvc.version.scoring import ModelArrays, item_space
from training.progress import Progress

# Multiply-adds of co-purchase sums per sparse product: bounds a block's result (a few hundred MB
# at most) whatever the products' popularity.
_WORK_PER_BLOCK = 20_000_000


def similar_lists(
    model: ModelArrays, trained_until_day: int, n: int, *, show_progress: bool = True
) -> SimilarLists:
    """The best `n` neighbours of every product, as the service ranks them live on a version
    whose last purchase day is `trained_until_day`."""
    n_items = model.n_items
    width = min(n, n_items - 1)
    items = np.full((n_items, n), -1, dtype=np.int32)
    scores = np.full((n_items, n), -np.inf, dtype=np.float32)
    reasons = np.zeros((n_items, n), dtype=np.uint8)
    if width <= 0:
        return SimilarLists(items=items, scores=scores, reasons=reasons)
    buyers, counts = _first_buyers(model, n_items)
    purchases = model.purchases
    bought = sp.csr_matrix(
        (purchase_weights(purchases, trained_until_day), purchases.items, purchases.indptr),
        shape=(buyers.shape[1], n_items),
    )
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
            share = np.minimum(together.data[lo:hi][other] / max(counts[item], 1), 1.0)
            alike = bought_alike_scores(share)
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


def _first_buyers(model: ModelArrays, n_items: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """The item-by-customer matrix of each product's first `BUYERS_READ` buyers (ones), and how
    many buyers each product counts."""
    indptr, rows = item_buyers(model.purchases, n_items)
    per_item = np.diff(indptr)
    rank = np.arange(rows.size) - np.repeat(indptr[:-1], per_item)
    counted = rank < BUYERS_READ
    counts = np.minimum(per_item, BUYERS_READ)
    capped = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(counts, out=capped[1:])
    buyers = sp.csr_matrix(
        (np.ones(int(counted.sum())), rows[counted], capped),
        shape=(n_items, model.n_customers),
    )
    return buyers, counts


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
