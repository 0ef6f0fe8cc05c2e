"""Builds the Litestar application: routes, guards, error handlers, OpenAPI docs, the offer
catalog and the model holder, wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from recsvc.api import customer_service
from recsvc.api.customers import CustomerProfileController
from recsvc.api.errors import EXCEPTION_HANDLERS
from recsvc.api.health import HealthController
from recsvc.api.intake import IntakeController
from recsvc.api.offers import OfferController
from recsvc.api.recommendations import RecommendationController
from recsvc.api.segments import SegmentController
from recsvc.offers import load_offers
from recsvc.runtime import ModelHolder
from recsvc.settings import Settings, load_settings
from recsvc.store import open_store
from recsvc.store.base import Store

DOCS_PATH = "/docs"


def create_app(settings: Settings | None = None, store: Store | None = None) -> Litestar:
    settings = settings or load_settings()
    # A bad offer catalog is a start-up error, not a request-time surprise.
    offers = load_offers(Path(settings.offers_file) if settings.offers_file else None)
    active_store: Store = store if store is not None else open_store(settings.store)
    holder = ModelHolder(active_store)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await asyncio.to_thread(holder.refresh)
        watcher = asyncio.create_task(holder.watch(settings.reload_seconds))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            active_store.close()

    state = State({"settings": settings, "store": active_store, "holder": holder, "offers": offers})
    customer_service.install(state)
    return Litestar(
        route_handlers=[
            HealthController,
            RecommendationController,
            OfferController,
            CustomerProfileController,
            SegmentController,
            IntakeController,
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="recsvc",
            version="1",
            description="NPS-driven recommendations, segment offers, segment exports and live NPS intake.",
            path=DOCS_PATH,
            render_plugins=[SwaggerRenderPlugin(path="/")],
        ),
        state=state,
    )
