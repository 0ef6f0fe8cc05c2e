"""What the storefront endpoints answer."""

from __future__ import annotations

import msgspec

from recsvc.offers import Offer


class RecommendedItem(msgspec.Struct, frozen=True):
    product_id: str
    score: float
    category: str
    # buy_again, similar_customers (from the customer's history), customers_like_you (from their
    # features: cold start) or popular (nothing known about the customer)
    reason: str


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
