"""The run log: one record per training run, kept by the store beside the versions, so that
`python -m training runs` and the scheduler read them wherever the store lives.

The store keeps records as bytes (the JSON `RunRecord` below, written by the training job and read by
it and by the marketer console), keyed by run id;
run ids sort by start time. File store: `<store root>/runs/<run id>.json`, each replaced
atomically. Redis: the hash `{prefix}:runs`, the newest `MAX_REDIS_RUN_RECORDS` kept.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Protocol

import msgspec
import redis

from recsvc.errors import StoreUnavailable
from recsvc.store.redis_client import CLIENT_ERRORS

RUNS_DIR = "runs"
# Run records kept in Redis (a year of nightly runs and then some); the file store keeps them all.
MAX_REDIS_RUN_RECORDS = 500
RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"  # run ids are UTC start times; versions are named after them
SUCCEEDED = ("published", "not_published")


# --- the record (written by the training job, read by it and by the marketer console) ----------


class GateDecision(msgspec.Struct, frozen=True):
    """The gate's verdict, kept in the run record."""

    publish: bool
    reason: str
    new_ndcg: float
    active_version: str | None = None
    active_ndcg: float | None = None
    # "same split" (both scored on the same customers), "recorded", "not comparable" (the recorded
    # NDCG is of the other hold-out split) or "none"
    comparison: str = "none"
    compared: int = 0  # customers both models were scored on ("same split")
    # 95% interval of new minus active NDCG: the paired bootstrap over those customers ("same
    # split"), or the new model's interval minus the recorded NDCG ("recorded").
    difference_low: float | None = None
    difference_high: float | None = None
    # The hold-out split the new model was evaluated on ("time" or "last_orders"; records from
    # before the last-orders split have none) and, for "recorded", the one the active version's
    # NDCG was measured on (None: unknown, so "time").
    split: str | None = None
    active_split: str | None = None


class SearchTrial(msgspec.Struct, frozen=True, kw_only=True):
    """One recommender configuration the run's search tried (`training.recommender.search`)."""

    name: str  # "plain collaborative", "configured", "previous best", "draw 3", "EASE lambda 500"
    loss: str  # LightFM's (a blend's LightFM half)
    components: int
    learning_rate: float
    identity_weight: float  # 1: purely collaborative (no features in the fit)
    regularisation: float  # user and item alpha
    weighted: bool  # interaction weights scale the updates
    epochs: int  # at its best checkpoint
    ndcg: float  # validation NDCG@k at that checkpoint
    curve: list[float]  # validation NDCG at each checkpoint, every `check_every` epochs
    seconds: float
    outcome: str  # chosen, finished, early stop, halved, budget, over fit budget
    ranker: str = "lightfm"  # or "blend": LightFM beside EASE
    blend_weight: float | None = None  # LightFM's share in a blend (0: EASE alone)
    ease_lambda: float | None = None
    features_off: list[str] = []  # attribute fields left out of a hybrid fit


class PriorChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The recent-popularity prior's weight the search chose for its chosen settings
    (`training.recommender.season`), and the validation NDCG of each weight tried."""

    weight: float
    days: int  # the prior counts each product's buyers in this many last days
    ndcg: dict[str, float]


class SearchRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the run's search did: on which validation split, within what, and every trial."""

    chosen: str
    split: str  # "time" or "last_orders" (each customer's last purchase day)
    validation_users: int
    fit_customers: (
        int  # customers the search fitted on (a sample of the training lines' when large)
    )
    interactions: int
    check_every: int
    budget_seconds: float | None  # None: deterministic, bounded by the trials alone
    seconds: float
    warm_start: bool
    trials: list[SearchTrial]
    ease: str = ""  # whether EASE was tried on this catalogue, and why not
    prior: PriorChoice | None = None  # None: a record from before the prior, or nothing scored


class LiveIntake(msgspec.Struct, kw_only=True):
    """What became of the live records of one kind (NPS responses, order lines) in one run."""

    stored: int = 0  # live records in the store (order lines: every revision)
    merged: int = 0  # added to the run's table (order lines: current revisions)
    # Dropped, the shop's file has them: the response_id; a line's line_id or its order_id.
    in_batch: int = 0
    unknown_customer: int = 0  # dropped: customer not among the validated customers
    unknown_product: int = 0  # order lines dropped: product not among the validated products
    new_since_last_run: int = 0  # received after the last successful run read the live ones
    # The latest `received_at` this run read (ISO, microseconds): what the next run counts from.
    received_until: str | None = None
    archived: int = 0  # of `stored`: read from the archive (compacted after an earlier run)
    compacted: int = 0  # moved from live to the archive when this run started (see `Compaction`)
    compaction_error: str | None = None  # why the move failed (the next run retries)
    # Records of erased customers the run found left behind and erased from the store (the counts
    # above leave them out: they are in `RunRecord.suppressed`); why that failed (the next run
    # retries).
    swept: int = 0
    sweep_error: str | None = None


class RunRecord(msgspec.Struct, kw_only=True):
    run_id: str
    data_dir: str
    store: str
    started_at: str
    finished_at: str = ""
    # running, published, not_published, failed, interrupted; "publishing" only in the copy sealed
    # inside a version's artifact (`run.json`), written just before the publish step.
    status: str = "running"
    steps: dict[str, float] = {}  # seconds each step took, in run order
    # Rows each step's output holds (see `training.run.steps`); records from before it lack them.
    step_rows: dict[str, int] = {}
    rows: dict[str, int] = {}  # customers and order lines the run trained on
    rejected_rows: int = 0
    # Rows of erased customers left out (`recsvc.domain.privacy`), by table: the shop's files'
    # and the live records'; records from before erasures lack them.
    suppressed: dict[str, int] = {}
    live: LiveIntake | None = None  # the NPS responses
    live_orders: LiveIntake | None = None  # the order lines
    metrics: dict[str, Any] = {}
    gate: GateDecision | None = None
    search: SearchRecord | None = None  # the recommender's self-tuning; None: no search ran
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


def decode_record(data: bytes) -> RunRecord | None:
    """A stored record, or None for one this build cannot read (a future format: not ours)."""
    try:
        return _record_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


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
        except CLIENT_ERRORS as exc:
            raise StoreUnavailable(f"cannot save run record {run_id}: {exc}") from exc

    def records(self) -> list[bytes]:
        try:
            raw: dict[bytes, bytes] = self.client.hgetall(self.key)  # type: ignore[assignment]
        except CLIENT_ERRORS as exc:
            raise StoreUnavailable(f"cannot read the run log: {exc}") from exc
        return [value for _, value in sorted(raw.items(), reverse=True)]


def read_records(log: RunLog) -> list[RunRecord]:
    """Every record the log keeps and this build reads, newest first."""
    return [r for r in map(decode_record, log.records()) if r is not None]
