"""Scoring with a trained model's exported arrays: numpy only, no lightfm, no polars.

The training job evaluates with this same code, so the numbers it reports are the numbers the
service serves. A customer's vector is always folded in from feature embeddings (identity plus
attributes, averaged as LightFM does with normalised feature rows): a customer whose NPS category
or segment changed since the run, or who is new, is scored from their current features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Weight of the repeat-purchase shape term; see `repeat_propensity`.
_LOG_SPREAD = 1.0


@dataclass(frozen=True, slots=True)
class BlendParams:
    """How model score and repeat propensity mix when already-bought products are allowed.

    final = (1 - weight) * standardised model score + weight * propensity, where propensity =
    log1p(recency-weighted frequency) * due_factor ** timing * repeat_rate ** repeat (timing 0:
    frequency alone; 1: "due to buy again"), the frequency weighing each order that bought the
    product `decay ** orders back` (`recsvc.domain.buy_again`; 1.0 counts orders), the repeat rate
    the share of the product's buyers who bought it in two orders or more. Tuned on the hold-out
    by the training job; weight 0 is the model alone. A version written before `decay` holds no
    weights and reads as 1.0, its line counts standing in (what it was tuned and served with);
    one written before `repeat` reads as 0.
    """

    weight: float = 0.0
    timing: float = 1.0
    decay: float = 1.0
    repeat: float = 0.0


@dataclass(frozen=True, slots=True)
class Purchases:
    """A customer-by-item purchase history in CSR form (rows = customers)."""

    indptr: np.ndarray  # int64, n_customers + 1
    items: np.ndarray  # int32
    counts: np.ndarray  # int32, times bought (order lines)
    last_day: np.ndarray  # int32, days since the epoch of the last purchase
    # float32: the recency-weighted frequency at the version's `BlendParams.decay`; None in a
    # version written before it (`frequency` then reads the line counts).
    recency_weighted: np.ndarray | None = None

    def row(self, customer: int) -> slice:
        return slice(int(self.indptr[customer]), int(self.indptr[customer + 1]))

    def frequency(self, span: slice) -> np.ndarray:
        """The recency-weighted frequency (float64) of the purchases in `span` (one customer's row):
        what buy-again ranks them by."""
        source = self.counts if self.recency_weighted is None else self.recency_weighted
        return np.asarray(source[span], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ModelArrays:
    """Everything scoring needs; arrays may be memory-mapped (shared between workers)."""

    item_vectors: np.ndarray  # float32 (n_items, k): items' summed feature embeddings
    item_biases: np.ndarray  # float32 (n_items,)
    user_feature_vectors: (
        np.ndarray
    )  # float32 (n_user_features, k); rows 0..n_customers-1 are identities
    user_feature_biases: np.ndarray  # float32 (n_user_features,)
    customer_features: np.ndarray  # int32 (n_customers, len(USER_FIELDS)): attribute feature rows
    purchases: Purchases
    item_reorder_days: (
        np.ndarray
    )  # float32 (n_items,): median days between repeat purchases, nan if none
    identity_weight: float  # share of a known customer's identity row in their representation
    # bool (n_customers,): the customer had interactions in training, so their identity row is learned
    has_identity: np.ndarray
    # A blend's vectors are LightFM's components then EASE's (`training.recommender.ease`): the first
    # `lightfm_dims` columns are LightFM's item space, where similar products are found. 0: all.
    lightfm_dims: int = 0
    # A blend's EASE input rows (float32, n_items x the EASE columns), scaled as the customer side:
    # a cart's EASE vector is the sum of its products' rows, EASE's exact answer to the cart.
    item_input_vectors: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return int(self.item_vectors.shape[0])

    @property
    def n_customers(self) -> int:
        return int(self.customer_features.shape[0])


@dataclass(frozen=True, slots=True)
class Candidates:
    """Each customer's best never-bought items under the version's stored features, best first in
    `top_rows`' order, -1 / -inf padded when fewer remain: written with the version so that most
    requests are a lookup instead of scoring the whole catalogue."""

    items: np.ndarray  # int32 (n_customers, n)
    scores: np.ndarray  # float32 (n_customers, n)


def item_space(model: ModelArrays) -> np.ndarray:
    """The LightFM item space (products placed by what they share), whichever model ranks."""
    if model.lightfm_dims:
        return model.item_vectors[:, : model.lightfm_dims]
    return model.item_vectors


def user_vector(
    model: ModelArrays, identity: int | None, attribute_rows: Sequence[int]
) -> tuple[np.ndarray, float]:
    """Fold a customer in from feature embeddings, weighted as the training matrix rows were.

    A customer the model was trained with has their identity row (weight `identity_weight`) plus
    one row per attribute field (the rest, split evenly). A cold-start customer has attribute rows
    only, weighted evenly to a sum of one, as LightFM's normalised feature rows would be.
    """
    rows = np.asarray(attribute_rows, dtype=np.int64)
    if identity is not None:
        per_field = (1.0 - model.identity_weight) / model.customer_features.shape[1]
        rows = np.concatenate([[identity], rows])
        weights = np.full(rows.size, per_field, dtype=np.float32)
        weights[0] = model.identity_weight
    elif rows.size:
        weights = np.full(rows.size, 1.0 / rows.size, dtype=np.float32)
    else:
        return np.zeros(model.user_feature_vectors.shape[1], dtype=np.float32), 0.0
    vector = weights @ model.user_feature_vectors[rows]
    return vector.astype(np.float32, copy=False), float(weights @ model.user_feature_biases[rows])


def known_customer_vector(model: ModelArrays, customer: int) -> tuple[np.ndarray, float]:
    """The vector of a customer in the model's id map: identity row (if learned) plus attributes."""
    identity = customer if model.has_identity[customer] else None
    return user_vector(model, identity, model.customer_features[customer])


def score_items(model: ModelArrays, vector: np.ndarray) -> np.ndarray:
    """The model's score of every item for one user vector (user bias omitted: it does not rank)."""
    return model.item_vectors @ vector + model.item_biases


def score_block(model: ModelArrays, vectors: np.ndarray) -> np.ndarray:
    """Scores of every item for a block of user vectors: (users, items)."""
    scores = vectors @ model.item_vectors.T
    scores += model.item_biases
    return scores


def repeat_propensity(
    frequency: np.ndarray,
    days_since: np.ndarray,
    reorder_days: np.ndarray,
    timing: float,
    *,
    repeat_rate: np.ndarray | None = None,
    repeat: float = 0.0,
) -> np.ndarray:
    """How likely a customer is to buy an already-bought item again now.

    log1p(recency-weighted frequency: `Purchases.frequency`), times a "due" factor that peaks when
    the time since the last purchase equals the item's typical reorder interval (a log-normal
    bump: exp(-ln(ratio)^2 / 2)); items nobody reorders get a flat 0.5. `timing` 0 turns the due
    factor off (frequency alone); between 0 and 1 it widens the bump. Times the items'
    `repeat_rate` (how many of their buyers bought them again) to the power `repeat`, when given.
    """
    propensity = np.log1p(np.asarray(frequency, dtype=np.float64))
    if timing != 0.0:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.maximum(days_since, 1.0) / reorder_days
            due = np.exp(-(np.log(ratio) ** 2) / (2 * _LOG_SPREAD**2))
        due = np.where(np.isfinite(due), due, 0.5)
        propensity = propensity * due**timing
    if repeat != 0.0 and repeat_rate is not None:
        propensity = propensity * np.asarray(repeat_rate, dtype=np.float64) ** repeat
    return propensity


def blend(
    model_scores: np.ndarray,
    items: np.ndarray,
    propensity: np.ndarray,
    params: BlendParams,
) -> np.ndarray:
    """Mix model scores (all items) with the propensity of the bought `items` (see BlendParams)."""
    if params.weight == 0.0 or items.size == 0:
        return model_scores
    spread = float(model_scores.std()) or 1.0
    standardised = (model_scores - float(model_scores.mean())) / spread
    final = (1.0 - params.weight) * standardised
    # A small share of the model score survives at weight 1 so it still orders the never-bought items.
    final = final + (1e-3 * standardised if params.weight == 1.0 else 0.0)
    final[items] += params.weight * propensity
    return final


def top_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best entries of a (rows, items) score block, best first, ties by lower item
    index (one total order, so pages never repeat or skip): (items int32, scores), both (rows, k),
    padded with -1 / -inf where a row has fewer than k finite scores. -inf marks excluded items.

    Exact, but cheaper than a partial sort of every row: the k-th largest of 4k chunk maxima is a
    lower bound of the row's k-th largest score (k chunks each hold an item at least that high), so
    only items at or above it (typically 1-2 k per row) are sorted.
    """
    rows, n = scores.shape
    k = max(0, min(k, n))
    chunks = 4 * k
    if k and n >= 2 * chunks:
        size = n // chunks
        head = scores[:, : size * chunks]
        # Any split into chunks works; the fastest maximum differs: contiguous runs for a row or
        # two, strided chunks (items j, j + chunks, ...) for a block of rows.
        if rows < 8:
            maxima = head.reshape(rows, chunks, size).max(axis=2)
        else:
            maxima = head.reshape(rows, size, chunks).max(axis=1)
        bound = np.partition(maxima, chunks - k, axis=1)[:, chunks - k]
        flat = np.flatnonzero(scores >= bound[:, None])  # 1-d: far faster than a 2-d nonzero
    else:
        flat = np.flatnonzero(np.isfinite(scores))
    r, c = np.divmod(flat, n)
    values = scores[r, c]
    finite = np.isfinite(values)
    r, c, values = r[finite], c[finite], values[finite]
    order = np.lexsort((c, -values, r))
    r, c, values = r[order], c[order], values[order]
    rank = np.arange(r.size) - np.searchsorted(r, np.arange(rows))[r]
    kept = rank < k
    items = np.full((rows, k), -1, dtype=np.int32)
    best = np.full((rows, k), -np.inf, dtype=scores.dtype)
    items[r[kept], rank[kept]] = c[kept]
    best[r[kept], rank[kept]] = values[kept]
    return items, best


def top_k(scores: np.ndarray, k: int, excluded: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k best scores, best first, skipping `excluded` item indices."""
    if excluded is not None and excluded.size:
        scores = scores.copy()
        scores[excluded] = -np.inf
    items, _ = top_rows(scores[None, :], k)
    return items[0][items[0] >= 0].astype(np.int64)


def known_customer_vectors(model: ModelArrays, customers: np.ndarray) -> np.ndarray:
    """`known_customer_vector` for many customers at once: (len(customers), k)."""
    n_fields = model.customer_features.shape[1]
    known = model.has_identity[customers]
    identity_share = np.where(known, model.identity_weight, 0.0).astype(np.float32)[:, None]
    field_share = np.where(known, (1.0 - model.identity_weight) / n_fields, 1.0 / n_fields)
    field_share = field_share.astype(np.float32)[:, None]
    vectors = identity_share * model.user_feature_vectors[customers]
    attributes = model.customer_features[customers]
    for j in range(n_fields):
        vectors += field_share * model.user_feature_vectors[attributes[:, j]]
    return vectors


def batch_top_k(
    model: ModelArrays, customers: np.ndarray, k: int, *, exclude_purchased: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items and their scores for a block of known customers, each (len(customers), k), -1 /
    -inf padded, in `top_rows`' order: one matrix product per block, no per-customer predict call.
    """
    scores = score_block(model, known_customer_vectors(model, customers))
    if exclude_purchased:
        p = model.purchases
        starts, ends = p.indptr[customers], p.indptr[customers + 1]
        lengths = (ends - starts).astype(np.int64)
        if lengths.sum():
            rows = np.repeat(np.arange(customers.size), lengths)
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            scores[rows, p.items[np.repeat(starts, lengths) + offsets]] = -np.inf
    return top_rows(scores, k)
