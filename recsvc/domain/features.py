"""The recommender's feature scheme, shared by training (to build LightFM's matrices) and the service
(to fold a customer in at request time from stored feature embeddings).

A feature is named `field=value`. Every customer carries one value for each of `USER_FIELDS` (a
missing value becomes `MISSING`, itself a learned feature) plus, when known to the model, an
identity feature. Rows are L1-normalised as LightFM's `Dataset` does, so a customer's representation
is the mean of their feature embeddings: a cold-start customer is the mean of their attribute
features alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

USER_FIELDS: tuple[str, ...] = (
    "primary_segment",
    "nps_category",
    "rfm_segment",
    "country",
    "age_band",
)
ITEM_FIELDS: tuple[str, ...] = ("category", "brand", "price_band")
MISSING = "unknown"
PRICE_BANDS: tuple[str, ...] = ("budget", "low", "mid", "high", "premium")


def feature_name(field: str, value: object) -> str:
    text = (
        MISSING if value is None or (isinstance(value, str) and not value.strip()) else str(value)
    )
    return f"{field}={text}"


def user_feature_names(attributes: Mapping[str, object]) -> list[str]:
    """The attribute feature names of one customer (without identity), one per field."""
    return [feature_name(field, attributes.get(field)) for field in USER_FIELDS]


def price_band_index(prices: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Each price's band as an index into PRICE_BANDS (band i holds [edge i-1, edge i)); -1 for a
    missing price, or for every price when there are no edges (no priced products)."""
    prices = np.asarray(prices, dtype=np.float64)
    if not len(edges):
        return np.full(prices.shape, -1, dtype=np.int64)
    index = np.searchsorted(
        np.asarray(edges, dtype=np.float64), np.nan_to_num(prices), side="right"
    )
    index[np.isnan(prices)] = -1
    return index
