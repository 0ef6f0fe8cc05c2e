"""`POST /v1/nps-responses`: live NPS answers, one object or a list, stored durably before 202."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import ClientException, ServiceUnavailableException
from litestar.status_codes import HTTP_202_ACCEPTED

from recsvc.api.auth import requires
from recsvc.intake import (
    BadBody,
    IntakeResult,
    check_responses,
    detractors,
    notify_detractors,
    parse_body,
)
from recsvc.store.base import Store, StoreUnavailable


class IntakeController(Controller):
    path = "/v1/nps-responses"
    tags = ["intake"]
    guards = [requires("ingest")]

    @post(
        "/",
        summary="Take in NPS responses (one object or a list); idempotent by response_id",
        status_code=HTTP_202_ACCEPTED,
    )
    async def take_in(self, request: Request[Any, Any, Any]) -> Response[IntakeResult]:
        body = await request.body()
        try:
            items = parse_body(body)
        except BadBody as exc:
            raise ClientException(str(exc)) from None
        received_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        valid, rejected = check_responses(items, received_at)
        if not valid and rejected:
            raise ClientException(
                "no valid response: "
                + "; ".join(f"[{r.index}] {', '.join(r.errors)}" for r in rejected[:20])
            )
        store: Store = request.app.state.store
        try:
            new_flags = await asyncio.to_thread(store.add_responses, valid)
        except StoreUnavailable as exc:
            # Refuse rather than accept what cannot be stored: the client retries later.
            raise ServiceUnavailableException(f"cannot store responses right now: {exc}") from None
        new = [r for r, is_new in zip(valid, new_flags, strict=True) if is_new]
        duplicates = len(items) - len(rejected) - len(new)
        result = IntakeResult(accepted=len(new), duplicates=duplicates, rejected=rejected)
        url: str = request.app.state.settings.detractor_webhook_url
        unhappy = detractors(new)
        background = (
            BackgroundTask(asyncio.to_thread, notify_detractors, url, unhappy)
            if url and unhappy
            else None
        )
        return Response(result, status_code=HTTP_202_ACCEPTED, background=background)
