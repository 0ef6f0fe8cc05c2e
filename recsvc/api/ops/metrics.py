"""`GET /metrics`: Prometheus text from Litestar's Prometheus plugin plus the service's own metrics.

Request metrics come from `recsvc.api.ops.request_metrics` (tallied per worker, folded into
prometheus_client once a second and at each scrape), labelled by route template
(`/v1/customers/{customer_id}/recommendations`, never a customer id), method and status:
`recsvc_requests_total`, `recsvc_request_duration_seconds` (histogram),
`recsvc_requests_error_total` (5xx), and `recsvc_requests_in_progress` (sampled at each flush).
The service's own, read from the worker's state at scrape time:

- `recsvc_model_info{version}`: the version this worker serves (absent before the first load);
  `recsvc_model_created_timestamp_seconds`: when that version was trained;
- `recsvc_store_degraded`: 1 while the store cannot be reached (reads answer from memory);
- `recsvc_active_version_broken`: 1 while the active version does not open (this worker serves the
  version it had, or the newest stored one that opens);
- `recsvc_fast_lane_answers_total{path}`: storefront requests answered by the fast lane
  (`recsvc.api.storefront.fast_lane`), the rest went through the route's handler;
- `recsvc_store_errors_total`: failed store calls; `recsvc_model_reloads_total`: versions loaded;
  `recsvc_model_load_failures_total`: active versions that failed to load;
- per webhook destination (`{destination}`), read from the store's outbox, so every worker shows
  the deliverer's progress: `recsvc_webhook_queue_depth` (events waiting),
  `recsvc_webhook_oldest_pending_seconds`, `recsvc_webhook_head_attempts` (failed attempts of the
  event at the head), `recsvc_webhook_disabled`, and the counters
  `recsvc_webhook_delivered_total`, `recsvc_webhook_failed_attempts_total`,
  `recsvc_webhook_expired_total` (given up after the maximum age).

Like the health probes, `/metrics` needs no API key: it holds no customer data; keep it behind the
network boundary. With several workers (`--workers N`) `recsvc serve` sets
`PROMETHEUS_MULTIPROC_DIR`, so request metrics are summed over the workers; the service metrics
above are those of the worker that answers the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from litestar import Response, get
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from recsvc.api.dependencies import Injected
from recsvc.api.ops.request_metrics import METRICS_PATH, PREFIX, TALLY
from recsvc.api.storefront.fast_lane import ANSWERED as FAST_LANE_ANSWERED
from recsvc.domain import times
from recsvc.errors import StoreUnavailable
from recsvc.service.runtime import ModelHolder
from recsvc.service.webhooks.destinations import Webhooks
from recsvc.service.webhooks.status import DestinationStatus, destination_status
from recsvc.store.base import Store

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_VARIABLE) or os.environ.get(MULTIPROCESS_VARIABLE.lower())


def mark_worker_dead() -> None:
    """On a worker's exit in multiprocess mode: drop its live gauges from the sums."""
    if multiprocess_dir():
        prometheus_multiprocess.mark_process_dead(os.getpid())


class ServiceCollector(Collector):
    """The worker's model, store and webhook state, read at scrape time."""

    def __init__(self, holder: ModelHolder, webhooks: Webhooks, store: Store) -> None:
        self.holder = holder
        self.webhooks = webhooks
        self.store = store

    def collect(self) -> Iterator[Metric]:
        holder = self.holder
        model = holder.current
        info = InfoMetricFamily(f"{PREFIX}_model", "The model version this worker serves")
        created = GaugeMetricFamily(
            f"{PREFIX}_model_created_timestamp_seconds",
            "When the served model version was trained (Unix time)",
        )
        if model is not None:
            info.add_metric([], {"version": model.version})
            stamp = _timestamp(model.loaded.manifest.created_at)
            if stamp is not None:
                created.add_metric([], stamp)
        yield info
        yield created
        yield GaugeMetricFamily(
            f"{PREFIX}_store_degraded",
            "1 while the store cannot be reached and reads answer from the model in memory",
            value=1 if holder.store_error else 0,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_active_version_broken",
            "1 while the store's active version does not open and this worker serves another",
            value=1 if holder.version_error else 0,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_store_errors", "Store calls that failed", value=holder.store_errors
        )
        yield CounterMetricFamily(
            f"{PREFIX}_model_reloads", "Model versions loaded by this worker", value=holder.reloads
        )
        yield CounterMetricFamily(
            f"{PREFIX}_model_load_failures",
            "Active versions this worker failed to load (it kept serving the previous one)",
            value=holder.load_failures,
        )
        lane = CounterMetricFamily(
            f"{PREFIX}_fast_lane_answers",
            "Storefront requests this worker answered on the fast lane (the rest: the handler)",
            labels=["path"],
        )
        for path, count in sorted(FAST_LANE_ANSWERED.items()):
            lane.add_metric([path], count)
        yield lane
        yield from self._webhooks()

    def _webhooks(self) -> Iterator[Metric]:
        if not self.webhooks.destinations:
            return
        try:
            statuses = destination_status(self.store, self.webhooks.destinations)
        except StoreUnavailable:
            return  # `recsvc_store_degraded` says why
        for name, kind, help_text, value in WEBHOOK_METRICS:
            family = kind(f"{PREFIX}_webhook_{name}", help_text, labels=["destination"])
            for status in statuses:
                family.add_metric([status.name], value(status))
            yield family


# Per webhook destination, read from the store's outbox state: name, kind, help, value.
WEBHOOK_METRICS: tuple[
    tuple[
        str,
        type[GaugeMetricFamily | CounterMetricFamily],
        str,
        Callable[[DestinationStatus], float],
    ],
    ...,
] = (
    ("queue_depth", GaugeMetricFamily, "Events waiting for delivery", lambda s: s.pending),
    (
        "oldest_pending_seconds",
        GaugeMetricFamily,
        "Age of the oldest event waiting for delivery",
        lambda s: s.oldest_pending_seconds or 0.0,
    ),
    (
        "head_attempts",
        GaugeMetricFamily,
        "Failed attempts of the event at the head of the queue",
        lambda s: s.attempts,
    ),
    (
        "disabled",
        GaugeMetricFamily,
        "1 while delivery is stopped (the receiver answered 410)",
        lambda s: 1 if s.disabled else 0,
    ),
    ("delivered", CounterMetricFamily, "Events delivered (2xx)", lambda s: s.delivered),
    (
        "failed_attempts",
        CounterMetricFamily,
        "Delivery attempts that failed (non-2xx, timeout, no connection)",
        lambda s: s.failed_attempts,
    ),
    (
        "expired",
        CounterMetricFamily,
        "Events given up on after the maximum age",
        lambda s: s.expired,
    ),
)


def _timestamp(created_at: str) -> float | None:
    try:
        return times.parse_iso(created_at).timestamp()
    except ValueError:
        return None


def service_registry(holder: ModelHolder, webhooks: Webhooks, store: Store) -> CollectorRegistry:
    """One registry per app: several apps in one process (tests) never share service metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(holder, webhooks, store))
    return registry


class MetricsController(PrometheusController):
    path = METRICS_PATH

    @get(
        summary="Prometheus metrics: requests by route, latency, model version, store health",
        tags=["operations"],
        media_type=CONTENT_TYPE_LATEST,
    )
    async def get(self, metrics_registry: Injected[CollectorRegistry]) -> Response[bytes]:
        TALLY.flush()  # this worker's requests up to now; the others' within a second
        registry: CollectorRegistry = REGISTRY
        if multiprocess_dir():
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry) + generate_latest(metrics_registry)
        # The header as prometheus_client spells it (a media_type would get a second charset).
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})
