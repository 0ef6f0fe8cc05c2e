"""The survey log of both stores (`Store.surveys`): who was sent a survey, who declined one, and
how many were sent each day. What `GET /v1/surveys/due` needs of it: each customer's latest send
and decline (the throttle), and today's sends (the daily cap). Idempotent: the same customer,
touchpoint and UTC day is one send (one decline), however often it is recorded, from whichever
worker, replica or restart.

File store: `surveys/log.ndjson` under the root, one `SurveyEvent` per line, appended under an
exclusive `flock` and fsync'd. A writer first reads what other processes appended since it last
looked (under the lock), so idempotency is exact across processes. Readers keep an index (latest
send and decline per customer, sends per day, the keys) and read only the bytes appended since
their last look; a new inode or a shorter file (an erasure rewrote it) is read again from the
start.

Redis store, every key under the hash tag `{surveys}` (one slot: the script below is legal on a
cluster):

    {prefix}:{surveys}:asked            hash: customer -> latest send (µs since 1970 UTC)
    {prefix}:{surveys}:declined         hash: customer -> latest decline (µs since 1970 UTC)
    {prefix}:{surveys}:sent_per_day     hash: YYYY-MM-DD -> sends recorded for that day
    {prefix}:{surveys}:day:<YYYY-MM-DD> set: the day's event keys (digests, no customer id),
                                        expiring `MAX_BACKDATE_DAYS` + 2 days after the day
    {prefix}:{surveys}:revision         counter: moves with every new event

One Lua script records a batch: per event, SADD to the day's set decides whether it is new; a new
send counts in its day; the customer's hash field is set only when the event is newer than it.
Readers fetch the two hashes again only when the revision moved.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import msgspec
import redis

from recsvc.domain.surveys import MAX_BACKDATE_DAYS, Contact, SurveyEvent
from recsvc.domain.times import EPOCH
from recsvc.errors import StoreUnavailable
from recsvc.store.durable import (
    Recheck,
    exclusive_lock,
    fsync_dir,
    locked_for_append,
    replace_durably,
    write_lines,
)
from recsvc.store.redis_live import as_text

SURVEY_LOG = Path("surveys") / "log.ndjson"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SurveyEvent)


def _micros(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def _from_micros(value: bytes | str) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=int(as_text(value)))


class _Index:
    """What one process has read of the survey log file."""

    def __init__(self, inode: int = 0) -> None:
        self.inode = inode
        self.offset = 0
        self.keys: set[str] = set()
        self.contacts: dict[str, Contact] = {}
        self.sent_per_day: Counter[dt.date] = Counter()

    def add(self, event: SurveyEvent) -> bool:
        key = event.key
        if key in self.keys:
            return False
        self.keys.add(key)
        self.contacts.setdefault(event.customer_id, Contact()).add(event)
        if event.kind == "sent":
            self.sent_per_day[event.day] += 1
        return True

    def read(self, data: bytes) -> None:
        """Index the complete lines of `data` (the file from `offset` on)."""
        end = data.rfind(b"\n")
        if end < 0:
            return
        for line in data[: end + 1].split(b"\n"):
            if not line.strip():
                continue
            try:
                self.add(_decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # a writer died mid-line: that event was never acknowledged
        self.offset += end + 1


class FileSurveyLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._index = _Index()
        self.recheck = Recheck()  # as `FileLiveLog.recheck`

    def _catch_up(self, fd: int) -> None:
        """Read what was appended since the last look (from the start if the file is new)."""
        stat = os.fstat(fd)
        if stat.st_ino != self._index.inode or stat.st_size < self._index.offset:
            self._index = _Index(stat.st_ino)
        if stat.st_size > self._index.offset:
            chunks, at = [], self._index.offset
            while chunk := os.pread(fd, 1 << 20, at):
                chunks.append(chunk)
                at += len(chunk)
            self._index.read(b"".join(chunks))

    def _refresh(self) -> None:
        if not self.recheck.due():
            return
        self.recheck.looked()
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._index = _Index()
            return
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the survey log {self.path}: {exc}") from exc
        try:
            self._catch_up(fd)
        finally:
            os.close(fd)

    def record(self, events: Sequence[SurveyEvent]) -> list[bool]:
        if not events:
            return []
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = locked_for_append(self.path, create=True)
                assert fd is not None
                try:
                    self._catch_up(fd)
                    flags = [self._index.add(event) for event in events]
                    lines = b"".join(
                        _encoder.encode(e) + b"\n"
                        for e, new in zip(events, flags, strict=True)
                        if new
                    )
                    if lines:
                        write_lines(fd, lines)
                        self._index.offset = os.fstat(fd).st_size
                finally:
                    os.close(fd)
                fsync_dir(self.path.parent)
            except OSError as exc:
                self._index = _Index()  # read again: what is in the file is the truth
                raise StoreUnavailable(f"cannot write the survey log {self.path}: {exc}") from exc
        return flags

    def contacts(self) -> dict[str, Contact]:
        with self._lock:
            self._refresh()
            return dict(self._index.contacts)

    def sent_on(self, day: dt.date) -> int:
        with self._lock:
            self._refresh()
            return self._index.sent_per_day[day]

    def erase(self, customer_id: str) -> int:
        """Rewrite the log without the customer's events (a privacy erasure); how many went."""
        with self._lock:
            if not self.path.exists():
                return 0
            with exclusive_lock(self.path):
                data = self.path.read_bytes()
                kept, removed = [], 0
                for line in data.split(b"\n"):
                    if not line.strip():
                        continue
                    try:
                        event = _decoder.decode(line)
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        continue
                    if event.customer_id == customer_id:
                        removed += 1
                    else:
                        kept.append(line + b"\n")
                if removed:
                    replace_durably(self.path, b"".join(kept))
            self._index = _Index()
            self.recheck.expire()
            return removed


# KEYS: asked, declined, sent_per_day, revision, then one day set per event.
# ARGV: expire-at seconds per event..., then per event kind, customer, micros, day, key.
_RECORD = """
local n = #KEYS - 4
local out = {}
local moved = false
for i = 1, n do
  local base = n + (i - 1) * 5
  local kind, customer, at, day, key = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  local day_set = KEYS[4 + i]
  if redis.call('SADD', day_set, key) == 1 then
    redis.call('EXPIREAT', day_set, ARGV[i])
    local hash = KEYS[2]
    if kind == 'sent' then
      hash = KEYS[1]
      redis.call('HINCRBY', KEYS[3], day, 1)
    end
    local current = redis.call('HGET', hash, customer)
    if (not current) or tonumber(current) < tonumber(at) then
      redis.call('HSET', hash, customer, at)
    end
    out[i] = 1
    moved = true
  else
    out[i] = 0
  end
end
if moved then redis.call('INCR', KEYS[4]) end
return out
"""


class RedisSurveyLog:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        reachable: Callable[[str], AbstractContextManager[None]],
    ) -> None:
        self._client = client
        self._reachable = reachable
        self._base = f"{prefix}:{{surveys}}"
        self.asked_key = f"{self._base}:asked"
        self.declined_key = f"{self._base}:declined"
        self.per_day_key = f"{self._base}:sent_per_day"
        self.revision_key = f"{self._base}:revision"
        self._lock = threading.Lock()
        self._revision: bytes | str | None = None
        self._contacts: dict[str, Contact] = {}

    def day_key(self, day: dt.date) -> str:
        return f"{self._base}:day:{day.isoformat()}"

    def record(self, events: Sequence[SurveyEvent]) -> list[bool]:
        if not events:
            return []
        flags: list[bool] = []
        # A batch in slices, so one script never runs long on the server.
        for start in range(0, len(events), 200):
            part = events[start : start + 200]
            keys = [self.asked_key, self.declined_key, self.per_day_key, self.revision_key]
            keys += [self.day_key(e.day) for e in part]
            expiry = [
                int(
                    dt.datetime.combine(
                        e.day + dt.timedelta(days=MAX_BACKDATE_DAYS + 2), dt.time(), dt.UTC
                    ).timestamp()
                )
                for e in part
            ]
            args: list[str | int] = [*expiry]
            for e in part:
                args += [e.kind, e.customer_id, _micros(e.at), e.day.isoformat(), e.key]
            with self._reachable("recording survey sends"):
                result = self._client.eval(_RECORD, len(keys), *keys, *args)
            flags += [bool(int(x)) for x in result]
        return flags

    def contacts(self) -> dict[str, Contact]:
        with self._lock, self._reachable("reading the survey log"):
            revision = self._client.get(self.revision_key)
            if revision is None:
                self._revision, self._contacts = None, {}
                return {}
            if revision == self._revision:
                return dict(self._contacts)
            pipe = self._client.pipeline(transaction=True)
            pipe.hgetall(self.asked_key)
            pipe.hgetall(self.declined_key)
            pipe.get(self.revision_key)
            asked, declined, revision = pipe.execute()
            contacts: dict[str, Contact] = {}
            for customer, at in asked.items():
                contacts[as_text(customer)] = Contact(asked=_from_micros(at))
            for customer, at in declined.items():
                contacts.setdefault(as_text(customer), Contact()).declined = _from_micros(at)
            self._contacts, self._revision = contacts, revision
            return dict(contacts)

    def sent_on(self, day: dt.date) -> int:
        with self._reachable("reading the survey log"):
            raw = self._client.hget(self.per_day_key, day.isoformat())
        return 0 if raw is None else int(raw)

    def erase(self, customer_id: str) -> int:
        """Remove the customer's latest send and decline (a privacy erasure); the day sets hold
        only digests and the counts no one."""
        with self._reachable("erasing from the survey log"):
            pipe = self._client.pipeline(transaction=True)
            pipe.hdel(self.asked_key, customer_id)
            pipe.hdel(self.declined_key, customer_id)
            pipe.incr(self.revision_key)
            removed = pipe.execute()
        return int(removed[0]) + int(removed[1])
