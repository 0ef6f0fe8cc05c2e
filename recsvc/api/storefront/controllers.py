"""`GET /v1/customers/{customer_id}/recommendations` and `.../offers`: what the storefront shows
one customer; `POST /v1/recommendations`: what it shows an anonymous shopper's cart. A customer
the model does not know is not an error: they get a cold start.

Most requests are answered by the routes' fast lane (`recsvc.api.storefront.fast_lane`) before
these handlers run; the handlers answer the rest and define the rules (and the OpenAPI spec)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.middleware import DefineMiddleware
from litestar.params import JSONBody, Parameter

from recsvc.api.auth import SECURITY, RequireScope, scopes
from recsvc.api.dependencies import storefront_model
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.params import (
    DEFAULT_LIMIT,
    LIMIT_RANGE,
    OFFSET_RANGE,
    CategoryFilter,
    CustomerId,
    StockFilter,
    check_id,
    lists,
)
from recsvc.api.storefront.fast_lane import OFFERS, RECOMMENDATIONS, FastLane
from recsvc.api.storefront.schemas import CartRequest, OffersResponse, RecommendationResponse
from recsvc.api.storefront.services import (
    cart_recommendations_for,
    offers_for,
    recommendations_for,
)


class RecommendationController(Controller):
    path = "/v1/customers"
    tags = ["recommendations"]
    before_request = RequireScope("recommend")
    security = SECURITY

    @get(
        "/{customer_id:str}/recommendations",
        summary="Product suggestions for one customer (cold start for customers the model does not know)",
        responses=error_responses(*KEYED, 503),
        description="`segment` and `known_customer` are given to keys with the `export` scope only.",
        sync_to_thread=False,
        opt=lists("exclude", "category"),
        middleware=[DefineMiddleware(FastLane, route=RECOMMENDATIONS)],
    )
    def recommendations(
        self,
        request: Request[Any, Any, Any],
        customer_id: CustomerId,
        limit: Annotated[
            int,
            Parameter(ge=LIMIT_RANGE[0], le=LIMIT_RANGE[1], description="items per page, 1..100"),
        ] = DEFAULT_LIMIT,
        offset: Annotated[
            int,
            Parameter(
                ge=OFFSET_RANGE[0],
                le=OFFSET_RANGE[1],
                description="items to skip (paging), 0..10000",
            ),
        ] = 0,
        exclude_purchased: Annotated[
            bool, Parameter(description="leave out products the customer already bought")
        ] = True,
        exclude: Annotated[
            list[str] | None,
            Parameter(
                description="product ids to leave out (e.g. the cart), repeated or comma-separated"
            ),
        ] = None,
        category: CategoryFilter = None,
        in_stock: StockFilter = None,
        country: Annotated[
            str | None,
            Parameter(description="for customers the model does not know: their country"),
        ] = None,
        age_band: Annotated[
            str | None,
            Parameter(description="for customers the model does not know: their age band"),
        ] = None,
    ) -> RecommendationResponse:
        check_id("customer_id", customer_id)
        holder, model = storefront_model(request)
        return recommendations_for(
            model,
            customer_id,
            holder.live(customer_id),
            limit=limit,
            offset=offset,
            exclude_purchased=exclude_purchased,
            exclude=exclude,
            category=category,
            in_stock=in_stock,
            given_features={"country": country, "age_band": age_band},
            sees_answers="export" in scopes(request),
            holdout_share=request.app.state.settings.recommendation_holdout_share,
            exposures=request.app.state.exposures,
        )


class OfferController(Controller):
    path = "/v1/customers"
    tags = ["offers"]
    before_request = RequireScope("recommend")
    security = SECURITY

    @get(
        "/{customer_id:str}/offers",
        summary="Offers for one customer's current segments (live NPS answers and orders included)",
        responses=error_responses(*KEYED, 503),
        description="The customer's `segment`, `nps_category` and `complaint_theme`, and the "
        "segment that earned each offer, are given to keys with the `export` scope only.",
        sync_to_thread=False,
        middleware=[DefineMiddleware(FastLane, route=OFFERS)],
    )
    def offers(self, request: Request[Any, Any, Any], customer_id: CustomerId) -> OffersResponse:
        check_id("customer_id", customer_id)
        holder, model = storefront_model(request)
        return offers_for(
            model,
            customer_id,
            holder.live(customer_id),
            request.app.state.catalog,
            sees_answers="export" in scopes(request),
            exposures=request.app.state.exposures,
        )


class CartController(Controller):
    path = "/v1/recommendations"
    tags = ["recommendations"]
    before_request = RequireScope("recommend")
    security = SECURITY

    @post(
        summary="Product suggestions for an anonymous cart (no customer id)",
        description="Folded in from the customers who bought like the cart, without retraining; "
        "the cart's products are left out. `customer_id` is null and `cold_start` true; a cart "
        "of products the model does not know gets the popular products.",
        status_code=200,
        responses=error_responses(*KEYED, 503),
        sync_to_thread=False,
    )
    def cart(
        self, request: Request[Any, Any, Any], data: JSONBody[CartRequest]
    ) -> RecommendationResponse:
        _, model = storefront_model(request)
        return cart_recommendations_for(model, data)
