"""What controllers are given, through Litestar's dependency injection (`Provide`): the services
`create_app` builds once per worker, and per request the model version it is answered from.

Controllers declare what they need as parameters (`holder: Injected[ModelHolder]`,
`model: Injected[ActiveModel]`). Two exceptions read `app.state` instead: the API-key hook, which
runs before parameters are resolved, and the storefront's two routes (`storefront_model`), where
Litestar's dependency resolution cost about 25 us of a recommendation's ~100 us in-process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias, TypeVar

from litestar import Request
from litestar.di import Dependency, Provide
from litestar.exceptions import ServiceUnavailableException
from litestar.params import SkipValidationMarker
from prometheus_client import CollectorRegistry

from recsvc.domain.offers import OfferCatalog
from recsvc.service.experiments import ExposureRecorder
from recsvc.service.runtime import ModelHolder
from recsvc.service.settings import Settings
from recsvc.service.surveys import SurveyPlanner
from recsvc.service.webhooks.destinations import Webhooks
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel

T = TypeVar("T")
# A parameter given by a provider below, by its name. Our own objects, not client input: not
# validated (Litestar would check each one's type on every request).
Injected: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]


@dataclass(frozen=True, slots=True)
class Services:
    """One worker's long-lived services."""

    settings: Settings
    store: Store
    holder: ModelHolder
    catalog: OfferCatalog
    webhooks: Webhooks
    exposures: ExposureRecorder
    surveys: SurveyPlanner


def active_model(holder: Injected[ModelHolder]) -> ActiveModel:
    """The model the request is answered from, taken once: the whole reply comes from this
    version, even if a new one is swapped in meanwhile. 503 while there is none."""
    current = holder.current
    if current is None:
        raise ServiceUnavailableException(
            "no model version is active yet: run the training job first"
        )
    return current


def storefront_model(request: Request[Any, Any, Any]) -> tuple[ModelHolder, ActiveModel]:
    """The worker's model holder and the version the request is answered from, without
    dependency injection (see the module docstring); 503 while there is none."""
    holder: ModelHolder = request.app.state.holder
    return holder, active_model(holder)


def _constant(value: Any) -> Provide:
    # Resolved once and cached: the same object for every request of this worker.
    return Provide(lambda: value, use_cache=True, sync_to_thread=False)


def dependencies(services: Services, metrics_registry: CollectorRegistry) -> dict[str, Provide]:
    """The app-wide providers; `model` is resolved per request, the others once."""
    return {
        "metrics_registry": _constant(metrics_registry),
        "settings": _constant(services.settings),
        "store": _constant(services.store),
        "holder": _constant(services.holder),
        "catalog": _constant(services.catalog),
        "webhooks": _constant(services.webhooks),
        "exposures": _constant(services.exposures),
        "surveys": _constant(services.surveys),
        "model": Provide(active_model, sync_to_thread=False),
    }
