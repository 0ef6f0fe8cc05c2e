"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from recsvc.api.dependencies import Injected
from recsvc.service.runtime import ModelHolder


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
        description="`ready`, or `degraded` (serving, but the store cannot be reached or the "
        "active version does not open: `detail` says which); 503 `not_ready` before any version "
        "is served.",
        sync_to_thread=False,
        responses={
            503: ResponseSpec(data_container=HealthStatus, description="No model version served")
        },
    )
    def ready(self, holder: Injected[ModelHolder]) -> Response[HealthStatus]:
        if holder.current is None:
            detail = holder.problem or "no model version has been published to the store yet"
            return Response(
                HealthStatus(status="not_ready", detail=detail),
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
            )
        # Degraded: serving while the store cannot be reached or the active version does not open.
        return Response(
            HealthStatus(
                status="degraded" if holder.problem else "ready",
                detail=holder.problem or "",
                model_version=holder.current.version,
            ),
            status_code=HTTP_200_OK,
        )
