"""What the storefront endpoints answer.

What a key may read follows its scopes: the storefront's `recommend` key gets what it needs to show
products and offers; a customer's survey answers and segment membership (`segment`,
`nps_category`, `complaint_theme`, `known_customer`, an offer's earning `segment`) are left out
unless the key also has `export`, as a marketer's key does. A left-out field is absent from the
JSON, not null.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from msgspec import UNSET, UnsetType

from recsvc.service.recommend import Recommendation

# The domain's item is the wire type: no copy per item on the hot path.
RecommendedItem = Recommendation


class RecommendationResponse(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    model_version: str
    # True when the suggestions do not come from the customer's own history: a customer the model
    # does not know (scored from their features, or the popular products when none are known).
    cold_start: bool
    items: list[RecommendedItem]
    # With the `export` scope only: the primary segment ranked for, whether the model knows the id.
    segment: str | UnsetType | None = UNSET
    known_customer: bool | UnsetType = UNSET


class OfferItem(msgspec.Struct, frozen=True, kw_only=True):
    """An offer the customer's segment earned, with the products attached to it."""

    id: str
    kind: str
    title: str
    text: str
    priority: int
    discount_percent: float
    valid_until: dt.date
    products: list[RecommendedItem] = []
    segment: str | UnsetType = UNSET  # with `export` only: the customer's segment that earned it


class OffersResponse(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    model_version: str
    offers: list[OfferItem]
    # With the `export` scope only: the customer's survey answers and segment as of now.
    segment: str | UnsetType | None = UNSET
    nps_category: str | UnsetType = UNSET
    complaint_theme: str | UnsetType | None = UNSET
