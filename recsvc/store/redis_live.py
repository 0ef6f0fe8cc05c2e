"""The Redis store's live NPS answers: intake, reads, the archive and compaction (see the key
layout and the rules in `recsvc.store.redis`). A mixin of `RedisStore`, which provides the client,
the key prefix and `_reachable` (Redis errors as `StoreUnavailable`)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

import msgspec
import redis

from recsvc.domain.live import LiveResponse

log = logging.getLogger("recsvc.store")

_STREAM_BATCH = 1000
_ARCHIVE_PART_LINES = 20_000  # responses per archive key (a few MB before compression)
_BATCH = 500  # keys per pipeline when compacting

# KEYS: the customer's response list, their id set; ARGV: response id, encoded response.
_ADD_RESPONSE_LUA = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[2])
    return 1
end
return 0
"""


# KEYS: the customer's response list, their id set; ARGV: response id, stored entry, id, entry, ...
# Removes exactly those entries (and an id only with its entry); returns what the list still holds.
_REMOVE_RESPONSES_LUA = """
for i = 1, #ARGV, 2 do
    if redis.call('LREM', KEYS[1], 0, ARGV[i + 1]) > 0 then
        redis.call('SREM', KEYS[2], ARGV[i])
    end
end
return redis.call('LLEN', KEYS[1])
"""


_encoder = msgspec.json.Encoder()
_response_decoder = msgspec.json.Decoder(LiveResponse)


def as_bytes(value: bytes | str) -> bytes:
    # The client returns bytes (no decode_responses); its type hints also allow str.
    return value if isinstance(value, bytes) else value.encode()


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisLiveAnswers:
    """Live NPS answers in Redis; mixed into `RedisStore`."""

    _client: redis.Redis
    prefix: str

    def _reachable(self, doing: str) -> AbstractContextManager[None]:
        raise NotImplementedError  # RedisStore's

    def _register_live_scripts(self) -> None:
        self._add_response = self._client.register_script(_ADD_RESPONSE_LUA)
        self._remove_responses = self._client.register_script(_REMOVE_RESPONSES_LUA)

    # --- keys -------------------------------------------------------------------------------
    def _customer_keys(self, customer_id: str) -> list[str]:
        return [
            f"{self.prefix}:{{c:{customer_id}}}:nps",
            f"{self.prefix}:{{c:{customer_id}}}:nps_ids",
        ]

    @property
    def _customers_key(self) -> str:
        return f"{self.prefix}:live:customers"

    @property
    def _stream_key(self) -> str:
        return f"{self.prefix}:live:stream"

    @property
    def _archive_key(self) -> str:
        return f"{self.prefix}:{{live}}:archive"

    # --- live NPS intake --------------------------------------------------------------------
    def add_responses(self, responses: list[LiveResponse]) -> list[bool]:
        if not responses:
            return []
        with self._reachable("storing NPS responses"):
            encoded = [_encoder.encode(response) for response in responses]
            pipe = self._client.pipeline(transaction=False)
            for response, data in zip(responses, encoded, strict=True):
                self._add_response(
                    keys=self._customer_keys(response.customer_id),
                    args=[response.response_id, data],
                    client=pipe,
                )
            pipe.sadd(self._customers_key, *{r.customer_id for r in responses})
            for data in encoded:
                pipe.xadd(self._stream_key, {"response": data})
            results = pipe.execute()
        return [bool(added) for added in results[: len(responses)]]

    def live_responses(self, customer_id: str) -> list[LiveResponse]:
        with self._reachable("reading NPS responses"):
            raw = self._client.lrange(self._customer_keys(customer_id)[0], 0, -1)
        return [_response_decoder.decode(item) for item in raw]

    def iter_live_responses(self) -> Iterator[LiveResponse]:
        seen: set[str] = set()
        for _entry_id, raw in self._stream_entries():
            response = _response_decoder.decode(raw)
            if response.response_id not in seen:
                seen.add(response.response_id)
                yield response

    def _stream_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """The stream's (entry id, stored response) pairs, oldest first, in batches."""
        start = "-"
        while True:
            with self._reachable("reading the NPS response stream"):
                entries = (
                    self._client.xrange(self._stream_key, start, "+", count=_STREAM_BATCH) or []
                )
            for entry_id, fields in entries:
                yield as_bytes(entry_id or b""), as_bytes((fields or {})[b"response"])
            if len(entries) < _STREAM_BATCH:
                return
            start = "(" + as_text(entries[-1][0] or b"")

    def iter_archived_responses(self) -> Iterator[LiveResponse]:
        seen: set[str] = set()
        with self._reachable("reading the live-response archive"):
            parts = self._client.lrange(self._archive_key, 0, -1)
        for start in range(0, len(parts), 8):
            with self._reachable("reading the live-response archive"):
                blobs = self._client.mget(parts[start : start + 8])
            for part, blob in zip(parts[start : start + 8], blobs, strict=True):
                if blob is None:
                    log.warning("archive part %s is listed but missing", as_text(part))
                    continue
                for line in zlib.decompress(as_bytes(blob)).splitlines():
                    response = _response_decoder.decode(line)
                    if response.response_id not in seen:
                        seen.add(response.response_id)
                        yield response

    def compact_live(self, responses: Sequence[LiveResponse]) -> int:
        wanted = {r.response_id for r in responses}
        if not wanted:
            return 0
        # What is live of them: every stream entry (attempts repeat an id), each customer's entry.
        first: dict[str, bytes] = {}
        stream_ids: list[bytes] = []
        customers = {r.customer_id for r in responses}
        for entry_id, raw in self._stream_entries():
            response = _response_decoder.decode(raw)
            if response.response_id in wanted:
                stream_ids.append(entry_id)
                first.setdefault(response.response_id, raw)
                customers.add(response.customer_id)
        candidates = sorted(customers)
        listed = self._listed(candidates, wanted)
        extra = {rid: raw for entries in listed.values() for rid, raw in entries}
        to_archive = [*first.values(), *(raw for rid, raw in extra.items() if rid not in first)]
        if not to_archive:
            return 0
        self._archive(to_archive)  # (1) durable in the archive ...
        self._remove_from_customers(candidates, listed)  # (2) ... then out of live
        self._remove_from_stream(stream_ids)
        return len(first.keys() | extra.keys())

    def _listed(self, customers: list[str], wanted: set[str]) -> dict[str, list[tuple[str, bytes]]]:
        """Per customer, their live list's entries of the wanted ids: (response id, entry)."""
        listed: dict[str, list[tuple[str, bytes]]] = {}
        for start in range(0, len(customers), _BATCH):
            batch = customers[start : start + _BATCH]
            with self._reachable("reading NPS responses"):
                pipe = self._client.pipeline(transaction=False)
                for customer in batch:
                    pipe.lrange(self._customer_keys(customer)[0], 0, -1)
                lists = pipe.execute()
            for customer, entries in zip(batch, lists, strict=True):
                own = [
                    (_response_decoder.decode(raw).response_id, as_bytes(raw)) for raw in entries
                ]
                if own := [(rid, raw) for rid, raw in own if rid in wanted]:
                    listed[customer] = own
        return listed

    def _archive(self, lines: list[bytes]) -> None:
        """Write compacted responses as new archive parts and list them, in one MULTI."""
        stamp = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
        with self._reachable("archiving live responses"):
            pipe = self._client.pipeline(transaction=True)  # one slot: the {live} hash tag
            for index, start in enumerate(range(0, len(lines), _ARCHIVE_PART_LINES)):
                part = lines[start : start + _ARCHIVE_PART_LINES]
                key = f"{self._archive_key}:{stamp}-{index}"
                pipe.set(key, zlib.compress(b"\n".join(part) + b"\n"))
                pipe.rpush(self._archive_key, key)
            pipe.execute()

    def _remove_from_customers(
        self, customers: list[str], listed: dict[str, list[tuple[str, bytes]]]
    ) -> None:
        """Remove the listed entries from each customer's list and id set; customers left without
        live responses leave the customer set (put back at once if one arrived meanwhile; one a
        killed compaction left there goes now)."""
        for start in range(0, len(customers), _BATCH):
            batch = customers[start : start + _BATCH]
            with self._reachable("compacting live responses"):
                pipe = self._client.pipeline(transaction=False)
                for customer in batch:
                    keys = self._customer_keys(customer)
                    if customer in listed:
                        pairs = [item for rid, raw in listed[customer] for item in (rid, raw)]
                        self._remove_responses(keys=keys, args=pairs, client=pipe)
                    else:
                        pipe.llen(keys[0])
                emptied = [c for c, left in zip(batch, pipe.execute(), strict=True) if not left]
                if not emptied:
                    continue
                self._client.srem(self._customers_key, *emptied)
                for customer in emptied:
                    pipe.exists(self._customer_keys(customer)[0])
                back = [c for c, there in zip(emptied, pipe.execute(), strict=True) if there]
                if back:
                    self._client.sadd(self._customers_key, *back)

    def _remove_from_stream(self, entry_ids: list[bytes]) -> None:
        for start in range(0, len(entry_ids), _STREAM_BATCH):
            with self._reachable("compacting the NPS response stream"):
                self._client.xdel(self._stream_key, *entry_ids[start : start + _STREAM_BATCH])
