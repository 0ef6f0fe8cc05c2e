"""The run record (`recsvc.store.runs.RunRecord`): what one training run did (each step's seconds and rows, live answers, metrics,
gate, version, error), saved in the store's run log when the run starts and again when it ends
(`recsvc.store.runs`), in the run directory, and sealed into the artifact it writes (`run.json`).

A record still `running` when the next run takes the lock belongs to a run that died; that run
marks it `interrupted` (`close_interrupted`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from recsvc.store.runs import (
    RUN_ID_FORMAT,
    SUCCEEDED,
    GateDecision,
    LiveIntake,
    RunLog,
    RunRecord,
    decode_record,
    encode_record,
    read_records,
)
from training.recommender.evaluate import describe_recorded_split

RUN_RECORD = "run.json"
RUN_ID = re.compile(r"\d{8}T\d{6}Z")
FINISHED = ("published", "not_published", "failed", "interrupted")


def save_record(log: RunLog, record: RunRecord) -> None:
    log.save(record.run_id, encode_record(record))


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
        split = describe_recorded_split(r.metrics)
        if split:
            lines.append(f"{'':<17} evaluation: {split}")
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


__all__ = [
    "FINISHED",
    "RUN_ID",
    "RUN_ID_FORMAT",
    "RUN_RECORD",
    "SUCCEEDED",
    "GateDecision",
    "LiveIntake",
    "RunRecord",
    "close_interrupted",
    "decode_record",
    "encode_record",
    "format_counts",
    "format_runs",
    "last_success",
    "read_records",
    "save_record",
]
