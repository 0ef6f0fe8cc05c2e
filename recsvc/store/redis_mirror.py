"""Every customer's live records in this worker's memory, kept current by Redis pub/sub, so that a
storefront request reads them without a round trip (`RedisStore.follow_live`).

Whatever changes a customer's live records or the erasure log announces it on
`{prefix}:live:changes` (`LiveChanges.announce`, after the change is written): intake, compaction,
erasure. A worker's mirror thread:

1. subscribes to the channel and waits for Redis to confirm, so every later change reaches it;
2. reads everything: the customers with live answers or order lines, their lists, the erasure
   log's latest erasure per customer; then swaps that in and is *synced*;
3. re-reads the customers each announcement names (one pipelined round trip per message).

While it is not synced (starting, or after any error on its connection: Redis restarted, the
network broke) `RedisStore.live_of` reads Redis directly, as it did before the mirror, so a request
never answers from a mirror that may have missed a change; the thread reconnects and starts again
at 1. An announcement reaches every subscribed worker within a millisecond or two on a LAN; the
worker that took the intake re-reads the customers itself before it answers, so its next request
sees them at once. `bench/bench_service.py` measures the time from an intake's 202 until every
worker of two replicas serves the answer.

Memory: the live records since the last nightly compaction, decoded (a few hundred bytes each).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec
import redis

from recsvc.domain.live import LiveActivity, LiveOrderLine, LiveResponse
from recsvc.domain.privacy import Suppression
from recsvc.store.redis_changes import LiveChange, decode_change
from recsvc.store.redis_live import RedisLiveLog, as_text

log = logging.getLogger("recsvc.store")
R = TypeVar("R", LiveResponse, LiveOrderLine)

_BATCH = 500  # customers per pipeline
_IDLE_PING_SECONDS = 5.0  # a silent subscription is pinged, so a dead connection is noticed
_RETRY_SECONDS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class RedisLiveMirror:
    """See the module docstring. Thread-safe: requests read while the mirror thread writes (each
    customer's entry is replaced whole, never changed in place)."""

    def __init__(
        self,
        client: Any,
        channel: str,
        answers: RedisLiveLog[LiveResponse],
        orders: RedisLiveLog[LiveOrderLine],
        suppression: Callable[[], Suppression],
    ) -> None:
        self._client = client
        self._channel = channel
        self._answers_log = answers
        self._orders_log = orders
        self._read_suppression = suppression
        self._answers: dict[str, Sequence[LiveResponse]] = {}
        self._orders: dict[str, Sequence[LiveOrderLine]] = {}
        self._suppression = Suppression()
        self._synced = False
        self._lock = threading.Lock()  # one re-read and assignment at a time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recsvc-live-mirror", daemon=True)
        self.syncs = 0  # full reads done (a test and the bench watch it)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def synced(self) -> bool:
        return self._synced

    def live_of(self, customer_id: str) -> LiveActivity | None:
        """The customer's live records and erasure, or None while not synced (read Redis)."""
        if not self._synced:
            return None
        return LiveActivity(
            self._answers.get(customer_id, ()),
            self._orders.get(customer_id, ()),
            erased_at=self._suppression.erased_at(customer_id),
        )

    def apply(self, change: LiveChange) -> None:
        """Re-read what `change` names (skipped while not synced: the full read will have it)."""
        if not self._synced:
            return
        with self._lock:
            if change.erasures:
                self._suppression = self._read_suppression()
            for start in range(0, len(change.customers), _BATCH):
                self._reread(change.customers[start : start + _BATCH])

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            pubsub = self._client.pubsub()
            try:
                self._follow(pubsub)
            except Exception as exc:  # any failure: unsynced, reconnect, read everything again
                self._synced = False
                if not self._stop.is_set():
                    delay = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                    failures += 1
                    log.warning(
                        "live mirror: %s; reading Redis directly, retrying in %.2f s", exc, delay
                    )
                    self._stop.wait(delay)
            else:
                failures = 0
            finally:
                self._synced = False
                with contextlib.suppress(Exception):  # closing a broken connection
                    pubsub.close()

    def _follow(self, pubsub: Any) -> None:
        pubsub.subscribe(self._channel)
        deadline = time.monotonic() + 5
        while True:  # Redis confirms the subscription before any message on it
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "subscribe":
                break
            if time.monotonic() > deadline:
                raise redis.TimeoutError("no subscription confirmation within 5 s")
        self._full_read()
        idle_since = time.monotonic()
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                if time.monotonic() - idle_since > _IDLE_PING_SECONDS:
                    pubsub.ping()
                    idle_since = time.monotonic()
                continue
            idle_since = time.monotonic()
            if message["type"] != "message":
                continue
            try:
                change = decode_change(message["data"])
            except msgspec.DecodeError:
                log.warning("live mirror: an unreadable change announcement; reading everything")
                self._full_read()
                continue
            self.apply(change)

    def _full_read(self) -> None:
        self._synced = False
        suppression = self._read_suppression()
        answers = self._read_all(self._answers_log)
        orders = self._read_all(self._orders_log)
        with self._lock:
            self._answers, self._orders, self._suppression = answers, orders, suppression
            self._synced = True
            self.syncs += 1

    def _read_all(self, live: RedisLiveLog[R]) -> dict[str, Sequence[R]]:
        held: dict[str, Sequence[R]] = {}
        customers = sorted(as_text(c) for c in self._client.smembers(live.keys.customers))
        for start in range(0, len(customers), _BATCH):
            batch = customers[start : start + _BATCH]
            pipe = self._client.pipeline(transaction=False)
            for customer in batch:
                pipe.lrange(live.keys.of_customer(customer)[0], 0, -1)
            for customer, raw in zip(batch, pipe.execute(), strict=True):
                if raw:
                    held[customer] = live.decode_all(raw)
        return held

    def _reread(self, customers: list[str]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for customer in customers:
            pipe.lrange(self._answers_log.keys.of_customer(customer)[0], 0, -1)
            pipe.lrange(self._orders_log.keys.of_customer(customer)[0], 0, -1)
        results = pipe.execute()
        for index, customer in enumerate(customers):
            answers, orders = results[2 * index], results[2 * index + 1]
            _put(
                self._answers, customer, self._answers_log.decode_all(answers) if answers else None
            )
            _put(self._orders, customer, self._orders_log.decode_all(orders) if orders else None)


def _put(held: dict[str, Any], customer: str, records: Sequence[Any] | None) -> None:
    if records:
        held[customer] = records
    else:
        held.pop(customer, None)
