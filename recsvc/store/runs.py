"""The run log: one record per training run, kept by the store beside the versions, so that
`python -m training runs` and the scheduler read them wherever the store lives.

The store keeps records as opaque bytes (the training job's JSON `RunRecord`), keyed by run id;
run ids sort by start time. File store: `<store root>/runs/<run id>.json`, each replaced
atomically. Redis: the hash `{prefix}:runs`, the newest `MAX_REDIS_RUN_RECORDS` kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import redis

from recsvc.errors import StoreUnavailable

RUNS_DIR = "runs"
# Run records kept in Redis (a year of nightly runs and then some); the file store keeps them all.
MAX_REDIS_RUN_RECORDS = 500


class RunLog(Protocol):
    def save(self, run_id: str, record: bytes) -> None: ...

    def records(self) -> list[bytes]:
        """Every kept record, newest first."""
        ...


class FileRunLog:
    """One JSON file per run under `<store root>/runs/`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, run_id: str, record: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{run_id}.json.tmp"
        with tmp.open("wb") as handle:
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / f"{run_id}.json")

    def records(self) -> list[bytes]:
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json"), reverse=True):
            try:
                out.append(path.read_bytes())
            except OSError:
                continue  # removed while we listed
        return out


class RedisRunLog:
    """The hash `{prefix}:runs`: run id -> record."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    def save(self, run_id: str, record: bytes) -> None:
        try:
            self.client.hset(self.key, run_id, record)
            if self.client.hlen(self.key) > MAX_REDIS_RUN_RECORDS + 50:  # trim in batches
                names = sorted(self.client.hkeys(self.key))
                self.client.hdel(self.key, *names[: len(names) - MAX_REDIS_RUN_RECORDS])
        except redis.RedisError as exc:
            raise StoreUnavailable(f"cannot save run record {run_id}: {exc}") from exc

    def records(self) -> list[bytes]:
        try:
            raw: dict[bytes, bytes] = self.client.hgetall(self.key)  # type: ignore[assignment]
        except redis.RedisError as exc:
            raise StoreUnavailable(f"cannot read the run log: {exc}") from exc
        return [value for _, value in sorted(raw.items(), reverse=True)]
