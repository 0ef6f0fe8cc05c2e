"""Request counts and latency per route template, at a cost the storefront does not notice.

Litestar's Prometheus middleware cost about 40 us of a recommendation's ~130 us in-process: per
request it builds a `Request`, two label dicts, looks up four labelled children under
prometheus_client's locks and walks the histogram's buckets (in multiprocess mode every write
goes to a memory-mapped file). Here a request adds a dict lookup, a bisect and a few float
additions to this worker's plain tallies (`RequestTally.record`); `flush` folds them into the same
prometheus_client metrics (names, labels and buckets as before) once a second and before every
scrape of this worker. So `/metrics` is exact for the worker that answers it and at most a second
late for the others (`recsvc serve --workers N` sums them).

Everything here runs on the worker's event loop thread: requests, the flush task, the scrape.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

PREFIX = "recsvc"
METRICS_PATH = "/metrics"
LABELS = ("method", "path", "status_code", "app_name")
BOUNDS: tuple[float, ...] = Histogram.DEFAULT_BUCKETS  # ends with +Inf
FLUSH_SECONDS = 1.0

REQUESTS = Counter(f"{PREFIX}_requests_total", "Total requests", LABELS)
ERRORS = Counter(f"{PREFIX}_requests_error_total", "Total errors in requests", LABELS)
DURATION = Histogram(
    f"{PREFIX}_request_duration_seconds", "Request duration, in seconds", LABELS, buckets=BOUNDS
)
IN_PROGRESS = Gauge(
    f"{PREFIX}_requests_in_progress",
    "Requests being answered when the worker last flushed its tallies (about once a second)",
    multiprocess_mode="livesum",
)

# A tally: [count, sum of seconds, then one count per bucket (not cumulative)].
_COUNT, _SUM, _FIRST_BUCKET = 0, 1, 2


class RequestTally:
    """One worker's requests since the last flush, per (method, route template, status)."""

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str, int], list[float]] = {}
        self.in_progress = 0

    def record(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = [0.0] * (_FIRST_BUCKET + len(BOUNDS))
        tally[_COUNT] += 1
        tally[_SUM] += seconds
        # prometheus_client's rule: the first bucket whose bound is >= the value.
        tally[_FIRST_BUCKET + bisect_left(BOUNDS, seconds)] += 1

    def flush(self) -> None:
        """Add the tallies to the Prometheus metrics and start new ones."""
        tallies, self._tallies = self._tallies, {}
        IN_PROGRESS.set(self.in_progress)
        for (method, path, status), tally in tallies.items():
            labels = (method, path, str(status), PREFIX)
            REQUESTS.labels(*labels).inc(tally[_COUNT])
            if status >= 500:
                ERRORS.labels(*labels).inc(tally[_COUNT])
            _add_observations(DURATION.labels(*labels), tally)

    async def run(self, interval: float = FLUSH_SECONDS) -> None:
        """Flush every `interval` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(interval)
                self.flush()
        finally:
            self.flush()


def _add_observations(child: Any, tally: list[float]) -> None:
    # prometheus_client has no bulk observe; its Histogram keeps a sum and one (non-cumulative)
    # value per bucket, which `observe` increments one at a time. Adding the counts directly gives
    # the same exposition (tests/integration/api/test_api_metrics.py checks it bucket by bucket).
    child._sum.inc(tally[_SUM])
    for index, count in enumerate(tally[_FIRST_BUCKET:]):
        if count:
            child._buckets[index].inc(count)


TALLY = RequestTally()


class RequestMetricsMiddleware:
    """Litestar wraps each route in its own instance, after routing: `path_template` is known."""

    def __init__(self, app: ASGIApp, tally: RequestTally = TALLY) -> None:
        self.app = app
        self.tally = tally

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path_template", "")
        if scope["type"] != "http" or path == METRICS_PATH:  # no websockets here
            await self.app(scope, receive, send)
            return
        status = 500  # an exception that escapes every handler ends as a 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tally = self.tally
        tally.in_progress += 1
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            tally.in_progress -= 1
            tally.record(scope["method"], path, status, time.perf_counter() - started)  # type: ignore[typeddict-item]
