"""The detractor webhook: every new detractor answer taken in live is POSTed (JSON) to a URL.

It runs on one background thread per worker fed by a bounded queue: intake only enqueues, so
neither a slow webhook nor its retries hold up a request or the server's thread pool. It is best
effort: the responses themselves are stored before 202; a notification still failing after every
retry or dropped because the queue is full is counted in `/metrics` and logged, and one still
queued when the worker stops (it gets 5 s to drain) is logged; none is replayed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import msgspec

from recsvc.domain.live import LiveResponse
from recsvc.domain.nps import NpsCategory, category

log = logging.getLogger("recsvc.webhook")
QUEUE_LIMIT = 10_000  # intake requests' detractor batches waiting for the webhook; then dropped
WEBHOOK_ATTEMPTS = 4


def detractors(responses: list[LiveResponse]) -> list[LiveResponse]:
    return [r for r in responses if category(r.score) is NpsCategory.DETRACTOR]


def notify_detractors(
    url: str,
    responses: list[LiveResponse],
    attempts: int = 4,
    erased: Callable[[LiveResponse], bool] | None = None,
) -> tuple[int, int]:
    """POST each new detractor response to the webhook, retrying with backoff; returns how many
    were delivered and how many were dropped because their customer was erased meanwhile
    (`erased`, asked before every attempt). Runs after the reply is sent, so a slow webhook never
    holds up intake."""
    delivered = dropped = 0
    for response in responses:
        body = json.dumps(
            {"event": "detractor_response", **msgspec.to_builtins(response)}, default=str
        ).encode()
        for attempt in range(attempts):
            if erased is not None and erased(response):
                dropped += 1
                break
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as reply:
                    if 200 <= reply.status < 300:
                        delivered += 1
                        break
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                log.warning(
                    "detractor webhook attempt %d/%d for %s failed: %s",
                    attempt + 1,
                    attempts,
                    response.response_id,
                    exc,
                )
            time.sleep(min(0.25 * 2**attempt, 4.0))
        else:
            log.error("detractor webhook gave up on response %s", response.response_id)
    return delivered, dropped


class DetractorNotifier:
    """POSTs new detractor responses to the webhook from a background thread, with retries."""

    def __init__(
        self,
        url: str,
        attempts: int = WEBHOOK_ATTEMPTS,
        erased: Callable[[LiveResponse], bool] | None = None,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.erased = erased
        self.erased_dropped = 0
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[list[LiveResponse] | None] = queue.Queue(QUEUE_LIMIT)
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, responses: list[LiveResponse]) -> None:
        if not self.url or not responses:
            return
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="detractor-webhook", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(responses)
        except queue.Full:
            self.dropped += len(responses)
            log.error("detractor webhook queue is full: dropped %d response(s)", len(responses))

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                delivered, erased = notify_detractors(
                    self.url, batch, attempts=self.attempts, erased=self.erased
                )
            except Exception:  # a bug must not kill the thread: the next batch still goes out
                log.exception("detractor webhook failed")
                delivered, erased = 0, 0
            self.delivered += delivered
            self.erased_dropped += erased
            self.failed += len(batch) - delivered - erased

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the queued batches (waits at most `timeout` seconds)."""
        with self._start:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("stopping while detractor webhook calls are still pending or queued")
