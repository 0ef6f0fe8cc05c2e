"""`GET /v1/customers/{customer_id}/offers`: segment-specific offers, with products attached."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import FromPath

from recsvc.api.auth import requires
from recsvc.api.customer_service import current_state, state_of
from recsvc.api.recommendations import RecommendedItem, active_model, check_customer_id
from recsvc.offers import OfferCatalog, products_for_theme
from recsvc.recommend import recommend


class OfferItem(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    title: str
    text: str
    priority: int
    discount_percent: float
    valid_until: dt.date
    segment: str
    products: list[RecommendedItem] = []


class OffersResponse(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    model_version: str
    segment: str | None
    nps_category: str
    complaint_theme: str | None
    offers: list[OfferItem]


class OfferController(Controller):
    path = "/v1/customers"
    tags = ["offers"]
    guards = [requires("recommend")]

    @get(
        "/{customer_id:str}/offers",
        summary="Offers for one customer's segments",
        sync_to_thread=False,
    )
    def offers(self, request: Request[Any, Any, Any], customer_id: FromPath[str]) -> OffersResponse:
        check_customer_id(customer_id)
        model = active_model(request)
        holder, store = state_of(request)
        catalog: OfferCatalog = request.app.state.offers
        state = current_state(model, store, holder, customer_id)
        today = dt.datetime.now(dt.UTC).date()
        items = []
        for offer, definition in catalog.for_segments(state.segments, today):
            products: list[RecommendedItem] = []
            if definition.products:
                # A recovery offer answers the complaint (e.g. in-stock items after a late delivery).
                theme = state.complaint_theme if definition.kind == "recovery" else None
                query = dataclasses.replace(products_for_theme(theme), limit=definition.products)
                result = recommend(model.loaded, customer_id, query, state.model_attributes())
                products = [
                    RecommendedItem(i.product_id, i.score, i.category, i.reason)
                    for i in result.items
                ]
            items.append(OfferItem(**msgspec.structs.asdict(offer), products=products))
        return OffersResponse(
            customer_id=customer_id,
            model_version=model.version,
            segment=state.primary_segment,
            nps_category=state.nps_category,
            complaint_theme=state.complaint_theme,
            offers=items,
        )
