"""`GET /v1/webhooks`: every configured destination's queue and delivery state;
`POST /v1/webhooks/{name}/enable`: resume a destination that a 410 disabled;
`POST /v1/webhooks/{name}/resync`: send a destination its segments' current members again."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import PathParameter
from litestar.status_codes import HTTP_200_OK

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.webhooks.schemas import WebhookList
from recsvc.service.webhooks.destinations import Webhooks
from recsvc.service.webhooks.status import (
    DestinationStatus,
    destination_status,
    enable_destination,
    resync_destination,
)
from recsvc.store.base import Store

DestinationName = Annotated[
    str, PathParameter(min_length=1, max_length=64, description="the destination's name")
]


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    before_request = RequireScope("admin")
    security = SECURITY

    @get(
        "/",
        summary="Each webhook destination: queue depth, oldest pending event, attempts, failures, "
        "whether it is disabled",
        responses=error_responses(*KEYED, 503),
        sync_to_thread=True,
    )
    def list_destinations(
        self, store: Injected[Store], webhooks: Injected[Webhooks]
    ) -> WebhookList:
        return WebhookList(destination_status(store, webhooks.destinations))

    @post(
        "/{name:str}/enable",
        summary="Re-enable a destination that answered 410 Gone; its waiting events go out again",
        responses=error_responses(*KEYED, 404, 503),
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def enable(
        self,
        store: Injected[Store],
        webhooks: Injected[Webhooks],
        name: DestinationName,
    ) -> DestinationStatus:
        return enable_destination(store, webhooks.destinations, name)

    @post(
        "/{name:str}/resync",
        summary="Send a destination the current members of its segments again, after the events "
        "waiting (for a receiver that lost its copy)",
        responses=error_responses(*KEYED, 404, 503),
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def resync(
        self,
        store: Injected[Store],
        webhooks: Injected[Webhooks],
        name: DestinationName,
    ) -> DestinationStatus:
        return resync_destination(store, webhooks.destinations, name)
