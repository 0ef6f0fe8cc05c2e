"""The exposure log of both stores (`Store.exposures`): every line a worker logged when it showed an
offer in an experiment or withheld it from a holdout customer (`recsvc.domain.experiments.Exposure`),
in arrival order. Workers append (buffered, `recsvc.service.exposures`); the nightly run reads it
all and turns it into assignments and outcome windows (`training.experiments`).

File store: `live/exposures.ndjson`, one JSON array per line, appended under the file's `flock`
(a worker's flush is one write). A line a killed writer left unfinished is skipped by readers.

Redis store: `{prefix}:{live}:exposures`, a list of the same lines (one RPUSH per flush).

Neither is trimmed: a line is ~120 bytes, so a million offer views a day grow it by ~120 MB a day;
the nightly run reads it in one pass (`bench/bench_experiments.py` measures it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import msgspec
import redis

from recsvc.domain.experiments import Exposure
from recsvc.store.durable import locked_for_append, replace_durably, write_all

EXPOSURES_FILE = Path("live") / "exposures.ndjson"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Exposure)
_READ_CHUNK = 10_000


class ExposureLog(Protocol):
    def append(self, lines: Sequence[Exposure]) -> None:
        """Add lines at the end, durably enough for a log that may lose its last 100 ms."""

    def read(self) -> Iterator[Exposure]:
        """Every line, oldest first (unreadable ones skipped)."""

    def erase(self, customer_id: str) -> int:
        """Remove the customer's lines (a privacy erasure); how many went."""


def _decoded(raw: Iterator[bytes]) -> Iterator[Exposure]:
    for line in raw:
        try:
            yield _decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # a killed writer's unfinished line


class FileExposureLog:
    def __init__(self, root: Path) -> None:
        self.path = root / EXPOSURES_FILE

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
        try:
            with self.path.open("rb") as file:
                yield from _decoded(line for line in file if line.endswith(b"\n"))
        except FileNotFoundError:
            return

    def erase(self, customer_id: str) -> int:
        if not self.path.exists():
            return 0
        fd = locked_for_append(self.path, create=False)
        if fd is None:
            return 0
        try:
            with open(self.path, "rb") as file:
                lines = file.readlines()
            kept = [line for line in lines if _customer(line) != customer_id]
            if len(kept) != len(lines):
                # Renamed over the path while the append lock is held: a writer waiting for it
                # opens the new file (`locked_for_append`).
                replace_durably(self.path, b"".join(kept))
        finally:
            os.close(fd)
        return len(lines) - len(kept)


def _customer(line: bytes) -> str | None:
    try:
        return _decoder.decode(line).customer_id
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

    def append(self, lines: Sequence[Exposure]) -> None:
        if not lines:
            return
        with self._reachable("logging offer exposures"):
            self._client.rpush(self.key, *[_encoder.encode(line) for line in lines])

    def read(self) -> Iterator[Exposure]:
        start = 0
        while True:
            with self._reachable("reading the exposure log"):
                chunk: list[bytes] = self._client.lrange(self.key, start, start + _READ_CHUNK - 1)  # type: ignore[assignment]
            yield from _decoded(iter(chunk))
            if len(chunk) < _READ_CHUNK:
                return
            start += len(chunk)

    def erase(self, customer_id: str) -> int:
        removed = 0
        # LREM by value: each distinct line of the customer once (the list may be long; an
        # erasure is rare).
        seen = {_encoder.encode(line) for line in self.read() if line.customer_id == customer_id}
        with self._reachable("erasing from the exposure log"):
            for value in seen:
                removed += int(self._client.lrem(self.key, 0, value))  # type: ignore[arg-type]
        return removed
