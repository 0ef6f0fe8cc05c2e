"""What makes the training run a nightly job: the training lock, the live NPS responses merged into a
run, the run log kept in the store (`python -m training runs`) and the scheduling loop
(`python -m training schedule`).

- **Lock.** One training run per store at a time. The embedded store: `flock` on
  `<store root>/.train.lock` (the kernel drops it when the process dies, kill -9 included). Redis:
  `SET {prefix}:train-lock <owner> NX PX <ttl>`, renewed by a thread while the run lives and released
  only by its owner (compare and delete in Lua); a run killed outright frees it after the ttl. A run
  that cannot take the lock raises `LockHeld` naming the holder.
- **Live responses.** The NPS responses the service took in are added to the validated
  `nps_responses` table of every run, all of them and not only those since the last run, since the
  shop's export may never contain them: the archive (`Store.iter_archived_responses`, what earlier
  runs compacted) first, then the live ones (`Store.iter_live_responses`), each response id once
  (first copy wins). A response whose `response_id` is also in the batch file is dropped (the
  shop's file is the record), and one whose customer is not in the validated customers is dropped
  as the validator would.
- **Compaction.** Before it reads them, a run moves to the archive (`Store.compact_live`) the live
  responses the active version holds, so live keeps only what no published version holds yet:
  workers index and NPS summaries read only that. Done at the start of the next run rather than
  right after a publish, so the version holding them has been served for a day: every worker has
  loaded it, and since the service skips live answers its version holds, it shows the same
  numbers after the move as before. Answers of a customer the shop's data lacks stay live (they
  count in live summaries and that customer's live state) until a version holds them, or until
  `live_retention_days` (training config, default 90) have passed since they came in: then they
  move too, so a customer id that never appears cannot pile answers up forever; every run still
  merges them from the archive. A failed compaction does not fail the run: the record notes the
  error and the next run moves them. Nothing is deleted: answers leave live only once the archive
  copy is durable (see `recsvc.store`).
- **Run log.** Every run's `RunRecord`, saved when the run starts and again when it ends, beside the
  versions: `<store root>/runs/<run id>.json` or the Redis hash `{prefix}:runs`. A record still
  `running` when the next run takes the lock belongs to a run that died; that run marks it
  `interrupted`.
- **Schedule.** A 5-field cron expression (parsed by `croniter`, a small, widely used library; cron
  edge cases such as day-of-month/day-of-week unions, names and DST gaps are not worth
  re-implementing). At start the loop runs once if the latest scheduled time since the last
  successful run was missed (never more than once, however many were missed), then sleeps until
  each next time. Each run is a `python -m training run` subprocess, so its memory is returned and a
  crash cannot take the scheduler down.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import numpy as np
import polars as pl
import redis

from recsvc.domain import columns as c
from recsvc.domain.times import naive_utc
from recsvc.errors import ConfigError, RecsvcError
from recsvc.service.nps_summary import response_key
from recsvc.store import FileStore, LiveResponse, RedisStore, Store, StoreUnavailable
from recsvc.store.files import exclusive_lock
from recsvc.version.opened import ActiveModel

LOCK_FILE = ".train.lock"
RUNS_DIR = "runs"
RUN_RECORD = "run.json"
RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"  # run ids are UTC start times; versions are named after them
RUN_ID = re.compile(r"\d{8}T\d{6}Z")
DEFAULT_LOCK_TTL_SECONDS = 60.0
EXIT_LOCK_HELD = 3  # the exit code of `python -m training run` when another run holds the lock
# Run records kept in Redis (a year of nightly runs and then some); the file store keeps them all.
MAX_REDIS_RUN_RECORDS = 500
# Finished run directories (validation report, quarantine, artifact) kept under the runs dir.
KEEP_RUN_DIRS = 5
FINISHED = ("published", "not_published", "failed", "interrupted")
SUCCEEDED = ("published", "not_published")


class LockHeld(RecsvcError):
    """Another training run holds the lock of this store."""


class LockLost(RecsvcError):
    """The run's Redis lock expired or was taken over while the run worked: it must not publish."""


# --- the run record -------------------------------------------------------------------------------
# Defined here, below the pipeline, so the run log and the scheduler can read records;
# `training.run.pipeline` fills them in (and re-exports both names).


class GateDecision(msgspec.Struct, frozen=True):
    publish: bool
    reason: str
    new_ndcg: float
    active_version: str | None = None
    active_ndcg: float | None = None
    comparison: str = "none"  # "same split", "recorded" or "none"


class LiveIntake(msgspec.Struct, kw_only=True):
    """What became of the live NPS responses in one run."""

    stored: int = 0  # live responses in the store
    merged: int = 0  # added to the run's nps_responses
    in_batch: int = 0  # dropped: their response_id is in the batch file
    unknown_customer: int = 0  # dropped: customer not among the validated customers
    new_since_last_run: int = 0  # received after the last successful run read the live ones
    # The latest `received_at` this run read (ISO, microseconds): what the next run counts from.
    received_until: str | None = None
    archived: int = 0  # of `stored`: read from the archive (compacted after an earlier run)
    compacted: int = 0  # moved from live to the archive when this run started (see `Compaction`)
    compaction_error: str | None = None  # why the move failed (the next run retries)


class RunRecord(msgspec.Struct, kw_only=True):
    run_id: str
    data_dir: str
    store: str
    started_at: str
    finished_at: str = ""
    # running, published, not_published, failed, interrupted; "publishing" only in the copy sealed
    # inside a version's artifact (`run.json`), written just before the publish step.
    status: str = "running"
    steps: dict[str, float] = {}
    rows: dict[str, int] = {}
    rejected_rows: int = 0
    live: LiveIntake | None = None
    metrics: dict[str, Any] = {}
    gate: GateDecision | None = None
    version: str | None = None
    published: bool = False
    error: str | None = None
    host: str = ""
    pid: int = 0

    @property
    def duration(self) -> float | None:
        if not self.finished_at:
            return None
        started = dt.datetime.fromisoformat(self.started_at)
        return (dt.datetime.fromisoformat(self.finished_at) - started).total_seconds()


_record_decoder = msgspec.json.Decoder(RunRecord)


def encode_record(record: RunRecord) -> bytes:
    return msgspec.json.format(msgspec.json.encode(record))


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")


# --- the lock -------------------------------------------------------------------------------------


class LockOwner(msgspec.Struct, frozen=True):
    token: str
    pid: int
    host: str
    since: str


def _owner() -> LockOwner:
    return LockOwner(uuid.uuid4().hex, os.getpid(), socket.gethostname(), _iso(now_utc()))


def _held_message(raw: bytes | None) -> str:
    try:
        owner = msgspec.json.decode(raw or b"", type=LockOwner)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "another training run holds the lock (it is just starting)"
    return (
        f"another training run holds the lock since {owner.since} (pid {owner.pid} on {owner.host})"
    )


class TrainingLock(Protocol):
    def check(self) -> None:
        """Raise LockLost if the lock is no longer ours (checked right before publishing)."""
        ...

    def release(self) -> None: ...


class FileTrainingLock:
    """`flock` on a file beside the store's versions; the kernel releases it with the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0)
            os.close(fd)
            raise LockHeld(_held_message(holder)) from None
        # The file is never deleted (deleting a lock file lets two runs lock two different files);
        # its content only names the holder for the message above.
        os.ftruncate(fd, 0)
        os.pwrite(fd, msgspec.json.encode(_owner()), 0)
        self._fd = fd

    def check(self) -> None:
        """An flock cannot be lost while the process lives."""

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


# KEYS: the lock; ARGV: our owner value, ttl in ms. Renew or release only if it is still ours.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def redis_client(url: str) -> redis.Redis:
    """A client for the store's Redis (the store's own `prefix` and `cache_dir` parameters removed)."""
    parts = urllib.parse.urlsplit(url)
    query = [
        (name, value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if name not in ("prefix", "cache_dir")
    ]
    plain = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return redis.Redis.from_url(plain, socket_timeout=5.0, socket_connect_timeout=2.0)


class RedisTrainingLock:
    """`SET NX PX` with a renewal thread; lost when it cannot be renewed within its ttl."""

    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        if ttl_seconds < 1:
            raise ConfigError(f"the lock ttl must be at least 1 second, got {ttl_seconds}")
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.value = msgspec.json.encode(_owner())
        self._stop = threading.Event()
        self._lost: str | None = None
        self._renewer: threading.Thread | None = None
        self._renew = client.register_script(_RENEW_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    def acquire(self) -> None:
        try:
            taken = self.client.set(self.key, self.value, nx=True, px=self.ttl_ms)
            holder = None if taken else self.client.get(self.key)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"cannot take the training lock {self.key}: {exc}") from exc
        if not taken:
            raise LockHeld(_held_message(holder if isinstance(holder, bytes) else None))
        self._renewer = threading.Thread(target=self._keep_alive, name="train-lock", daemon=True)
        self._renewer.start()

    def _keep_alive(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self._renew(keys=[self.key], args=[self.value, self.ttl_ms]):
                    self._lost = "the lock expired or another run took it"
                    return
                renewed = time.monotonic()
            except redis.RedisError as exc:
                if time.monotonic() - renewed > self.ttl_ms / 1000:
                    self._lost = f"could not renew it within its ttl ({exc})"
                    return

    def check(self) -> None:
        if self._lost:
            raise LockLost(f"lost the training lock {self.key}: {self._lost}; not publishing")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with contextlib.suppress(redis.RedisError):  # else it expires by itself
            self._release(keys=[self.key], args=[self.value])


@contextmanager
def training_lock(
    store: Store, url: str, *, ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS
) -> Iterator[TrainingLock]:
    """Hold the store's training lock for the block; LockHeld when another run has it."""
    lock: FileTrainingLock | RedisTrainingLock
    if isinstance(store, FileStore):
        lock = FileTrainingLock(store.root / LOCK_FILE)
    elif isinstance(store, RedisStore):
        lock = RedisTrainingLock(redis_client(url), f"{store.prefix}:train-lock", ttl_seconds)
    else:
        raise ConfigError(f"no training lock for a {type(store).__name__}")
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
        if isinstance(lock, RedisTrainingLock):
            lock.client.close()


# --- the run log ----------------------------------------------------------------------------------


class RunLog(Protocol):
    def save(self, record: RunRecord) -> None: ...

    def records(self) -> list[RunRecord]:
        """Every kept record, newest first."""
        ...

    def close(self) -> None: ...


class FileRunLog:
    """One JSON file per run under `<store root>/runs/`, each replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, record: RunRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{record.run_id}.json.tmp"
        with tmp.open("wb") as handle:
            handle.write(encode_record(record))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / f"{record.run_id}.json")

    def records(self) -> list[RunRecord]:
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*.json"), reverse=True):
            try:
                out.append(_record_decoder.decode(path.read_bytes()))
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                continue  # a record from an incompatible future format: not ours to list
        return out

    def close(self) -> None:
        """Nothing to release."""


class RedisRunLog:
    """The hash `{prefix}:runs`: run id -> record, the newest MAX_REDIS_RUN_RECORDS kept."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    def save(self, record: RunRecord) -> None:
        self.client.hset(self.key, record.run_id, encode_record(record))
        if self.client.hlen(self.key) > MAX_REDIS_RUN_RECORDS + 50:  # trim in batches
            names = sorted(self.client.hkeys(self.key))
            self.client.hdel(self.key, *names[: len(names) - MAX_REDIS_RUN_RECORDS])

    def records(self) -> list[RunRecord]:
        raw: dict[Any, Any] = self.client.hgetall(self.key)
        out = []
        for _, value in sorted(raw.items(), reverse=True):
            try:
                out.append(_record_decoder.decode(value))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        return out

    def close(self) -> None:
        self.client.close()


def open_run_log(store: Store, url: str) -> RunLog:
    if isinstance(store, FileStore):
        return FileRunLog(store.root / RUNS_DIR)
    if isinstance(store, RedisStore):
        return RedisRunLog(redis_client(url), f"{store.prefix}:runs")
    raise ConfigError(f"no run log for a {type(store).__name__}")


def close_interrupted(log: RunLog) -> list[str]:
    """Mark records left `running` as `interrupted`. Only call while holding the training lock:
    then no other run is alive, and a record still running belongs to one that died."""
    closed = []
    for record in log.records():
        if record.status == "running":
            record.status = "interrupted"
            record.error = "the run stopped without finishing (killed, or its machine went down)"
            log.save(record)
            closed.append(record.run_id)
    return closed


def last_success(log: RunLog) -> RunRecord | None:
    return next((r for r in log.records() if r.status in SUCCEEDED), None)


def format_runs(records: Sequence[RunRecord]) -> str:
    """The run log as a table for people, newest first."""
    if not records:
        return "no training runs recorded in this store yet"
    lines = [f"{'run':<17} {'status':<13} {'duration':>9}  {'version':<26} detail"]
    for r in records:
        duration = f"{r.duration:.1f}s" if r.duration is not None else "-"
        if r.error:
            detail = r.error
        elif r.gate is not None:
            detail = r.gate.reason
        else:
            detail = ""
        if r.rows:
            detail = ", ".join(f"{k} {v:,}" for k, v in r.rows.items()) + (
                f"; {detail}" if detail else ""
            )
        lines.append(
            f"{r.run_id:<17} {r.status:<13} {duration:>9}  {r.version or '-':<26} {detail}"
        )
    return "\n".join(lines)


# --- run directories ------------------------------------------------------------------------------


@contextmanager
def run_dir_claim(work: Path) -> Iterator[None]:
    """Mark a run directory as in use for the block (an flock inside it; see `clean_run_dirs`)."""
    work.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(work / ".in-use"):
        yield


def _in_use(work: Path) -> bool:
    try:
        fd = os.open(work / ".in-use", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def clean_run_dirs(runs_dir: Path, keep: int = KEEP_RUN_DIRS) -> list[str]:
    """Remove the directories of runs that died (no finished `run.json`, nobody using them) and the
    finished ones beyond the newest `keep`. Several stores may share one runs dir, so a directory in
    use by a live run (of any store) is never touched, nor one not named like a run."""
    if not runs_dir.is_dir():
        return []
    removed, finished = [], []
    runs = (p for p in runs_dir.iterdir() if p.is_dir() and RUN_ID.fullmatch(p.name))
    for work in sorted(runs, reverse=True):
        if _in_use(work):
            continue
        try:
            status = _record_decoder.decode((work / RUN_RECORD).read_bytes()).status
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            status = "running"
        if status in FINISHED:
            finished.append(work)
            if len(finished) <= keep:
                continue
        shutil.rmtree(work, ignore_errors=True)
        removed.append(work.name)
    return removed


# --- live NPS responses ---------------------------------------------------------------------------


class LiveRead(msgspec.Struct, frozen=True):
    """The live NPS responses one run read from the store."""

    responses: list[LiveResponse]  # archived ones first, then live; each response id once
    live: list[LiveResponse]  # those read from live: what the run compacts once it published
    archived: int  # how many of `responses` came from the archive


def read_live_responses(store: Store) -> LiveRead:
    """The archive, then the live responses; the first copy of a response id wins (a compaction
    killed half-way leaves a response in both)."""
    seen: set[str] = set()
    responses: list[LiveResponse] = []
    for response in store.iter_archived_responses():
        if response.response_id not in seen:
            seen.add(response.response_id)
            responses.append(response)
    archived = len(responses)
    live = list(store.iter_live_responses())
    for response in live:
        if response.response_id not in seen:
            seen.add(response.response_id)
            responses.append(response)
    return LiveRead(responses, live, archived)


class Compaction(msgspec.Struct, frozen=True):
    """What a run moved from live to the archive before it read the live answers."""

    moved: int = 0
    error: str | None = None


def compact_held_responses(
    store: Store, active: ActiveModel | None, *, now: dt.datetime, retention_days: float
) -> Compaction:
    """Move to the archive the live responses the active version holds, and those no version
    has taken in `retention_days` (their customer is not in the shop's data).

    Done at the start of a run, so the version that holds them has been served for a while: every
    worker has loaded it, and the service shows the same numbers after the move as before (it
    skips live answers its version holds). Failing does not fail the run: they stay live, the
    record says why and the next run moves them.
    """
    if active is None:
        return Compaction()
    try:
        live = list(store.iter_live_responses())
        if not live:
            return Compaction()
        keys = np.fromiter((response_key(r.response_id) for r in live), np.uint64, len(live))
        held = active.responses.holds(keys) if active.responses is not None else np.zeros(len(live))
        stale = now - dt.timedelta(days=retention_days)
        moving = [r for r, h in zip(live, held.tolist(), strict=True) if h or r.received_at < stale]
        return Compaction(store.compact_live(moving) if moving else 0)
    except Exception as exc:  # the store went away, say: the answers stay live until next time
        return Compaction(error=f"{type(exc).__name__}: {exc}")


def merge_live_responses(
    responses: Sequence[LiveResponse], clean_dir: Path, *, since: dt.datetime | None = None
) -> LiveIntake:
    """Add live NPS responses (`read_live_responses`) to the validated `nps_responses.parquet` in
    `clean_dir`.

    The batch file wins on a shared response_id; responses of customers missing from the validated
    customers table are dropped. `since` (the last successful run's `received_until`) only counts
    how many arrived after that run read them.
    """
    intake = LiveIntake(stored=len(responses))
    if not responses:
        return intake
    intake.received_until = max(r.received_at for r in responses).isoformat()
    if since is not None:
        intake.new_since_last_run = sum(r.received_at > since for r in responses)
    path = clean_dir / f"{c.NPS_RESPONSES}.parquet"
    batch = pl.scan_parquet(path)
    schema = batch.collect_schema()
    live = pl.DataFrame(
        {
            c.RESPONSE_ID: [r.response_id for r in responses],
            c.CUSTOMER_ID: [r.customer_id for r in responses],
            c.SCORE: [r.score for r in responses],
            c.RESPONDED_AT: [naive_utc(r.responded_at) for r in responses],
            c.TOUCHPOINT: [r.touchpoint for r in responses],
            c.ORDER_ID: [r.order_id for r in responses],
            c.COMMENT: [r.comment for r in responses],
        },
        schema={name: schema[name] for name in schema.names()},
    )
    customers = pl.scan_parquet(clean_dir / f"{c.CUSTOMERS}.parquet").select(c.CUSTOMER_ID)
    known = live.lazy().join(customers, on=c.CUSTOMER_ID, how="semi").collect()
    fresh = known.lazy().join(batch.select(c.RESPONSE_ID), on=c.RESPONSE_ID, how="anti").collect()
    intake.unknown_customer = live.height - known.height
    intake.in_batch = known.height - fresh.height
    intake.merged = fresh.height
    if fresh.height:
        tmp = path.with_name(f".{path.name}.tmp")
        pl.concat([batch, fresh.lazy()]).sink_parquet(tmp)
        os.replace(tmp, path)
    return intake


# --- the schedule ---------------------------------------------------------------------------------


def check_cron(expression: str) -> str:
    from croniter import croniter

    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ConfigError(
            f"--cron {expression!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week, e.g. '0 2 * * *')"
        )
    return expression


def timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone {name!r} is not a known time zone (e.g. UTC)") from None


def previous_time(expression: str, now: dt.datetime) -> dt.datetime:
    """The latest scheduled time at or before `now` (aware, in `now`'s zone)."""
    from croniter import croniter

    ahead = now + dt.timedelta(microseconds=1)  # a time exactly on the schedule counts as due
    return croniter(expression, ahead).get_prev(dt.datetime)


def next_time(expression: str, now: dt.datetime) -> dt.datetime:
    """The first scheduled time strictly after `now`."""
    from croniter import croniter

    return croniter(expression, now).get_next(dt.datetime)


def catch_up_due(expression: str, last_started: dt.datetime | None, now: dt.datetime) -> bool:
    """True when the latest scheduled time has no successful run started at or after it."""
    if last_started is None:
        return True
    return last_started < previous_time(expression, now)


def _say(message: str) -> None:
    print(f"[schedule] {_iso(now_utc())} {message}", file=sys.stderr, flush=True)


class Scheduler:
    """Runs `command` (a `python -m training run ...` argv) on a cron schedule until stopped."""

    def __init__(
        self,
        expression: str,
        command: list[str],
        log: RunLog,
        *,
        zone: dt.tzinfo,
        clock: Callable[[], dt.datetime] = now_utc,
        lock_wait_seconds: float = 2 * DEFAULT_LOCK_TTL_SECONDS,
        lock_retry_seconds: float = 15.0,
    ) -> None:
        self.expression = check_cron(expression)
        self.command = command
        self.log = log
        self.zone = zone
        self.clock = clock
        self.lock_wait_seconds = lock_wait_seconds
        self.lock_retry_seconds = lock_retry_seconds
        self.stop = threading.Event()
        self.runs = 0

    def now(self) -> dt.datetime:
        return self.clock().astimezone(self.zone)

    def run_once(self) -> int:
        """One run; while the lock is held, retried every `lock_retry_seconds` for at most
        `lock_wait_seconds` (a Redis lock left by a run killed outright lasts its ttl)."""
        self.runs += 1
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            code = self._run_child()
            if code != EXIT_LOCK_HELD or self.stop.is_set() or time.monotonic() >= deadline:
                break
            _say(f"another run holds the lock; trying again in {self.lock_retry_seconds:.0f}s")
            self.stop.wait(self.lock_retry_seconds)
        verdict = {0: "finished", EXIT_LOCK_HELD: "skipped: another run holds the lock"}
        _say(f"run {verdict.get(code, f'FAILED (exit {code})')}")
        return code

    def _run_child(self) -> int:
        _say(f"starting: {' '.join(self.command)}")
        child = subprocess.Popen(self.command)
        while True:
            try:
                return child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if self.stop.is_set():
                    child.terminate()  # the run is atomic: stopping it leaves the active version
                    try:
                        return child.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        return child.wait()

    def serve(self, *, max_runs: int | None = None) -> None:
        """Catch up once if a scheduled time was missed, then follow the schedule until stopped."""
        try:
            previous = last_success(self.log)
        except redis.RedisError as exc:
            _say(f"cannot read the run log ({exc}); assuming no run was missed")
            previous = None
            missed = False
        else:
            last = dt.datetime.fromisoformat(previous.started_at) if previous else None
            missed = catch_up_due(self.expression, last, self.now())
        if missed:
            _say(
                "the last scheduled run was missed (last successful run: "
                f"{previous.started_at if previous else 'none'}); running once now"
            )
            self.run_once()
        while not self.stop.is_set() and (max_runs is None or self.runs < max_runs):
            due = next_time(self.expression, self.now())
            _say(f"next run at {_iso(due)}")
            # Sleep in short steps against the wall clock, so a suspended machine or a changed
            # clock does not shift the schedule; a time passed while busy is not replayed.
            while not self.stop.is_set() and self.now() < due:
                self.stop.wait(min(30.0, max((due - self.now()).total_seconds(), 0.01)))
            if not self.stop.is_set():
                self.run_once()


def run_schedule(
    expression: str,
    command: list[str],
    store: Store,
    url: str,
    *,
    zone_name: str = "UTC",
    max_runs: int | None = None,
    lock_ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS,
) -> int:
    """The foreground loop of `python -m training schedule`; SIGTERM or SIGINT stop it cleanly."""
    log = open_run_log(store, url)
    scheduler = Scheduler(
        expression,
        command,
        log,
        zone=timezone(zone_name),
        lock_wait_seconds=2 * lock_ttl_seconds,
    )

    def stop(signum: int, _frame: object) -> None:
        _say(f"stopping ({signal.Signals(signum).name})")
        scheduler.stop.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _say(f"schedule {expression!r} ({zone_name}) for {store.url}")
        scheduler.serve(max_runs=max_runs)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.close()
    return 0
