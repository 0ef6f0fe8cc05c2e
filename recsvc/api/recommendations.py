"""`GET /v1/customers/{customer_id}/recommendations`: what the storefront shows one customer."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import ClientException, ServiceUnavailableException
from litestar.params import FromPath, Parameter

from recsvc.api.auth import requires
from recsvc.features import USER_FIELDS
from recsvc.recommend import Query, recommend
from recsvc.runtime import ActiveModel, ModelHolder

MAX_ID_LENGTH = 128
MAX_LIST_ITEMS = 200


class RecommendedItem(msgspec.Struct, frozen=True):
    product_id: str
    score: float
    category: str
    reason: str


class RecommendationResponse(msgspec.Struct, frozen=True):
    customer_id: str
    model_version: str
    segment: str | None
    cold_start: bool
    items: list[RecommendedItem]


def active_model(request: Request) -> ActiveModel:
    holder: ModelHolder = request.app.state.holder
    current = holder.current
    if current is None:
        raise ServiceUnavailableException(
            "no model version is active yet: run the training job first"
        )
    return current


def check_customer_id(customer_id: str) -> str:
    if not customer_id or len(customer_id) > MAX_ID_LENGTH or not customer_id.isprintable():
        raise ClientException(f"customer_id must be 1..{MAX_ID_LENGTH} printable characters")
    return customer_id


def split_list(name: str, value: str | None) -> list[str]:
    items = [part.strip() for part in (value or "").split(",") if part.strip()]
    if len(items) > MAX_LIST_ITEMS:
        raise ClientException(f"{name}: at most {MAX_LIST_ITEMS} values")
    return items


def stored_segment(model: ActiveModel, customer_id: FromPath[str]) -> str | None:
    """The customer's primary segment as of the model's run (from their stored features)."""
    loaded = model.loaded
    index = loaded.customer_index(customer_id)
    if index is None:
        return None
    row = int(loaded.arrays.customer_features[index][USER_FIELDS.index("primary_segment")])
    name = loaded.user_feature_names[row - loaded.arrays.n_customers]
    value = name.partition("=")[2]
    return None if value == "unknown" else value


class RecommendationController(Controller):
    path = "/v1/customers"
    tags = ["recommendations"]
    guards = [requires("recommend")]

    @get(
        "/{customer_id:str}/recommendations",
        summary="Product suggestions for one customer",
        sync_to_thread=False,
    )
    def recommendations(
        self,
        request: Request,
        customer_id: FromPath[str],
        limit: Annotated[int, Parameter(ge=1, le=100, description="items per page, 1..100")] = 10,
        offset: Annotated[
            int, Parameter(ge=0, le=10_000, description="items to skip (paging)")
        ] = 0,
        exclude_purchased: Annotated[
            bool, Parameter(description="leave out products the customer already bought")
        ] = True,
        exclude: Annotated[
            str | None,
            Parameter(description="comma-separated product ids to leave out (e.g. the cart)"),
        ] = None,
        category: Annotated[
            str | None, Parameter(description="comma-separated categories to keep")
        ] = None,
        in_stock: Annotated[
            bool | None, Parameter(description="keep only (not) in-stock products")
        ] = None,
        country: Annotated[
            str | None,
            Parameter(description="for customers the model does not know: their country"),
        ] = None,
        age_band: Annotated[
            str | None,
            Parameter(description="for customers the model does not know: their age band"),
        ] = None,
    ) -> RecommendationResponse:
        check_customer_id(customer_id)
        model = active_model(request)
        categories = split_list("category", category)
        unknown = sorted(set(categories) - set(model.loaded.categories))
        if unknown:
            raise ClientException(
                f"category: unknown value(s) {', '.join(unknown)}; known: {', '.join(model.loaded.categories)}"
            )
        attributes: dict[str, object] = dict(request.app.state.live_attributes(customer_id))
        if model.loaded.customer_index(customer_id) is None:
            attributes.update(
                {k: v for k, v in (("country", country), ("age_band", age_band)) if v}
            )
        query = Query(
            limit=limit,
            offset=offset,
            exclude_purchased=exclude_purchased,
            exclude=split_list("exclude", exclude),
            categories=categories,
            in_stock=in_stock,
        )
        result = recommend(model.loaded, customer_id, query, attributes)
        segment = attributes.get("primary_segment") or stored_segment(model, customer_id)
        return RecommendationResponse(
            customer_id=customer_id,
            model_version=model.version,
            segment=str(segment) if segment else None,
            cold_start=result.cold_start,
            items=[
                RecommendedItem(i.product_id, i.score, i.category, i.reason) for i in result.items
            ],
        )
