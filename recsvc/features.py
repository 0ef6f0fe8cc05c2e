"""The recommender's feature scheme, shared by training (to build LightFM's matrices) and the service
(to fold a customer in at request time from stored feature embeddings).

A feature is named `field=value`. Every customer carries one value for each of `USER_FIELDS` (a
missing value becomes `MISSING`, itself a learned feature) plus, when known to the model, an
identity feature. Rows are L1-normalised as LightFM's `Dataset` does, so a customer's representation
is the mean of their feature embeddings: a cold-start customer is the mean of their attribute
features alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

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


def price_band(price: float | None, edges: Sequence[float]) -> str:
    """The band of a price given the ascending inner edges (len(PRICE_BANDS) - 1 of them)."""
    if price is None:
        return MISSING
    for band, edge in zip(PRICE_BANDS, edges, strict=False):
        if price < edge:
            return band
    return PRICE_BANDS[len(edges)] if len(edges) < len(PRICE_BANDS) else PRICE_BANDS[-1]


def known(names: Iterable[str], index: Mapping[str, int]) -> list[int]:
    """Indices of the names the model knows; an unseen value (a new country) contributes nothing."""
    return [index[n] for n in names if n in index]
