"""Taking in NPS responses (check, store durably, count) and telling the detractor webhook.

The webhook runs on one background thread per worker fed by a bounded queue: intake only enqueues,
so neither a slow webhook nor its retries hold up a request or the server's thread pool. It is best
effort: the responses themselves are stored before 202; a notification still failing after every
retry or dropped because the queue is full is counted in `/metrics` and logged, and one still
queued when the worker stops (it gets 5 s to drain) is logged; none is replayed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import queue
import threading
from dataclasses import dataclass

import numpy as np

from recsvc.domain.live import LiveResponse
from recsvc.errors import InvalidRequest, UnsupportedMediaType, shown
from recsvc.service.intake import (
    BadBody,
    IntakeResult,
    check_responses,
    detractors,
    notify_detractors,
    parse_body,
)
from recsvc.service.nps_summary import response_key
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel

log = logging.getLogger("recsvc.service.intake")
QUEUE_LIMIT = 10_000  # intake requests' detractor batches waiting for the webhook; then dropped
WEBHOOK_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class Intake:
    result: IntakeResult
    new_detractors: list[LiveResponse]


def check_json_body(content_type: tuple[str, dict[str, str]]) -> None:
    """A JSON body is announced as `application/json` (UTF-8, the only charset JSON has)."""
    media_type, options = content_type
    charset = options.get("charset", "utf-8").lower()
    if media_type.lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {shown(media_type or '(none)')}"
        )


def take_in(
    body: bytes, store: Store, received_at: dt.datetime, model: ActiveModel | None = None
) -> Intake:
    """Check and store one request's responses; InvalidRequest when nothing in it is usable.

    A response is a duplicate when its response_id is live in the store or held by `model`, the
    active version (once a version holds an answer, the training run moves it out of live, so the
    store alone no longer knows the id). Store errors (StoreUnavailable) propagate: nothing is
    acknowledged that is not stored.
    """
    try:
        items = parse_body(body)
    except BadBody as exc:
        raise InvalidRequest(str(exc)) from None
    valid, rejected = check_responses(items, received_at)
    if not valid and rejected:
        raise InvalidRequest(
            "no valid response: "
            + "; ".join(f"[{r.index}] {', '.join(r.errors)}" for r in rejected[:20])
        )
    unheld = [r for r, held in zip(valid, _held(model, valid), strict=True) if not held]
    new_flags = store.add_responses(unheld)
    new = [r for r, is_new in zip(unheld, new_flags, strict=True) if is_new]
    duplicates = len(items) - len(rejected) - len(new)
    return Intake(IntakeResult(len(new), duplicates, rejected), detractors(new))


def _held(model: ActiveModel | None, responses: list[LiveResponse]) -> list[bool]:
    """Per response: whether the version's NPS answers hold its response_id."""
    if model is None or model.responses is None or not responses:
        return [False] * len(responses)
    keys = np.fromiter((response_key(r.response_id) for r in responses), np.uint64, len(responses))
    return [bool(held) for held in model.responses.holds(keys)]


class DetractorNotifier:
    """POSTs new detractor responses to the webhook from a background thread, with retries."""

    def __init__(self, url: str, attempts: int = WEBHOOK_ATTEMPTS) -> None:
        self.url = url
        self.attempts = attempts
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
                delivered = notify_detractors(self.url, batch, attempts=self.attempts)
            except Exception:  # a bug must not kill the thread: the next batch still goes out
                log.exception("detractor webhook failed")
                delivered = 0
            self.delivered += delivered
            self.failed += len(batch) - delivered

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
