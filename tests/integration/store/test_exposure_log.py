"""The experiments' exposure log on both stores (Redis on one server and on a cluster): lines in
arrival order across handles (two workers, a restart), a killed writer's torn line skipped, an
erasure that removes only the customer's lines, compaction into folded assignments; and the
worker's buffer in front of it."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from recsvc.domain.experiments import Assignment, Compacted, Exposure
from recsvc.service.experiments import ExposureRecorder
from recsvc.store import FileStore, open_store
from recsvc.store.exposures import EXPOSURES_FILE
from tests.api_support import STORE_KINDS_AND_CLUSTER

AT = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def line(customer: str, n: int = 0, arm: str = "treatment") -> Exposure:
    return Exposure(
        AT + dt.timedelta(seconds=n),
        "apology_credit",
        "apology_credit",
        customer,
        arm,  # type: ignore[arg-type]
        "v1",
        "detractors",
        0.1,
    )


@pytest.mark.parametrize("empty_store_url", STORE_KINDS_AND_CLUSTER, indirect=True)
def test_lines_are_shared_by_handles_and_erased_per_customer(
    empty_store_url: str, tmp_path: Path
) -> None:
    first = open_store(empty_store_url, cache_dir=tmp_path / "a")
    second = open_store(empty_store_url, cache_dir=tmp_path / "b")
    assert list(first.exposures.read()) == []
    first.exposures.append([line("C1", 0), line("C2", 1, "holdout")])
    second.exposures.append([line("C1", 2)])
    first.exposures.append([])
    assert [(x.customer_id, x.arm) for x in second.exposures.read()] == [
        ("C1", "treatment"),
        ("C2", "holdout"),
        ("C1", "treatment"),
    ]
    assert next(iter(first.exposures.read())) == line("C1", 0), "a line reads back as written"
    assert second.exposures.erase("C1") == 2
    assert second.exposures.erase("C9") == 0
    first.close()
    restarted = open_store(empty_store_url, cache_dir=tmp_path / "c")
    assert [x.customer_id for x in restarted.exposures.read()] == ["C2"]
    restarted.close()
    second.close()


def test_a_torn_last_line_is_skipped_and_the_next_append_still_reads(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    store.exposures.append([line("C1")])
    with (tmp_path / "store" / EXPOSURES_FILE).open("ab") as file:
        file.write(b'["2026-12-01T10:00:00Z","apology_cr')  # a writer killed mid-line
    assert [x.customer_id for x in store.exposures.read()] == ["C1"]
    store.exposures.append([line("C3")])
    # The torn bytes and the next line share a line now: that one line is lost, no more.
    assert [x.customer_id for x in store.exposures.read()] == ["C1"]
    store.exposures.append([line("C4")])
    assert [x.customer_id for x in store.exposures.read()] == ["C1", "C4"]


def test_the_buffer_writes_within_its_interval_and_everything_at_close(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    recorder = ExposureRecorder(store.exposures, every=0.05)
    recorder.start()
    recorder.record([line("C1"), line("C2")])
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and len(list(store.exposures.read())) < 2:
        time.sleep(0.01)
    assert [x.customer_id for x in store.exposures.read()] == ["C1", "C2"]
    recorder.record([line("C3")])
    recorder.close()  # the shutdown writes what is left
    assert [x.customer_id for x in store.exposures.read()] == ["C1", "C2", "C3"]
    assert recorder.written == 3 and recorder.dropped == 0


@pytest.mark.parametrize("empty_store_url", STORE_KINDS_AND_CLUSTER, indirect=True)
def test_compaction_folds_old_lines_and_an_erasure_reaches_the_folded_ones(
    empty_store_url: str, tmp_path: Path
) -> None:
    store = open_store(empty_store_url, cache_dir=tmp_path / "a")
    log = store.exposures
    assert log.compacted() == Compacted()
    log.append([line("C1", 0), line("C2", 10), line("C1", 20), line("C3", 30)])
    through = AT + dt.timedelta(seconds=15)
    folded = Compacted(
        through,
        [
            Assignment("apology_credit", "apology_credit", "C1", "treatment", AT, 1),
            Assignment("apology_credit", "apology_credit", "C2", "treatment", AT, 1),
        ],
    )
    assert log.compact(folded) == 2
    other = open_store(empty_store_url, cache_dir=tmp_path / "b")  # another process
    assert other.exposures.compacted() == folded
    assert [(x.customer_id, x.at) for x in other.exposures.read()] == [
        ("C1", AT + dt.timedelta(seconds=20)),
        ("C3", AT + dt.timedelta(seconds=30)),
    ]
    # A late line from before `through` is already counted in the folded assignments: skipped.
    log.append([line("C9", 5)])
    assert "C9" not in [x.customer_id for x in other.exposures.read()]
    assert other.exposures.erase("C1") == 2  # one line, one folded assignment
    assert [a.customer_id for a in log.compacted().assignments] == ["C2"]
    assert [x.customer_id for x in log.read()] == ["C3"]
    other.close()
    store.close()
