"""The deliverer (`python -m recsvc deliver`): turns the membership journal into outbox events and
sends every destination's outbox, signed, in order, at least once.

One deliverer runs per store: it holds the store's delivery lock (an `flock` on the file store, a
renewed Redis lock otherwise), so a second one, on this machine or another replica, stands by and
takes over when the first dies. A separate process rather than a task inside the web workers:
several workers and replicas then need no election among themselves, a slow receiver never holds
a worker's threads, and it can be stopped, restarted and scaled apart from the storefront.

Per destination, one thread sends the head event and waits for its answer before the next, so
events reach a receiver in the order they were queued (hence in order per customer):
- 2xx: delivered, removed;
- 410 Gone: the destination is disabled (events keep queueing; an admin re-enables it);
- 429: wait for `Retry-After` (or the backoff), then the same event again;
- anything else, a timeout, no connection: exponential backoff with jitter, the same event and
  `webhook-id` again, until it is older than the maximum age (about three days): then it is
  given up on (counted as expired, logged) and the next one goes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass

import httpx

from recsvc.domain import times
from recsvc.domain.privacy import Suppression
from recsvc.domain.webhooks import (
    MAX_AGE,
    RETRY_BASE,
    OutboxEvent,
    Outcome,
    headers,
    outcome_of,
    retry_after,
    retry_delay,
)
from recsvc.errors import LockHeld, LockLost, StoreUnavailable
from recsvc.service.webhooks.destinations import Destination
from recsvc.service.webhooks.events import activation_events, initial_sync_events
from recsvc.store.base import Store
from recsvc.store.locks import DELIVERY_LOCK_TTL_SECONDS, TrainingLock
from recsvc.store.memberships import ActivationInfo

log = logging.getLogger("recsvc.deliver")
# Delivered events are removed from the outbox in groups: one durable write per group rather than
# per event. A deliverer killed mid-group sends the group's delivered events again (same ids).
ACK_EVERY = 50
ACK_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: Outcome
    status: str  # the HTTP status, or what went wrong ("timeout", "no connection (...)")
    at: dt.datetime
    retry_after: dt.timedelta | None = None


class Deliverer:
    def __init__(
        self,
        store: Store,
        destinations: list[Destination],
        *,
        retry_base: dt.timedelta = RETRY_BASE,
        max_age: dt.timedelta = MAX_AGE,
        poll_seconds: float = 1.0,
        lock_seconds: float = DELIVERY_LOCK_TTL_SECONDS,
        seed: int | None = None,
    ) -> None:
        self.lock_seconds = lock_seconds
        self.store = store
        self.destinations = destinations
        self.retry_base = retry_base
        self.max_age = max_age
        self.poll_seconds = poll_seconds
        self._rng = random.Random(seed)
        self._client = httpx.Client(follow_redirects=False)
        self._stop = threading.Event()

    # --- events from the membership journal ------------------------------------------------------

    def fill(self) -> int:
        """Queue the events of every activation each destination has not had yet (a new one
        first gets the current members); returns how many events were queued."""
        journal = self.store.memberships
        latest = journal.latest()
        if latest is None:
            return 0  # nothing published yet
        suppression = self.store.erasures.suppression()
        queued = 0
        for destination in self.destinations:
            state = self.store.outbox.state(destination.name)
            if state.filled_seq is None:
                queued += self._initial_sync(destination, latest, suppression)
                continue
            for activation in journal.activations(after_seq=state.filled_seq):
                events = activation_events(destination, activation, suppression)
                # Queued and marked in one step: after a crash, the events of an entry are queued
                # exactly once.
                self.store.outbox.append(destination.name, events, filled_seq=activation.seq)
                queued += len(events)
        return queued

    def _initial_sync(
        self, destination: Destination, latest: ActivationInfo, suppression: Suppression
    ) -> int:
        """A new destination's first events: the members of its segments as of the journal's
        last entry (its open spells), as `entered`; then it follows the journal from there."""
        spells = self.store.memberships.spells(through=latest.seq)
        members = (
            (segment, [s.customer_id for s in group if s.exited_at is None])
            for segment, group in itertools.groupby(spells, key=lambda s: s.segment)
        )
        events = initial_sync_events(
            destination,
            members,
            version=latest.version,
            activated_at=latest.activated_at,
            seq=latest.seq,
            suppression=suppression,
        )
        self.store.outbox.append(destination.name, events, filled_seq=latest.seq)
        log.info(
            "destination %s: initial sync of version %s queued (%d events)",
            destination.name,
            latest.version,
            len(events),
        )
        return len(events)

    # --- sending ---------------------------------------------------------------------------------

    def send_due(self, destination: Destination, limit: int = 1000) -> int:
        """Send the destination's waiting events in order while they are due; returns how many
        were delivered (or given up on). Stops at the first that must wait (a backoff, a 429), or
        when the destination is disabled.

        Delivered events are removed from the outbox together, at most ACK_EVERY or ACK_SECONDS'
        worth at a time, and before any failure is recorded: a deliverer killed meanwhile sends
        those again (same ids), never skips one."""
        outbox = self.store.outbox
        progressed = 0
        while progressed < limit and not self._stop.is_set():
            state = outbox.state(destination.name)
            if state.disabled is not None:
                break
            if state.next_attempt_at and times.parse_iso(state.next_attempt_at) > times.now():
                break
            events = outbox.peek(destination.name, min(ACK_EVERY, limit - progressed))
            if not events:
                break
            sent, failure = self._send_in_order(destination, events)
            progressed += sent
            if failure is None:
                continue
            event, attempt = failure
            if not self._failed(destination, event, state.attempts if sent == 0 else 0, attempt):
                break
            progressed += 1  # given up on: the next one goes
        return progressed

    def _send_in_order(
        self, destination: Destination, events: list[OutboxEvent]
    ) -> tuple[int, tuple[OutboxEvent, Attempt] | None]:
        """POST events one after the other until one fails; the delivered ones are removed.
        Returns how many were delivered, and the failed event with its attempt (if any)."""
        delivered: list[str] = []
        last: Attempt | None = None
        failure = None
        started = time.monotonic()
        for event in events:
            attempt = self._post(destination, event)
            if attempt.outcome != "delivered":
                failure = (event, attempt)
                break
            delivered.append(event.id)
            last = attempt
            if time.monotonic() - started > ACK_SECONDS:
                break
        if delivered and last is not None:
            self.store.outbox.remove(
                destination.name,
                delivered,
                attempts=0,
                next_attempt_at=None,
                last_status=last.status,
                last_attempt_at=times.iso(last.at),
                add_delivered=len(delivered),
            )
        return len(delivered), failure

    def _post(self, destination: Destination, event: OutboxEvent) -> Attempt:
        now = times.now()
        body = event.body.encode()
        try:
            reply = self._client.post(
                destination.url,
                content=body,
                headers=headers(destination.keys, event.id, times.epoch_seconds(now), body),
                timeout=destination.timeout_seconds,
            )
        except httpx.TimeoutException:
            return Attempt("retry", "timeout", now)
        except httpx.HTTPError as exc:
            return Attempt("retry", f"no connection ({type(exc).__name__})", now)
        told = retry_after(reply.headers.get("retry-after"), now)
        return Attempt(outcome_of(reply.status_code), str(reply.status_code), now, told)

    def _failed(
        self, destination: Destination, event: OutboxEvent, attempts: int, attempt: Attempt
    ) -> bool:
        """Record a failed attempt at the head event; True when it was given up on (removed)."""
        outbox = self.store.outbox
        stamp = times.iso(attempt.at)
        if attempt.outcome == "gone":
            log.error("destination %s answered 410 Gone: disabled", destination.name)
            outbox.update(
                destination.name,
                disabled=f"410 Gone at {stamp}",
                last_status=attempt.status,
                last_attempt_at=stamp,
                add_failed_attempts=1,
            )
            return False
        age = attempt.at - times.parse_iso(event.created_at)
        if age >= self.max_age:
            log.error(
                "destination %s: giving up on event %s (%s) after %d attempts over %s",
                destination.name,
                event.id,
                event.type,
                attempts + 1,
                age,
            )
            return outbox.remove(
                destination.name,
                [event.id],
                attempts=0,
                next_attempt_at=None,
                last_status=attempt.status,
                last_attempt_at=stamp,
                add_failed_attempts=1,
                add_expired=1,
            )
        wait = retry_delay(attempts + 1, self._rng, base=self.retry_base)
        if attempt.outcome == "throttled" and attempt.retry_after is not None:
            wait = attempt.retry_after
        log.warning(
            "destination %s: event %s attempt %d failed (%s); next in %.1f s",
            destination.name,
            event.id,
            attempts + 1,
            attempt.status,
            wait.total_seconds(),
        )
        outbox.update(
            destination.name,
            attempts=attempts + 1,
            next_attempt_at=(attempt.at + wait).isoformat(),
            last_status=attempt.status,
            last_attempt_at=stamp,
            add_failed_attempts=1,
        )
        return False

    # --- running ---------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def _destination_loop(self, destination: Destination, leading: threading.Event) -> None:
        while leading.is_set() and not self._stop.is_set():
            try:
                sent = self.send_due(destination)
            except StoreUnavailable as exc:
                log.warning("destination %s: store unavailable: %s", destination.name, exc)
                sent = 0
            except Exception:  # a bug must not stop this destination for good
                log.exception("destination %s: delivery failed", destination.name)
                sent = 0
            if not sent:
                self._stop.wait(self.poll_seconds)

    def run(self) -> None:
        """Deliver until `stop()`: take the delivery lock (standing by while another deliverer
        has it), then fill and send, one thread per destination; a lost lock (Redis could not
        renew it) stops sending and goes back to standing by."""
        while not self._stop.is_set():
            lock = self._take_lock()
            if lock is None:
                return
            try:
                self._lead(lock)
            finally:
                with contextlib.suppress(Exception):
                    lock.release()
        self._client.close()

    def _take_lock(self) -> TrainingLock | None:
        announced = False
        while not self._stop.is_set():
            try:
                return self.store.delivery_lock(self.lock_seconds)
            except LockHeld as exc:
                if not announced:
                    log.info("standing by: %s", exc)
                    announced = True
            except StoreUnavailable as exc:
                log.warning("cannot reach the store for the delivery lock: %s", exc)
            self._stop.wait(max(self.poll_seconds, 1.0))
        return None

    def _lead(self, lock: TrainingLock) -> None:
        log.info(
            "delivering to %d destination(s): %s",
            len(self.destinations),
            ", ".join(d.name for d in self.destinations) or "(none)",
        )
        leading = threading.Event()
        leading.set()
        threads = [
            threading.Thread(
                target=self._destination_loop,
                args=(d, leading),
                name=f"deliver-{d.name}",
                daemon=True,
            )
            for d in self.destinations
        ]
        for thread in threads:
            thread.start()
        try:
            while not self._stop.is_set():
                try:
                    lock.check()
                except LockLost as exc:
                    log.error("%s: standing by", exc)
                    return
                try:
                    self.fill()
                except StoreUnavailable as exc:
                    log.warning("cannot read the membership journal: %s", exc)
                except Exception:
                    log.exception("turning the membership journal into events failed")
                self._stop.wait(self.poll_seconds)
        finally:
            leading.clear()
            for thread in threads:
                thread.join()
