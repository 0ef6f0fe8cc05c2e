"""Builds the Litestar application: routes, key checks, error handlers, metrics, OpenAPI docs, the offer
catalog, the model holder and the webhook destinations, wired in one place.

Areas (each a package of controllers, schemas and services): `storefront` (recommendations,
offers: scope `recommend`), `products` (similar products: `recommend`), `customers` and `segments` (profiles, segment lists and exports:
`export`), `nps` (summaries and comment themes: `export`), `experiments` (the offers'
experiments and their assignments: `export`), `intake` (NPS responses and order lines: `ingest`),
`versions` (model versions: `admin`), `privacy` (erasure and subject access: `privacy`; the
erasure log: `admin`), `webhooks` (destinations' delivery state: `admin`), `surveys` (who to
survey next, sends and declines: `survey`), `console` (the
marketer console's pages under /console: a signed-in `export` key), `ops` (health probes, metrics, the docs page and its assets:
no key). Services reach controllers through `recsvc.api.dependencies`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components

from recsvc.api.auth import SECURITY_SCHEMES, check_bind
from recsvc.api.console import console_routes, console_sessions, console_templates
from recsvc.api.customers.controllers import CustomerProfileController
from recsvc.api.dependencies import Services, dependencies
from recsvc.api.errors import EXCEPTION_HANDLERS
from recsvc.api.experiments.controllers import ExperimentController
from recsvc.api.intake.controllers import IntakeController, OrderIntakeController
from recsvc.api.nps.controllers import NpsSummaryController
from recsvc.api.ops.docs import DOCS_PATH, docs_assets, docs_page
from recsvc.api.ops.health import HealthController
from recsvc.api.ops.metrics import (
    MetricsController,
    mark_worker_dead,
    service_registry,
)
from recsvc.api.ops.request_metrics import TALLY, RequestMetricsMiddleware
from recsvc.api.privacy.controllers import ErasureLogController, PrivacyController
from recsvc.api.products.controllers import ProductController
from recsvc.api.segments.controllers import SegmentController
from recsvc.api.storefront.controllers import (
    CartController,
    OfferController,
    RecommendationController,
)
from recsvc.api.surveys.controllers import SurveyController
from recsvc.api.versions.controllers import ModelVersionController
from recsvc.api.webhooks.controllers import WebhookController
from recsvc.domain.offers import OfferCatalog, load_offers
from recsvc.service.experiments import ExposureRecorder
from recsvc.service.runtime import ModelHolder
from recsvc.service.settings import Settings, load_settings
from recsvc.service.surveys import SurveyPlanner, SurveyRules, load_survey_rules
from recsvc.service.webhooks.destinations import Webhooks
from recsvc.store import open_store
from recsvc.store.base import Store


def load_catalog(settings: Settings) -> OfferCatalog:
    # A bad offer catalog is a start-up error naming the offer, not a request-time surprise.
    return load_offers(Path(settings.offers_file) if settings.offers_file else None)


def load_surveys(settings: Settings) -> SurveyRules:
    # A bad rules file is a start-up error naming the file and the key.
    return load_survey_rules(Path(settings.surveys_file) if settings.surveys_file else None)


def preflight(settings: Settings) -> None:
    """What `recsvc serve` checks before it starts any worker, each a one-line ConfigError: the
    bind address without API keys, the offer catalog, the survey rules, the webhooks file, the
    store URL."""
    check_bind(settings)
    load_catalog(settings)
    load_surveys(settings)
    Webhooks.from_file(settings.webhooks_file)
    open_store(
        settings.store, cache_dir=settings.cache_dir
    ).close()  # parses the URL; connects only on first use


def create_served_app() -> Litestar:
    """The app as each server worker makes it (`python -m recsvc serve`).

    One BLAS thread per worker: a request's scoring is one matrix-vector product, and the workers
    already use every core. With the BLAS's own threads, a product over a blend's wider vectors
    (288 columns x 3,800 products) took 11 ms on a busy 2-core machine instead of 0.11 ms.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    return create_app()


def create_app(settings: Settings | None = None, store: Store | None = None) -> Litestar:
    settings = settings or load_settings()
    active_store: Store = (
        store if store is not None else open_store(settings.store, cache_dir=settings.cache_dir)
    )
    holder = ModelHolder(active_store)
    sessions = console_sessions(active_store, settings)
    services = Services(
        settings=settings,
        store=active_store,
        holder=holder,
        catalog=load_catalog(settings),
        webhooks=Webhooks.from_file(settings.webhooks_file),
        exposures=ExposureRecorder(active_store.exposures),
        surveys=SurveyPlanner(load_surveys(settings), active_store, holder),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        active_store.follow_live()
        services.exposures.start()
        await asyncio.to_thread(services.holder.refresh)
        tasks = [
            asyncio.create_task(services.holder.watch(settings.reload_seconds)),
            asyncio.create_task(TALLY.run()),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await sessions.close()
            await asyncio.to_thread(services.exposures.close)
            active_store.close()
            mark_worker_dead()

    return Litestar(
        route_handlers=[
            HealthController,
            MetricsController,
            RecommendationController,
            CartController,
            OfferController,
            ProductController,
            CustomerProfileController,
            SegmentController,
            NpsSummaryController,
            IntakeController,
            OrderIntakeController,
            ModelVersionController,
            ExperimentController,
            PrivacyController,
            ErasureLogController,
            WebhookController,
            SurveyController,
            docs_assets(),
            *console_routes(),
        ],
        template_config=console_templates(),
        dependencies=dependencies(
            services, service_registry(services.holder, services.webhooks, active_store)
        ),
        middleware=[RequestMetricsMiddleware],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="recsvc",
            version="1",
            description="NPS-driven recommendations, segment offers, segment exports, NPS "
            "summaries and comment themes, live NPS and order intake, and model versions. Send an API key as "
            "`Authorization: Bearer KEY` or `X-API-Key: KEY`; scopes: recommend, export, ingest, "
            "admin, privacy, survey. Errors are JSON `{error, detail}`.",
            path=DOCS_PATH,
            render_plugins=[docs_page()],
            components=Components(security_schemes=SECURITY_SCHEMES),  # type: ignore[arg-type]
        ),
        # Read by the API-key hook (it runs before dependencies are resolved), the error
        # handlers (a store outage marks the worker degraded), the console and the storefront's
        # routes (`recsvc.api.dependencies.storefront_model`): nothing else looks services up here.
        state=State(
            {
                "settings": settings,
                "holder": services.holder,
                "catalog": services.catalog,
                "exposures": services.exposures,
                "console_sessions": sessions,
            }
        ),
    )
