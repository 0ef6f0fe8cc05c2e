"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE


class HealthStatus(msgspec.Struct, frozen=True):
    status: str
    detail: str = ""
    model_version: str | None = None


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", summary="The process is up", sync_to_thread=False)
    def live(self) -> HealthStatus:
        return HealthStatus(status="live")

    @get(
        "/ready",
        summary="A model version is loaded and requests can be served",
        sync_to_thread=False,
    )
    def ready(self, state: State) -> Response[HealthStatus]:
        version = state.get("model_version")
        if version is None:
            return Response(
                HealthStatus(
                    status="not_ready",
                    detail="no model version has been published to the store yet",
                ),
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response(
            HealthStatus(status="ready", model_version=version), status_code=HTTP_200_OK
        )
