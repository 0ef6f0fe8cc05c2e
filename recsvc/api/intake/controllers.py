"""`POST /v1/nps-responses` and `POST /v1/orders`: live NPS answers and order lines, one object or
a list, stored durably before 202."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.status_codes import HTTP_202_ACCEPTED

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.intake.schemas import (
    IntakeOperation,
    IntakeResult,
    OrderIntakeOperation,
    OrderIntakeResult,
)
from recsvc.api.intake.services import check_json_body, take_in, take_in_orders
from recsvc.domain import times
from recsvc.service.runtime import ModelHolder
from recsvc.service.webhooks.destinations import Webhooks
from recsvc.store.base import Store


class IntakeController(Controller):
    path = "/v1/nps-responses"
    tags = ["intake"]
    before_request = RequireScope("ingest")
    security = SECURITY

    @post(
        "/",
        summary="Take in NPS responses (one object or a list); idempotent by response_id",
        responses=error_responses(*KEYED, 413, 415, 503),
        description="202 once every accepted response is stored durably; invalid items are "
        "listed in `rejected` (400 when no item is valid); 503 when the store cannot take "
        "writes (retry later). Detractor answers are queued, before the 202, for the webhook "
        "destinations that take `nps.response.detractor` (signed, delivered by `recsvc deliver`).",
        status_code=HTTP_202_ACCEPTED,
        operation_class=IntakeOperation,
    )
    async def post_responses(
        self,
        request: Request[Any, Any, Any],
        store: Injected[Store],
        holder: Injected[ModelHolder],
        webhooks: Injected[Webhooks],
    ) -> Response[IntakeResult]:
        check_json_body(request.content_type)
        body = await request.body()
        # The store's writes (an fsync, a Redis round trip) run off the event loop.
        result = await asyncio.to_thread(
            take_in, body, store, times.now(), holder.current, webhooks.destinations
        )
        return Response(result, status_code=HTTP_202_ACCEPTED)


class OrderIntakeController(Controller):
    path = "/v1/orders"
    tags = ["intake"]
    before_request = RequireScope("ingest")
    security = SECURITY

    @post(
        "/",
        summary="Take in order lines (one object or a list); idempotent by line_id and content",
        responses=error_responses(*KEYED, 413, 415, 503),
        description="202 once every accepted line is stored durably; invalid items are listed in "
        "`rejected` (400 when no item is valid); 503 when the store cannot take writes (retry "
        "later). A line sent again with other content (a new status, a delivery time) is a new "
        "revision of it, and the one received last counts; the same content again is a "
        "duplicate. Recommendations, offers and the customer's profile on every worker reflect "
        "an accepted line at once (the product left out of suggestions, recency, frequency, "
        "spend, RFM segment and churn risk rescored); the next training run merges the lines "
        "the shop's own files lack.",
        status_code=HTTP_202_ACCEPTED,
        operation_class=OrderIntakeOperation,
    )
    async def post_orders(
        self,
        request: Request[Any, Any, Any],
        store: Injected[Store],
        holder: Injected[ModelHolder],
    ) -> Response[OrderIntakeResult]:
        check_json_body(request.content_type)
        body = await request.body()
        result = await asyncio.to_thread(take_in_orders, body, store, times.now(), holder.current)
        return Response(result, status_code=HTTP_202_ACCEPTED)
