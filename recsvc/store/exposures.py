"""The exposure log of both stores (`Store.exposures`): every line a worker logged when it showed an
offer in an experiment or withheld it from a holdout customer (`recsvc.domain.experiments.Exposure`),
in arrival order. Workers append (buffered, `recsvc.service.experiments`); the nightly run reads it
all and turns it into assignments and outcome windows (`training.experiments`).

File store: `live/exposures.ndjson`, one JSON array per line, appended under the file's `flock`
(a worker's flush is one write). A line a killed writer left unfinished is skipped by readers.

Redis store: `{prefix}:{live}:exposures`, a list of the same lines (one RPUSH per flush).

Compaction: each training run folds the lines older than a moment (`through`, an hour before the
run started) into per-customer assignments (`Compacted`) and removes those lines, in one step under
the log's lock (file store: `live/exposures_compacted.json` then the log rewritten; Redis:
`{prefix}:{live}:exposures:compacted`, zlib'd JSON, set in one transaction with the LTRIM of the
leading lines before `through`). Lines before `through` that are still in the log afterwards
(out of order by more than the margin) are skipped by readers: the compacted assignments hold them.
A line that reaches the store more than an hour after its time (a worker that buffered through a
store outage that long) is not counted. On Redis, an erasure that removes lines from the head of
the list while a run compacts shifts the LTRIM by those lines: as many lines just after `through`
go unread (their customers' next requests log them again). The folded assignments are one value
(about 90 bytes each before zlib): a few million fit; tens of millions would want parts, as the
live archives have. A line is ~126 bytes, so without compaction a million offer
views a day would grow the log by ~126 MB a day.
"""

from __future__ import annotations

import datetime as dt
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import msgspec
import redis

from recsvc.domain.experiments import Compacted, Exposure
from recsvc.store.durable import locked_for_append, replace_durably, write_all
from recsvc.store.redis_live import as_bytes

EXPOSURES_FILE = Path("live") / "exposures.ndjson"
COMPACTED_FILE = Path("live") / "exposures_compacted.json"
# A run folds only lines older than this: a worker writes its lines within 100 ms, so by then
# every line of that age is in the log (unless a worker buffered through a store outage).
COMPACTION_MARGIN = dt.timedelta(hours=1)
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Exposure)
_compacted_decoder = msgspec.json.Decoder(Compacted)
_READ_CHUNK = 10_000


class ExposureLog(Protocol):
    def append(self, lines: Sequence[Exposure]) -> None:
        """Add lines at the end, durably enough for a log that may lose its last 100 ms."""

    def read(self) -> Iterator[Exposure]:
        """Every line not yet compacted, oldest first (unreadable ones skipped)."""

    def compacted(self) -> Compacted:
        """What earlier runs folded into assignments (nothing before the first compaction)."""

    def compact(self, folded: Compacted) -> int:
        """Store `folded` (the assignments of every line before `folded.through`) and remove
        those lines from the log; how many went."""

    def erase(self, customer_id: str) -> int:
        """Remove the customer's lines and compacted assignments (a privacy erasure); how many."""


def _after(lines: Iterator[Exposure], through: dt.datetime | None) -> Iterator[Exposure]:
    if through is None:
        yield from lines
        return
    for line in lines:
        if line.at >= through:
            yield line


def _without(folded: Compacted, customer_id: str) -> tuple[Compacted, int]:
    kept = [a for a in folded.assignments if a.customer_id != customer_id]
    return Compacted(folded.through, kept), len(folded.assignments) - len(kept)


def _decoded(raw: Iterator[bytes]) -> Iterator[Exposure]:
    for line in raw:
        try:
            yield _decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # a killed writer's unfinished line


class FileExposureLog:
    def __init__(self, root: Path) -> None:
        self.path = root / EXPOSURES_FILE
        self.compacted_path = root / COMPACTED_FILE

    def append(self, lines: Sequence[Exposure]) -> None:
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(_encoder.encode(line) + b"\n" for line in lines)
        fd = locked_for_append(self.path, create=True)
        assert fd is not None
        try:
            write_all(fd, data)
        finally:
            os.close(fd)

    def read(self) -> Iterator[Exposure]:
        through = self.compacted().through
        try:
            with self.path.open("rb") as file:
                yield from _after(_decoded(line for line in file if line.endswith(b"\n")), through)
        except FileNotFoundError:
            return

    def compacted(self) -> Compacted:
        try:
            return _compacted_decoder.decode(self.compacted_path.read_bytes())
        except FileNotFoundError:
            return Compacted()

    def compact(self, folded: Compacted) -> int:
        assert folded.through is not None
        through = folded.through
        return self._rewrite(lambda line: line is None or line.at >= through, folded)

    def erase(self, customer_id: str) -> int:
        folded, dropped = _without(self.compacted(), customer_id)
        return dropped + self._rewrite(
            lambda line: line is None or line.customer_id != customer_id,
            folded if dropped else None,
        )

    def _rewrite(self, keep: Callable[[Exposure | None], bool], folded: Compacted | None) -> int:
        """Under the append lock: store `folded` (if given), then the log with only the lines
        `keep` wants (a line it cannot read is kept: None). The compacted file goes first, so a
        crash in between leaves lines both folded and logged, which readers skip."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = locked_for_append(self.path, create=True)
        assert fd is not None
        try:
            if folded is not None:
                replace_durably(self.compacted_path, _encoder.encode(folded))
            with open(self.path, "rb") as file:
                lines = file.readlines()
            kept = [line for line in lines if keep(_line(line))]
            if len(kept) != len(lines):
                # Renamed over the path while the append lock is held: a writer waiting for it
                # opens the new file (`locked_for_append`).
                replace_durably(self.path, b"".join(kept))
        finally:
            os.close(fd)
        return len(lines) - len(kept)


def _line(raw: bytes) -> Exposure | None:
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class RedisExposureLog:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        reachable: Callable[[str], AbstractContextManager[None]],
    ) -> None:
        self._client = client
        self._reachable = reachable
        self.key = f"{prefix}:{{live}}:exposures"
        self.compacted_key = f"{prefix}:{{live}}:exposures:compacted"

    def append(self, lines: Sequence[Exposure]) -> None:
        if not lines:
            return
        with self._reachable("logging offer exposures"):
            self._client.rpush(self.key, *[_encoder.encode(line) for line in lines])

    def read(self) -> Iterator[Exposure]:
        yield from _after(self._lines(), self.compacted().through)

    def _lines(self) -> Iterator[Exposure]:
        start = 0
        while True:
            with self._reachable("reading the exposure log"):
                chunk: list[bytes] = self._client.lrange(self.key, start, start + _READ_CHUNK - 1)  # type: ignore[assignment]
            yield from _decoded(iter(chunk))
            if len(chunk) < _READ_CHUNK:
                return
            start += len(chunk)

    def compacted(self) -> Compacted:
        with self._reachable("reading the compacted exposure log"):
            blob = self._client.get(self.compacted_key)
        if blob is None:
            return Compacted()
        return _compacted_decoder.decode(zlib.decompress(as_bytes(blob)))

    def compact(self, folded: Compacted) -> int:
        assert folded.through is not None
        # The leading lines before `through` (the log is in arrival order, close to time order).
        leading = 0
        for line in self._lines():
            if line.at >= folded.through:
                break
            leading += 1
        with self._reachable("compacting the exposure log"):
            pipe = self._client.pipeline(transaction=True)
            pipe.set(self.compacted_key, zlib.compress(_encoder.encode(folded)))
            pipe.ltrim(self.key, leading, -1)
            pipe.execute()
        return leading

    def erase(self, customer_id: str) -> int:
        removed = 0
        # LREM by value: each distinct line of the customer once (the list may be long; an
        # erasure is rare).
        seen = {_encoder.encode(x) for x in self._lines() if x.customer_id == customer_id}
        with self._reachable("erasing from the exposure log"):
            for value in seen:
                removed += int(self._client.lrem(self.key, 0, value))  # type: ignore[arg-type]
        with (
            self._reachable("erasing from the compacted exposure log"),
            self._client.pipeline(transaction=True) as pipe,
        ):
            while True:
                try:
                    # Under WATCH: a compaction storing meanwhile makes this try again on its
                    # result.
                    pipe.watch(self.compacted_key)
                    blob = pipe.get(self.compacted_key)
                    if blob is None:
                        pipe.unwatch()
                        return removed
                    folded, dropped = _without(
                        _compacted_decoder.decode(zlib.decompress(as_bytes(blob))), customer_id
                    )
                    if not dropped:
                        pipe.unwatch()
                        return removed
                    pipe.multi()
                    pipe.set(self.compacted_key, zlib.compress(_encoder.encode(folded)))
                    pipe.execute()
                    return removed + dropped
                except redis.WatchError:
                    continue
