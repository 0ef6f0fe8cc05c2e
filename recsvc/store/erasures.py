"""The erasure log of both stores (`Store.erasures`, see `recsvc.domain.privacy`): append-only
entries of customer hashes, times, who asked and what was removed. It holds no personal data, and
it is the suppression list every worker and every training run applies.

File store: `privacy/erasures.ndjson` under the root, one JSON entry per line, appended under an
exclusive `flock` and fsync'd; readers re-read it when its size, mtime or inode changed (one stat
per look).

Redis store: `{prefix}:{privacy}:log` (list of JSON entries), `{prefix}:{privacy}:latest` (hash:
customer hash -> latest erasure time) and `{prefix}:{privacy}:revision` (counter), written by one
MULTI (one hash tag: legal on a cluster); readers fetch the hash again only when the revision moved.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import msgspec
import redis

from recsvc.domain.privacy import Erasure, Suppression
from recsvc.domain.times import utc
from recsvc.errors import StoreUnavailable
from recsvc.store.durable import Recheck, append_lines
from recsvc.store.redis_changes import LiveChanges
from recsvc.store.redis_live import as_bytes, as_text

ERASURE_LOG = Path("privacy") / "erasures.ndjson"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Erasure)


def _parse_entries(data: bytes) -> list[Erasure]:
    entries = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            entries.append(_decoder.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # a writer died mid-line: that entry was never acknowledged
    return entries


class FileErasureLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] = (-1, -1, -1)
        self._suppression = Suppression()
        self.recheck = Recheck()  # as `FileLiveLog.recheck`

    def append(self, entry: Erasure) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            append_lines(self.path, _encoder.encode(entry) + b"\n")
        except OSError as exc:
            raise StoreUnavailable(f"cannot write the erasure log {self.path}: {exc}") from exc
        self.recheck.expire()  # this process sees its own erasure at once

    def entries(self) -> list[Erasure]:
        try:
            return _parse_entries(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the erasure log {self.path}: {exc}") from exc

    def suppression(self) -> Suppression:
        # Every storefront request asks (through `live_of`): one stat (at most every
        # `recheck.seconds`), no lock, when nothing changed; the lock only guards a re-read.
        if not self.recheck.due():
            return self._suppression
        self.recheck.looked()
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            return self._suppression  # empty until the first erasure
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the erasure log {self.path}: {exc}") from exc
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen == self._seen:
            return self._suppression
        with self._lock:
            if seen != self._seen:
                self._suppression = Suppression.of(self.entries())
                self._seen = seen
            return self._suppression


class RedisErasureLog:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        reachable: Callable[[str], AbstractContextManager[None]],
        changes: LiveChanges,
    ) -> None:
        self._client = client
        self._reachable = reachable
        self._changes = changes
        self.log_key = f"{prefix}:{{privacy}}:log"
        self.latest_key = f"{prefix}:{{privacy}}:latest"
        self.revision_key = f"{prefix}:{{privacy}}:revision"
        self._lock = threading.Lock()
        self._revision: bytes | str | None = None
        self._suppression = Suppression()

    def append(self, entry: Erasure) -> None:
        with self._reachable("writing the erasure log"):
            pipe = self._client.pipeline(transaction=True)
            pipe.rpush(self.log_key, _encoder.encode(entry))
            if entry.state == "started":
                pipe.hset(self.latest_key, entry.customer_hash, entry.erased_at.isoformat())
            pipe.incr(self.revision_key)
            pipe.execute()
            self._changes.announce(erasures=True)

    def entries(self) -> list[Erasure]:
        with self._reachable("reading the erasure log"):
            raw = self._client.lrange(self.log_key, 0, -1)
        return _parse_entries(b"\n".join(as_bytes(item) for item in raw))

    def suppression(self) -> Suppression:
        with self._lock, self._reachable("reading the erasure log"):
            revision = self._client.get(self.revision_key)
            if revision is None or revision == self._revision:
                return self._suppression
            latest = self._client.hgetall(self.latest_key)
            self._suppression = Suppression(
                {as_text(h): at for h, t in latest.items() if (at := parse_time(t)) is not None}
            )
            self._revision = revision
            return self._suppression


def parse_time(value: bytes | str | None) -> dt.datetime | None:
    """An erasure time as stored in Redis' latest-erasure hash."""
    if value is None:
        return None
    return utc(dt.datetime.fromisoformat(as_text(value)))
