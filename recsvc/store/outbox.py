"""The webhook outbox of both stores (`Store.outbox`): per destination, a FIFO of events waiting to
be delivered and the destination's delivery state. Events are stored durably before whoever made
them moves on (the intake before its 202, the deliverer before it marks a membership change as
turned into events); only the deliverer removes one, after the receiver's 2xx.

File store: `outbox/<destination>/events-<generation>.ndjson` (append-only lines; `state.json`
holds the generation, the byte offset of the head and the counters) under one `flock` per
destination (`outbox/<destination>/.lock`) that every change takes. Cutting off the delivered part
(or an erasure) writes the next generation's file, then switches `state.json` to it in one
rename, then deletes the old one: a crash at any point leaves one consistent pair.

Redis store: `{prefix}:{outbox}:<destination>:events` (a list), `...:state` (a hash, one JSON value
per field) and `{prefix}:{outbox}:destinations` (a set); one hash tag, so legal on a cluster.
Removing the head checks its id under WATCH, so an erasure rewriting the list meanwhile is safe.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec
import redis

from recsvc.domain.webhooks import OutboxEvent, without_customer
from recsvc.errors import StoreUnavailable
from recsvc.store.durable import exclusive_lock, replace_durably, write_all, write_new
from recsvc.store.redis_live import as_bytes, as_text

OUTBOX_DIR = Path("outbox")
_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(OutboxEvent)
_COMPACT_BYTES = 1 << 20


class DestinationState(msgspec.Struct, kw_only=True):
    """Where one destination's delivery stands (what `GET /v1/webhooks` and `/metrics` show)."""

    pending: int = 0  # events waiting, the head included
    filled_seq: int | None = (
        None  # last membership-journal entry turned into events; None: initial sync due
    )
    attempts: int = 0  # failed attempts of the head event so far
    next_attempt_at: str | None = None  # the head waits until then (a backoff or a Retry-After)
    disabled: str | None = None  # why delivery stopped (a 410), None while enabled
    delivered: int = 0
    failed_attempts: int = 0
    expired: int = 0  # events given up on after the maximum age
    last_status: str | None = None
    last_attempt_at: str | None = None


class Outbox(Protocol):
    def append(self, destination: str, events: list[OutboxEvent], **changes: Any) -> None:
        """Queue events at the tail, durably, before returning, and apply `changes` to the state
        in the same step (the deliverer marks which journal entry the events came from)."""
        ...

    def head(self, destination: str) -> OutboxEvent | None:
        """The oldest waiting event (delivery is in order per destination)."""
        ...

    def peek(self, destination: str, limit: int) -> list[OutboxEvent]:
        """The oldest waiting events, at most `limit`, oldest first."""
        ...

    def remove(self, destination: str, event_ids: list[str], **changes: Any) -> bool:
        """Remove the oldest events if they are still `event_ids` (in that order), and apply
        `changes` to the state (fields to set, or `add_<name>=n` to add) in the same step; False,
        and nothing changed, when the queue starts otherwise (an erasure rewrote it meanwhile)."""
        ...

    def update(self, destination: str, **changes: Any) -> DestinationState:
        """Apply `changes` to the state (fields to set, or `add_<name>=n` to add); returns it."""
        ...

    def state(self, destination: str) -> DestinationState: ...

    def destinations(self) -> list[str]:
        """Every destination that ever had an outbox here."""
        ...

    def mentioning(self, customer_id: str) -> list[tuple[str, OutboxEvent]]:
        """Every waiting event that names the customer, with its destination (a data export)."""
        ...

    def erase(self, customer_id: str) -> int:
        """Take a customer out of every waiting event (a privacy erasure): events about them alone
        are dropped, batches re-encoded without them. Returns how many events changed."""
        ...


S = TypeVar("S", bound=DestinationState)


def _applied(state: S, changes: dict[str, Any]) -> S:
    for name, value in changes.items():
        if name.startswith("add_"):
            field = name.removeprefix("add_")
            setattr(state, field, getattr(state, field) + value)
        else:
            setattr(state, name, value)
    return state


def _mentioning(outbox: Outbox, customer_id: str) -> list[tuple[str, OutboxEvent]]:
    return [
        (destination, event)
        for destination in outbox.destinations()
        for event in outbox.peek(destination, outbox.state(destination).pending)
        if customer_id in event.customers
    ]


# --- file store -----------------------------------------------------------------------------------


class _FileState(DestinationState, kw_only=True):
    generation: int = 0  # which events file is current
    offset: int = 0  # bytes of it already delivered
    end: int = 0  # bytes of it holding counted events (past it: a torn write, cut off)


def _events(directory: Path, state: _FileState) -> Path:
    return directory / f"events-{state.generation}.ndjson"


class FileOutbox:
    def __init__(self, root: Path) -> None:
        self.root = root / OUTBOX_DIR

    def _dir(self, destination: str) -> Path:
        return self.root / destination

    @contextmanager
    def _locked(self, destination: str, doing: str) -> Iterator[Path]:
        directory = self._dir(destination)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with exclusive_lock(directory / ".lock"):
                yield directory
        except OSError as exc:
            raise StoreUnavailable(f"cannot {doing} the outbox of {destination!r}: {exc}") from exc

    def _read_state(self, directory: Path) -> _FileState:
        try:
            return msgspec.json.decode((directory / "state.json").read_bytes(), type=_FileState)
        except FileNotFoundError:
            return _FileState()

    def _write_state(self, directory: Path, state: _FileState) -> None:
        replace_durably(directory / "state.json", _encoder.encode(state))

    def append(self, destination: str, events: list[OutboxEvent], **changes: Any) -> None:
        if not events and not changes:
            return
        with self._locked(destination, "append to") as directory:
            state = self._read_state(directory)
            path = _events(directory, state)
            data = b"".join(_encoder.encode(e) + b"\n" for e in events)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size != state.end:  # a writer killed mid-write left a fragment
                    os.ftruncate(fd, state.end)
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            state.end += len(data)
            # The state names the new events only once they are durable: a crash before it leaves
            # lines past the counted ones, which the next append cuts off (never half an event).
            state.pending += len(events)
            self._write_state(directory, _applied(state, changes))

    def head(self, destination: str) -> OutboxEvent | None:
        events = self.peek(destination, 1)
        return events[0] if events else None

    def peek(self, destination: str, limit: int) -> list[OutboxEvent]:
        with self._locked(destination, "read") as directory:
            state = self._read_state(directory)
            return [_event_decoder.decode(line) for line in self._lines(directory, state, limit)]

    def _lines(self, directory: Path, state: _FileState, limit: int) -> list[bytes]:
        """The first `limit` waiting events' lines."""
        count = min(limit, state.pending)
        if count <= 0:
            return []
        with _events(directory, state).open("rb") as handle:
            handle.seek(state.offset)
            return [handle.readline() for _ in range(count)]

    def remove(self, destination: str, event_ids: list[str], **changes: Any) -> bool:
        with self._locked(destination, "update") as directory:
            state = self._read_state(directory)
            lines = self._lines(directory, state, len(event_ids))
            if [_event_decoder.decode(line).id for line in lines] != event_ids:
                return False
            state.offset += sum(len(line) for line in lines)
            state.pending -= len(lines)
            _applied(state, changes)
            if state.offset >= _COMPACT_BYTES:
                self._cut_delivered(directory, state)
            else:
                self._write_state(directory, state)
            return True

    def _cut_delivered(self, directory: Path, state: _FileState) -> None:
        """Move the waiting events to the next generation's file (the state written with it)."""
        path = _events(directory, state)
        with path.open("rb") as handle:
            handle.seek(state.offset)
            rest = handle.read(state.end - state.offset)
        self._next_generation(directory, state, rest)

    def _next_generation(self, directory: Path, state: _FileState, data: bytes) -> None:
        """Write `data` as the next generation's events, then point the state at it; the old file
        goes only once the state no longer names it."""
        old = _events(directory, state)
        state.generation += 1
        state.offset = 0
        state.end = len(data)
        write_new(_events(directory, state), data)
        self._write_state(directory, state)
        old.unlink(missing_ok=True)

    def update(self, destination: str, **changes: Any) -> DestinationState:
        with self._locked(destination, "update") as directory:
            state = _applied(self._read_state(directory), changes)
            self._write_state(directory, state)
            return state

    def state(self, destination: str) -> DestinationState:
        directory = self._dir(destination)
        try:
            state = self._read_state(directory)
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the outbox of {destination!r}: {exc}") from exc
        return msgspec.convert(
            {f: getattr(state, f) for f in DestinationState.__struct_fields__}, DestinationState
        )

    def destinations(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def mentioning(self, customer_id: str) -> list[tuple[str, OutboxEvent]]:
        return _mentioning(self, customer_id)

    def erase(self, customer_id: str) -> int:
        changed = 0
        for destination in self.destinations():
            with self._locked(destination, "erase from") as directory:
                state = self._read_state(directory)
                if state.pending == 0:
                    continue
                lines = self._lines(directory, state, state.pending)
                kept: list[bytes] = []
                for line in lines:
                    event = _event_decoder.decode(line)
                    after = without_customer(event, customer_id)
                    if after is not event:
                        changed += 1
                    if after is not None:
                        kept.append(_encoder.encode(after) + b"\n")
                if len(kept) == len(lines) and all(
                    a == b for a, b in zip(kept, lines, strict=True)
                ):
                    continue
                state.pending = len(kept)
                self._next_generation(directory, state, b"".join(kept))
        return changed


# --- Redis store ----------------------------------------------------------------------------------


class RedisOutbox:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        reachable: Callable[[str], AbstractContextManager[None]],
    ) -> None:
        self._client = client
        self._reachable = reachable
        self._prefix = f"{prefix}:{{outbox}}"
        self.destinations_key = f"{self._prefix}:destinations"

    def events_key(self, destination: str) -> str:
        return f"{self._prefix}:{destination}:events"

    def state_key(self, destination: str) -> str:
        return f"{self._prefix}:{destination}:state"

    def append(self, destination: str, events: list[OutboxEvent], **changes: Any) -> None:
        if not events and not changes:
            return
        with self._reachable(f"appending to the outbox of {destination!r}"):
            pipe = self._client.pipeline(transaction=True)
            pipe.sadd(self.destinations_key, destination)
            for start in range(0, len(events), 1000):
                chunk = events[start : start + 1000]
                pipe.rpush(self.events_key(destination), *[_encoder.encode(e) for e in chunk])
            self._queue_changes(pipe, destination, changes)
            pipe.execute()

    def head(self, destination: str) -> OutboxEvent | None:
        events = self.peek(destination, 1)
        return events[0] if events else None

    def peek(self, destination: str, limit: int) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        with self._reachable(f"reading the outbox of {destination!r}"):
            raw = self._client.lrange(self.events_key(destination), 0, limit - 1)
        return [_event_decoder.decode(as_bytes(item)) for item in raw]

    def remove(self, destination: str, event_ids: list[str], **changes: Any) -> bool:
        key = self.events_key(destination)
        with (
            self._reachable(f"updating the outbox of {destination!r}"),
            self._client.pipeline(transaction=True) as pipe,
        ):
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.lrange(key, 0, len(event_ids) - 1)
                    if [_event_decoder.decode(as_bytes(r)).id for r in raw] != event_ids:
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.ltrim(key, len(event_ids), -1)
                    self._queue_changes(pipe, destination, changes)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def _queue_changes(self, pipe: Any, destination: str, changes: dict[str, Any]) -> None:
        key = self.state_key(destination)
        values = {}
        for name, value in changes.items():
            if name.startswith("add_"):
                pipe.hincrby(key, name.removeprefix("add_"), value)
            else:
                values[name] = json.dumps(value)
        if values:
            pipe.hset(key, mapping=values)

    def update(self, destination: str, **changes: Any) -> DestinationState:
        with self._reachable(f"updating the outbox of {destination!r}"):
            pipe = self._client.pipeline(transaction=True)
            pipe.sadd(self.destinations_key, destination)
            self._queue_changes(pipe, destination, changes)
            pipe.execute()
        return self.state(destination)

    def state(self, destination: str) -> DestinationState:
        with self._reachable(f"reading the outbox of {destination!r}"):
            pipe = self._client.pipeline(transaction=True)
            pipe.hgetall(self.state_key(destination))
            pipe.llen(self.events_key(destination))
            raw, pending = pipe.execute()
        fields: dict[str, Any] = {"pending": int(pending)}
        for name, value in raw.items():
            field = as_text(name)
            if field in DestinationState.__struct_fields__:
                fields[field] = json.loads(as_text(value))
        return msgspec.convert(fields, DestinationState)

    def destinations(self) -> list[str]:
        with self._reachable("listing the outboxes"):
            return sorted(as_text(d) for d in self._client.smembers(self.destinations_key))

    def mentioning(self, customer_id: str) -> list[tuple[str, OutboxEvent]]:
        return _mentioning(self, customer_id)

    def erase(self, customer_id: str) -> int:
        changed = 0
        for destination in self.destinations():
            key = self.events_key(destination)
            with (
                self._reachable(f"erasing from the outbox of {destination!r}"),
                self._client.pipeline(transaction=True) as pipe,
            ):
                while True:
                    try:
                        pipe.watch(key)
                        raw = [as_bytes(r) for r in pipe.lrange(key, 0, -1)]
                        kept, count = [], 0
                        for item in raw:
                            event = _event_decoder.decode(item)
                            after = without_customer(event, customer_id)
                            if after is not event:
                                count += 1
                            if after is not None:
                                kept.append(item if after is event else _encoder.encode(after))
                        if count == 0:
                            pipe.unwatch()
                            break
                        pipe.multi()
                        pipe.delete(key)
                        if kept:
                            pipe.rpush(key, *kept)
                        pipe.execute()
                        changed += count
                        break
                    except redis.WatchError:
                        continue
        return changed
