"""What the storefront endpoints answer.

What a key may read follows its scopes: the storefront's `recommend` key gets what it needs to show
products and offers; a customer's survey answers and segment membership (`segment`,
`nps_category`, `complaint_theme`, `known_customer`, an offer's earning `segment`) are left out
unless the key also has `export`, as a marketer's key does. A left-out field is absent from the
JSON, not null.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from recsvc.api.params import DEFAULT_LIMIT, LIMIT_RANGE, MAX_LIST_ITEMS, OFFSET_RANGE
from recsvc.domain.experiments import Arm
from recsvc.service.recommend import Recommendation

# The domain's item is the wire type: no copy per item on the hot path.
RecommendedItem = Recommendation


class RecommendationResponse(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str | None  # None: suggestions for an anonymous cart
    model_version: str
    # True when the suggestions do not come from the customer's own history: a customer the model
    # does not know (scored from their features, or the popular products when none are known).
    cold_start: bool
    items: list[RecommendedItem]
    # With the `export` scope only: the primary segment ranked for, whether the model knows the id.
    segment: str | UnsetType | None = UNSET
    known_customer: bool | UnsetType = UNSET
    # While the personalisation experiment runs (RECSVC_RECOMMENDATION_HOLDOUT_SHARE > 0): its id
    # and the customer's arm (`holdout`: the popular products of their segment).
    experiment: str | UnsetType = UNSET
    arm: Arm | UnsetType = UNSET


class CartRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An anonymous shopper's cart (`POST /v1/recommendations`): the products in it, and the
    page and filters the customer endpoint takes as query parameters."""

    product_ids: Annotated[
        list[str],
        Meta(min_length=1, max_length=MAX_LIST_ITEMS, description="the products in the cart"),
    ]
    limit: Annotated[
        int, Meta(ge=LIMIT_RANGE[0], le=LIMIT_RANGE[1], description="items per page, 1..100")
    ] = DEFAULT_LIMIT
    offset: Annotated[
        int,
        Meta(
            ge=OFFSET_RANGE[0], le=OFFSET_RANGE[1], description="items to skip (paging), 0..10000"
        ),
    ] = 0
    exclude: Annotated[
        list[str] | None, Meta(description="more product ids to leave out, or comma-separated")
    ] = None
    category: Annotated[
        list[str] | None, Meta(description="categories to keep (names, or comma-separated)")
    ] = None
    in_stock: Annotated[bool | None, Meta(description="keep only (not) in-stock products")] = None


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
    # The offer's experiment and the customer's arm in it (always `treatment` for a shown offer);
    # null for an offer that runs no experiment.
    experiment: str | None = None
    arm: Arm | None = None
    segment: str | UnsetType = UNSET  # with `export` only: the customer's segment that earned it


class HoldoutItem(msgspec.Struct, frozen=True, kw_only=True):
    """An offer the customer earned but does not get: they are in its experiment's holdout."""

    experiment: str
    offer_id: str
    arm: Arm = "holdout"


class OffersResponse(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    model_version: str
    offers: list[OfferItem]
    # With the `export` scope only: the customer's survey answers and segment as of now.
    segment: str | UnsetType | None = UNSET
    nps_category: str | UnsetType = UNSET
    complaint_theme: str | UnsetType | None = UNSET
    # With `export` only (a withheld recovery offer would tell the storefront the customer is a
    # detractor): the offers withheld because the customer is in their experiment's holdout.
    holdouts: list[HoldoutItem] | UnsetType = UNSET
