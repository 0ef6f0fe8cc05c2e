"""The run record: what one training run did (each step's seconds and rows, live answers, metrics,
gate, version, error), saved in the store's run log when the run starts and again when it ends
(`recsvc.store.runs`), in the run directory, and sealed into the artifact it writes (`run.json`).

A record still `running` when the next run takes the lock belongs to a run that died; that run
marks it `interrupted` (`close_interrupted`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from recsvc.store.runs import RunLog
from training.publish.gate import GateDecision

RUN_RECORD = "run.json"
RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"  # run ids are UTC start times; versions are named after them
RUN_ID = re.compile(r"\d{8}T\d{6}Z")
FINISHED = ("published", "not_published", "failed", "interrupted")
SUCCEEDED = ("published", "not_published")


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


def save_record(log: RunLog, record: RunRecord) -> None:
    log.save(record.run_id, encode_record(record))


def read_records(log: RunLog) -> list[RunRecord]:
    """Every record the log keeps and this build reads, newest first."""
    return [r for r in map(decode_record, log.records()) if r is not None]


def close_interrupted(log: RunLog) -> list[str]:
    """Mark records left `running` as `interrupted`. Only call while holding the training lock:
    then no other run is alive, and a record still running belongs to one that died."""
    closed = []
    for record in read_records(log):
        if record.status == "running":
            record.status = "interrupted"
            record.error = "the run stopped without finishing (killed, or its machine went down)"
            save_record(log, record)
            closed.append(record.run_id)
    return closed


def last_success(log: RunLog) -> RunRecord | None:
    return next((r for r in read_records(log) if r.status in SUCCEEDED), None)


def format_counts(counts: dict[str, int]) -> str:
    """Rows per table, e.g. "customers 1, orders 7"."""
    return ", ".join(f"{table} {rows:,}" for table, rows in counts.items())


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
        if r.steps:
            lines.append(f"{'':<17} steps: {format_steps(r)}")
        if r.suppressed:
            lines.append(
                f"{'':<17} rows of erased customers left out: {format_counts(r.suppressed)}"
            )
    return "\n".join(lines)


def format_steps(record: RunRecord) -> str:
    """Each step's seconds and, when the record has them, the rows it produced."""
    return ", ".join(
        f"{name} {seconds:.1f}s"
        + (f" ({record.step_rows[name]:,} rows)" if name in record.step_rows else "")
        for name, seconds in record.steps.items()
    )
