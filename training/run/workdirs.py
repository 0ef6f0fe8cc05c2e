"""Run directories (`var/runs/<run id>/`: validation report, quarantine, artifact): claimed while a
run works in one, cleaned up afterwards. Several stores may share one runs dir."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from recsvc.store.durable import exclusive_lock
from training.run.records import FINISHED, RUN_ID, RUN_RECORD, RunRecord

# Finished run directories kept under the runs dir.
KEEP_RUN_DIRS = 5
_record_decoder = msgspec.json.Decoder(RunRecord)


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
