"""Per-customer recommendations from a loaded version: fold-in, filters, paging, buy-again, cold start.

Pure domain logic over numpy arrays (no HTTP, no store): the API layer parses the request, calls
`recommend`, and shapes the reply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recsvc.artifacts import LoadedModel
from recsvc.features import PRICE_BANDS, USER_FIELDS, feature_name, price_band_index
from recsvc.model import blend, repeat_propensity, score_items, user_vector

EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Query:
    limit: int = 10
    offset: int = 0
    exclude_purchased: bool = True
    exclude: Sequence[str] = ()
    categories: Sequence[str] = ()
    in_stock: bool | None = None
    price_bands: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Recommendation:
    product_id: str
    score: float
    category: str
    reason: str


@dataclass(frozen=True, slots=True)
class Recommendations:
    items: list[Recommendation]
    cold_start: bool
    known_customer: bool


def _attribute_rows(
    model: LoadedModel, index: int | None, attributes: Mapping[str, object]
) -> list[int]:
    """The customer's attribute feature rows: stored ones, with current values (e.g. a live NPS
    category or a new primary segment) replacing the stored value of that field."""
    rows: list[int] = []
    stored = model.arrays.customer_features[index] if index is not None else None
    for j, field_name in enumerate(USER_FIELDS):
        if field_name in attributes:
            row = model.user_feature_index.get(feature_name(field_name, attributes[field_name]))
            if row is not None:
                rows.append(row)
                continue
        if stored is not None:
            rows.append(int(stored[j]))
    return rows


def candidate_mask(model: LoadedModel, query: Query) -> np.ndarray:
    """Items allowed by the request's filters (categories, stock, explicit exclusions)."""
    mask = np.ones(model.arrays.n_items, dtype=bool)
    if query.categories:
        chosen = set(query.categories)
        wanted = [i for i, name in enumerate(model.categories) if name in chosen]
        mask &= np.isin(model.item_category, np.asarray(wanted, dtype=np.int32))
    if query.in_stock is not None:
        mask &= model.item_in_stock == query.in_stock
    if query.price_bands:
        band_index = price_band_index(model.item_price, model.manifest.price_edges)
        wanted_bands = [PRICE_BANDS.index(b) for b in query.price_bands if b in PRICE_BANDS]
        mask &= np.isin(band_index, wanted_bands)
    for product_id in query.exclude:
        index = model.item_index(product_id)
        if index is not None:
            mask[index] = False
    return mask


def recommend(
    model: LoadedModel,
    customer_id: str,
    query: Query,
    attributes: Mapping[str, object] | None = None,
    today: dt.date | None = None,
) -> Recommendations:
    """Rank the catalogue for one customer.

    A customer in the model is folded in from their identity (if learned) and attributes, with
    `attributes` overriding stored values. A customer unknown to the model is cold-start: folded in
    from whatever attributes are given; with none, the recently most popular products are served.
    """
    attributes = dict(attributes or {})
    arrays = model.arrays
    index = model.customer_index(customer_id)
    rows = _attribute_rows(model, index, attributes)
    mask = candidate_mask(model, query)
    bought_items = np.empty(0, dtype=np.int32)
    if index is not None:
        span = arrays.purchases.row(index)
        bought_items = np.asarray(arrays.purchases.items[span])

    reasons: np.ndarray | None = None
    # Cold start: nothing of the customer's own history in the model, only shared features (or none).
    cold_start = index is None or not bool(arrays.has_identity[index])
    if index is None and not rows:
        scores = model.item_popularity.astype(np.float64)
        default_reason = "popular"
    else:
        identity = index if index is not None and bool(arrays.has_identity[index]) else None
        vector, _ = user_vector(arrays, identity, rows)
        scores = score_items(arrays, vector).astype(np.float64)
        default_reason = "similar_customers" if identity is not None else "customers_like_you"
        if not query.exclude_purchased and bought_items.size:
            today = today or dt.datetime.now(dt.UTC).date()
            span = arrays.purchases.row(index)  # type: ignore[arg-type]
            days_since = (today - EPOCH).days - np.asarray(
                arrays.purchases.last_day[span], dtype=np.float64
            )
            propensity = repeat_propensity(
                np.asarray(arrays.purchases.counts[span]),
                days_since,
                np.asarray(arrays.item_reorder_days[bought_items]),
                model.manifest.blend.timing,
            )
            scores = blend(scores, bought_items, propensity, model.manifest.blend)
            reasons = np.full(arrays.n_items, default_reason, dtype=object)
            reasons[bought_items] = "buy_again"
    if query.exclude_purchased and bought_items.size:
        mask[bought_items] = False

    wanted = query.offset + query.limit
    allowed = np.flatnonzero(mask)
    if allowed.size == 0:
        return Recommendations([], cold_start=cold_start, known_customer=index is not None)
    allowed_scores = scores[allowed]
    k = min(wanted, allowed.size)
    # A total order (score, then item index) so consecutive pages never repeat or skip an item: the
    # partial sort keeps every item tied with the k-th score before ordering.
    if k < allowed.size:
        kth = allowed_scores[np.argpartition(-allowed_scores, k - 1)[k - 1]]
        part = np.flatnonzero(allowed_scores >= kth)
    else:
        part = np.arange(allowed.size)
    order = part[np.lexsort((allowed[part], -allowed_scores[part]))]
    page = allowed[order][query.offset : wanted]
    items = [
        Recommendation(
            product_id=str(model.item_ids[i]),
            score=round(float(scores[i]), 6),
            category=model.categories[int(model.item_category[i])],
            reason=str(reasons[i]) if reasons is not None else default_reason,
        )
        for i in page
    ]
    return Recommendations(items, cold_start=cold_start, known_customer=index is not None)
