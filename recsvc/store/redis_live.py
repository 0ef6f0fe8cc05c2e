"""The Redis store's live records (NPS answers, order lines): per kind, intake, reads, the archive
and compaction (see the key layout and the rules in `recsvc.store.redis`). `RedisStore` gives each
log its client, its keys and `reachable` (Redis errors as `StoreUnavailable`)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic

import msgspec
import redis

from recsvc.domain.live import LiveKind, R, customer_mention, erased_records
from recsvc.store.redis_changes import LiveChanges

log = logging.getLogger("recsvc.store")

_STREAM_BATCH = 1000
_ARCHIVE_PART_LINES = 20_000  # records per archive key (a few MB before compression)
_BATCH = 500  # keys per pipeline when compacting

# KEYS: the customer's record list, their key set; ARGV: record key, encoded record.
_ADD_RECORD_LUA = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[2])
    return 1
end
return 0
"""


# KEYS: the customer's record list, their key set; ARGV: record key, stored entry, key, entry, ...
# Removes exactly those entries (and a key only with its entry); returns what the list still holds.
_REMOVE_RECORDS_LUA = """
for i = 1, #ARGV, 2 do
    if redis.call('LREM', KEYS[1], 0, ARGV[i + 1]) > 0 then
        redis.call('SREM', KEYS[2], ARGV[i])
    end
end
return redis.call('LLEN', KEYS[1])
"""


_encoder = msgspec.json.Encoder()


def as_bytes(value: bytes | str) -> bytes:
    # The client returns bytes (no decode_responses); its type hints also allow str.
    return value if isinstance(value, bytes) else value.encode()


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class LiveKeys:
    """Where one kind of live record lives in Redis (see `recsvc.store.redis`)."""

    prefix: str
    per_customer: str  # suffix of the customer's list; its key set adds "_ids"
    customers: str  # the set of customers with live records
    stream: str  # every record in arrival order
    archive: str  # the archive's part list (its parts are this key plus a stamp)
    field: bytes  # the stream entry's field holding the record

    def of_customer(self, customer_id: str) -> list[str]:
        """The customer's list and key set: one hash tag, so one Lua script may touch both."""
        return [
            f"{self.prefix}:{{c:{customer_id}}}:{self.per_customer}",
            f"{self.prefix}:{{c:{customer_id}}}:{self.per_customer}_ids",
        ]


class _SentWhole:
    """A Lua script sent in full (EVAL) on every call, called like redis-py's `Script`: redis-py's
    cluster pipeline refuses EVALSHA (unlike the one-server pipeline, it cannot load a script
    before it sends one), and these scripts are a few hundred bytes."""

    def __init__(self, client: redis.Redis, script: str) -> None:
        self._client = client
        self._script = script

    def __call__(self, keys: Sequence[str], args: Sequence[str | bytes], client: Any = None) -> Any:
        target = client if client is not None else self._client
        return target.execute_command("EVAL", self._script, len(keys), *keys, *args)


class LiveScripts:
    """The Lua scripts every live log of one client uses, registered once (`whole`: sent in full
    every time, for a Redis Cluster)."""

    def __init__(self, client: redis.Redis, *, whole: bool = False) -> None:
        self.add: Callable[..., Any]
        self.remove: Callable[..., Any]
        if whole:
            self.add = _SentWhole(client, _ADD_RECORD_LUA)
            self.remove = _SentWhole(client, _REMOVE_RECORDS_LUA)
        else:
            self.add = client.register_script(_ADD_RECORD_LUA)
            self.remove = client.register_script(_REMOVE_RECORDS_LUA)


class RedisLiveLog(Generic[R]):
    """One kind of live record in Redis: `RedisStore.answers`, `.orders`."""

    def __init__(
        self,
        kind: LiveKind[R],
        client: redis.Redis,
        keys: LiveKeys,
        scripts: LiveScripts,
        reachable: Callable[[str], AbstractContextManager[None]],
        changes: LiveChanges,
    ) -> None:
        self.kind: LiveKind[R] = kind
        self.keys = keys
        self._client = client
        self._changes = changes
        self._scripts = scripts
        self._reachable = reachable
        self.decoder: msgspec.json.Decoder[R] = msgspec.json.Decoder(kind.type)

    def add(self, records: list[R]) -> list[bool]:
        """Store records (one pipeline: the idempotent add per record, the customer set, the
        stream); per record, True if it was new, False if its key was already live."""
        if not records:
            return []
        with self._reachable(f"storing {self.kind.noun}s"):
            encoded = [_encoder.encode(record) for record in records]
            pipe = self._client.pipeline(transaction=False)
            for record, data in zip(records, encoded, strict=True):
                self._scripts.add(
                    keys=self.keys.of_customer(record.customer_id),
                    args=[record.key, data],
                    client=pipe,
                )
            pipe.sadd(self.keys.customers, *{r.customer_id for r in records})
            for data in encoded:
                pipe.xadd(self.keys.stream, {self.keys.field: data})
            results = pipe.execute()
            # Every customer of the request, repeats too: a retry after a failed announcement
            # announces again.
            self._changes.announce(record.customer_id for record in records)
        return [bool(added) for added in results[: len(records)]]

    def of_customer(self, customer_id: str) -> list[R]:
        """A customer's live records, oldest first."""
        with self._reachable(f"reading {self.kind.noun}s"):
            raw = self._client.lrange(self.keys.of_customer(customer_id)[0], 0, -1)
        return self.decode_all(raw)

    def decode_all(self, raw: list[bytes | str]) -> list[R]:
        return [self.decoder.decode(as_bytes(item)) for item in raw]

    def iter_live(self) -> Iterator[R]:
        """Every live record in arrival order, each key once."""
        seen: set[str] = set()
        for _entry_id, raw in self._stream_entries():
            record = self.decoder.decode(raw)
            if record.key not in seen:
                seen.add(record.key)
                yield record

    def _stream_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """The stream's (entry id, stored record) pairs, oldest first, in batches."""
        start = "-"
        while True:
            with self._reachable(f"reading the {self.kind.noun} stream"):
                entries = (
                    self._client.xrange(self.keys.stream, start, "+", count=_STREAM_BATCH) or []
                )
            for entry_id, fields in entries:
                yield as_bytes(entry_id or b""), as_bytes((fields or {})[self.keys.field])
            if len(entries) < _STREAM_BATCH:
                return
            start = "(" + as_text(entries[-1][0] or b"")

    def iter_archived(self) -> Iterator[R]:
        """Every record compaction moved out of live, oldest compaction first, each key once."""
        seen: set[str] = set()
        for _part, lines in self._archive_parts():
            for line in lines:
                record = self.decoder.decode(line)
                if record.key not in seen:
                    seen.add(record.key)
                    yield record

    def _archive_parts(self) -> Iterator[tuple[bytes, list[bytes]]]:
        """Each archive part's key and its stored records (JSON lines), oldest first, fetched a
        few parts at a time."""
        with self._reachable(f"reading the {self.kind.noun} archive"):
            parts = [as_bytes(part) for part in self._client.lrange(self.keys.archive, 0, -1)]
        for start in range(0, len(parts), 8):
            batch = parts[start : start + 8]
            with self._reachable(f"reading the {self.kind.noun} archive"):
                blobs = self._client.mget(batch)
            for part, blob in zip(batch, blobs, strict=True):
                if blob is None:
                    log.warning("archive part %s is listed but missing", as_text(part))
                    continue
                yield part, zlib.decompress(as_bytes(blob)).splitlines()

    def compact(self, records: Sequence[R]) -> int:
        """Move these records (by key) from live to the archive: archived first, then removed
        from the customers' lists and the stream. Returns how many keys left live."""
        wanted = {r.key for r in records}
        if not wanted:
            return 0
        # What is live of them: every stream entry (attempts repeat a key), each customer's entry.
        first: dict[str, bytes] = {}
        stream_ids: list[bytes] = []
        customers = {r.customer_id for r in records}
        for entry_id, raw in self._stream_entries():
            record = self.decoder.decode(raw)
            if record.key in wanted:
                stream_ids.append(entry_id)
                first.setdefault(record.key, raw)
                customers.add(record.customer_id)
        candidates = sorted(customers)
        listed = self._listed(candidates, wanted)
        extra: dict[str, bytes] = {key: raw for entries in listed.values() for key, raw in entries}
        to_archive = [*first.values(), *(raw for key, raw in extra.items() if key not in first)]
        if not to_archive:
            return 0
        self._archive(to_archive)  # (1) durable in the archive ...
        self._remove_from_customers(candidates, listed)  # (2) ... then out of live
        self._remove_from_stream(stream_ids)
        return len(first.keys() | extra.keys())

    def _listed(self, customers: list[str], wanted: set[str]) -> dict[str, list[tuple[str, bytes]]]:
        """Per customer, their live list's entries of the wanted keys: (key, entry)."""
        listed: dict[str, list[tuple[str, bytes]]] = {}
        for start in range(0, len(customers), _BATCH):
            batch = customers[start : start + _BATCH]
            with self._reachable(f"reading {self.kind.noun}s"):
                pipe = self._client.pipeline(transaction=False)
                for customer in batch:
                    pipe.lrange(self.keys.of_customer(customer)[0], 0, -1)
                lists = pipe.execute()
            for customer, entries in zip(batch, lists, strict=True):
                own = [(self.decoder.decode(raw).key, as_bytes(raw)) for raw in entries]
                if own := [(key, raw) for key, raw in own if key in wanted]:
                    listed[customer] = own
        return listed

    def _archive(self, lines: list[bytes]) -> None:
        """Write compacted records as new archive parts and list them, in one MULTI."""
        stamp = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
        with self._reachable(f"archiving live {self.kind.noun}s"):
            pipe = self._client.pipeline(transaction=True)  # one slot: the {live} hash tag
            for index, start in enumerate(range(0, len(lines), _ARCHIVE_PART_LINES)):
                part = lines[start : start + _ARCHIVE_PART_LINES]
                key = f"{self.keys.archive}:{stamp}-{index}"
                pipe.set(key, zlib.compress(b"\n".join(part) + b"\n"))
                pipe.rpush(self.keys.archive, key)
            pipe.execute()

    def _remove_from_customers(
        self, customers: list[str], listed: dict[str, list[tuple[str, bytes]]]
    ) -> None:
        """Remove the listed entries from each customer's list and key set; customers left
        without live records leave the customer set (put back at once if one arrived meanwhile;
        one a killed compaction left there goes now)."""
        for start in range(0, len(customers), _BATCH):
            batch = customers[start : start + _BATCH]
            with self._reachable(f"compacting live {self.kind.noun}s"):
                pipe = self._client.pipeline(transaction=False)
                for customer in batch:
                    keys = self.keys.of_customer(customer)
                    if customer in listed:
                        pairs = [item for key, raw in listed[customer] for item in (key, raw)]
                        self._scripts.remove(keys=keys, args=pairs, client=pipe)
                    else:
                        pipe.llen(keys[0])
                emptied = [c for c, left in zip(batch, pipe.execute(), strict=True) if not left]
                self._changes.announce(customer for customer in batch if customer in listed)
                if not emptied:
                    continue
                self._client.srem(self.keys.customers, *emptied)
                for customer in emptied:
                    pipe.exists(self.keys.of_customer(customer)[0])
                back = [c for c, there in zip(emptied, pipe.execute(), strict=True) if there]
                if back:
                    self._client.sadd(self.keys.customers, *back)

    def _remove_from_stream(self, entry_ids: list[bytes]) -> None:
        for start in range(0, len(entry_ids), _STREAM_BATCH):
            with self._reachable(f"compacting the {self.kind.noun} stream"):
                self._client.xdel(self.keys.stream, *entry_ids[start : start + _STREAM_BATCH])

    def erase(self, customer_id: str, until: dt.datetime | None = None) -> int:
        """Remove the customer's records (those that occurred up to `until`, if given): from their
        list and key set, the stream and every archive part (a part rewritten without them); how
        many keys went."""
        take = erased_records(customer_id, until)
        keys = self.keys.of_customer(customer_id)
        mention = customer_mention(customer_id)
        with self._reachable(f"erasing {self.kind.noun}s"):
            listed = [as_bytes(raw) for raw in self._client.lrange(keys[0], 0, -1)]
        entries = [(self.decoder.decode(raw), raw) for raw in listed]
        taken = [(record.key, raw) for record, raw in entries if take(record)]
        removed = {key for key, _ in taken}
        stream_ids = []
        for entry_id, raw in self._stream_entries():
            if mention in raw and take(record := self.decoder.decode(raw)):
                stream_ids.append(entry_id)
                removed.add(record.key)
        removed |= self._erase_archived(mention, take)
        with self._reachable(f"erasing {self.kind.noun}s"):
            if len(taken) == len(entries):
                self._client.delete(*keys)
                left = 0
            else:
                pairs = [item for key, raw in taken for item in (key, raw)]
                left = self._scripts.remove(keys=keys, args=pairs)
            if not left:
                self._client.srem(self.keys.customers, customer_id)
            self._changes.announce([customer_id])
        self._remove_from_stream(stream_ids)
        return len(removed)

    def _erase_archived(self, mention: bytes, take: Callable[[R], bool]) -> set[str]:
        removed: set[str] = set()
        for part, lines in self._archive_parts():
            kept = []
            for line in lines:
                if mention in line and take(record := self.decoder.decode(line)):
                    removed.add(record.key)
                    continue
                kept.append(line)
            if len(kept) < len(lines):
                # The part keeps its key (the archive list is untouched), rewritten in place.
                with self._reachable(f"erasing from the {self.kind.noun} archive"):
                    self._client.set(part, zlib.compress(b"".join(x + b"\n" for x in kept)))
        return removed
