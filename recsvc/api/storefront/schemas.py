"""What the storefront endpoints answer."""

from __future__ import annotations

import msgspec

from recsvc.offers import Offer
from recsvc.recommend import Recommendation

# The domain's item is the wire type: no copy per item on the hot path.
RecommendedItem = Recommendation


class RecommendationResponse(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    model_version: str
    segment: str | None
    # True when the suggestions do not come from the customer's own history: a customer the model
    # does not know (scored from their features, or the popular products when none are known).
    cold_start: bool
    known_customer: bool = True
    items: list[RecommendedItem]


class OfferItem(Offer, frozen=True, kw_only=True):
    """An offer the customer's segment earned, with the products attached to it."""

    products: list[RecommendedItem] = []


class OffersResponse(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    model_version: str
    segment: str | None
    nps_category: str
    complaint_theme: str | None
    offers: list[OfferItem]
