"""Builds the Litestar application: routes, error handlers and OpenAPI docs, wired in one place."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from recsvc.api.errors import EXCEPTION_HANDLERS
from recsvc.api.health import HealthController
from recsvc.settings import Settings, load_settings

DOCS_PATH = "/docs"


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    return Litestar(
        route_handlers=[HealthController],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(
            title="recsvc",
            version="1",
            description="NPS-driven recommendations, segment offers, segment exports and live NPS intake.",
            path=DOCS_PATH,
            render_plugins=[SwaggerRenderPlugin(path="/")],
        ),
        state=State({"settings": settings, "model_version": None}),
    )
