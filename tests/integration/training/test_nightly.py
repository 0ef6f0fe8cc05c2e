"""The nightly job: one run per store at a time (a second exits 3 naming the holder), a run killed
at any point (kill -9) leaves the old version serving and the next run cleans up, live NPS responses
join the run, every run is recorded (failures too, with a non-zero exit) and listed, and the
schedule catches up a missed run exactly once.

Runs are real `python -m training run` processes on small demo data. To kill one at an exact point
of its publish, the process is started through a wrapper that pauses a store method (after or
before it runs) and drops a marker file; nothing in the code under test knows about it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import redis

from recsvc.errors import LockHeld, LockLost, RecsvcError
from recsvc.store import FileStore, LiveResponse, RedisStore, open_store
from recsvc.store.locks import RedisTrainingLock
from recsvc.store.runs import FileRunLog
from tests.api_support import STORE_KINDS, client_for, redis_store_url
from training.__main__ import main
from training.config import load_config
from training.run.live import merge_live_responses, read_live_responses
from training.run.pipeline import LIVE_QUARANTINE, format_record, run_pipeline
from training.run.records import RunRecord, read_records, save_record
from training.run.schedule import Scheduler, catch_up_due
from training.sources.generate import generate
from training.validate.dataset import validate_dataset

ROOT = Path(__file__).resolve().parents[3]
SMALL = {
    "search_trials": 0,
    "epochs": 3,
    "components": 8,
    "max_eval_users": 300,
    "deterministic": True,
}
RUN_FLAGS = ["--epochs", "3", "--search-trials", "0", "--deterministic", "--force"]
ANSWERED_AT = dt.datetime(2025, 12, 30, 12, tzinfo=dt.UTC)  # the demo data's last days

# Runs `python -m training` with one store method paused: TEST_PAUSE="FileStore.activate:before"
# pauses before the method runs, ":after" after it returned; the marker file says it got there.
PAUSE_WRAPPER = """
import os, sys, time
from pathlib import Path
from recsvc.store import FileStore, RedisStore
from recsvc.store.files_live import FileLiveLog
from recsvc.store.redis_live import RedisLiveLog
where, when = os.environ["TEST_PAUSE"].split(":")
cls_name, method = where.split(".")
cls = {
    "FileStore": FileStore,
    "RedisStore": RedisStore,
    "FileLiveLog": FileLiveLog,
    "RedisLiveLog": RedisLiveLog,
}[cls_name]
original = getattr(cls, method)
def pause():
    Path(os.environ["TEST_PAUSE_MARKER"]).write_text(where)
    time.sleep(600)
def paused(self, *args, **kwargs):
    if when == "before":
        pause()
    result = original(self, *args, **kwargs)
    pause()
    return result
setattr(cls, method, paused)
from training.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("nightly") / "data"
    generate(data, 600, seed=5, show_progress=False)
    return data


@pytest.fixture(scope="module")
def first_store(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A file store with one published version (copied per test)."""
    root = tmp_path_factory.mktemp("first")
    record = run_pipeline(
        demo,
        store=f"file://{root / 'store'}",
        config=load_config(**SMALL),
        runs_dir=root / "runs",
        show_progress=False,
    )
    assert record.published and record.version
    return root / "store", record.version


@pytest.fixture
def file_store(first_store: tuple[Path, str], tmp_path: Path) -> tuple[str, str]:
    source, version = first_store
    shutil.copytree(source, tmp_path / "store")
    return f"file://{tmp_path / 'store'}", version


@pytest.fixture
def redis_store(redis_url: str, tmp_path: Path) -> Iterator[str]:
    with redis_store_url(redis_url, tmp_path / "cache") as url:
        yield url


class Run:
    """A `python -m training run` process; its stderr goes to a file the test can read."""

    def __init__(self, tmp: Path, data: Path, store: str, *, pause: str | None = None) -> None:
        self.log = tmp / f"run-{uuid.uuid4().hex[:6]}.log"
        self.marker = tmp / f"paused-{uuid.uuid4().hex[:6]}"
        env = {**os.environ, "TEST_PAUSE_MARKER": str(self.marker)}
        if pause:
            env["TEST_PAUSE"] = pause
        prefix = (
            [sys.executable, "-c", PAUSE_WRAPPER] if pause else [sys.executable, "-m", "training"]
        )
        argv = ["run", "--data", str(data), "--store", store, "--runs-dir", str(tmp / "runs")]
        with self.log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [*prefix, *argv, *RUN_FLAGS, "--lock-ttl", "1"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def wait_for(
        self, *, line: str | None = None, paused: bool = False, timeout: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if paused and self.marker.exists():
                return
            if line and line in self.log.read_text():
                return
            assert self.process.poll() is None, f"the run ended early:\n{self.log.read_text()}"
            time.sleep(0.005)
        raise AssertionError(
            f"timed out waiting for {line or 'the pause'}:\n{self.log.read_text()}"
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        return code, self.log.read_text()


def assert_serves(url: str, version: str) -> None:
    store = open_store(url)
    try:
        assert store.active_version() == version
        model = store.load_active()
        assert model is not None and model.manifest.version == version
        assert version in [v.version for v in store.list_versions()]
    finally:
        store.close()


def response(response_id: str, customer_id: str, score: int = 2) -> LiveResponse:
    return LiveResponse(
        response_id=response_id,
        customer_id=customer_id,
        score=score,
        responded_at=ANSWERED_AT,
        touchpoint="post_delivery",
        received_at=dt.datetime.now(dt.UTC),
    )


# --- the lock ---------------------------------------------------------------------------------


def test_a_second_run_exits_3_while_one_publishes_and_a_kill_then_leaves_the_old_version(
    demo: Path, file_store: tuple[str, str], tmp_path: Path
) -> None:
    url, old = file_store
    # The first run has copied its version into the store and is about to switch the pointer.
    first = Run(tmp_path, demo, url, pause="FileStore.activate:before")
    first.wait_for(paused=True)
    argv = ["run", "--data", str(demo), "--store", url, "--runs-dir", str(tmp_path / "second-runs")]
    second = subprocess.run(
        [sys.executable, "-m", "training", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 3, second.stderr
    assert "another training run holds the lock since" in second.stderr
    assert f"(pid {first.process.pid} on " in second.stderr
    assert not (tmp_path / "second-runs").exists(), "a refused run touches nothing"
    first.kill()
    assert_serves(url, old)


def test_the_file_lock_is_refused_to_a_second_holder_and_free_after_release(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "store")
    with (
        store.training_lock(),
        pytest.raises(LockHeld, match=rf"since .* \(pid {os.getpid()} on "),
        store.training_lock(),
    ):
        pass
    with store.training_lock():
        pass


@pytest.mark.redis
def test_the_redis_lock_is_renewed_while_held_and_only_its_owner_releases_it(
    redis_store: str,
) -> None:
    store = RedisStore(redis_store)
    client = redis.Redis.from_url(redis_store.split("?")[0])
    key = f"{store.prefix}:train-lock"
    try:
        with store.training_lock(ttl_seconds=1) as lock:
            time.sleep(1.6)  # longer than the ttl: renewed meanwhile
            ttl = client.pttl(key)
            assert isinstance(ttl, int) and 0 < ttl <= 1000
            with (
                pytest.raises(LockHeld, match="another training run holds the lock since"),
                store.training_lock(ttl_seconds=1),
            ):
                pass
            lock.check()
        assert client.get(key) is None  # released

        # Another run took over after this one stalled: this one must neither publish nor free it.
        stalled = RedisTrainingLock(client, key, 1)
        stalled.acquire()
        client.set(key, b"another run")
        time.sleep(0.8)
        with pytest.raises(LockLost):
            stalled.check()
        stalled.release()
        assert client.get(key) == b"another run"
    finally:
        client.close()
        store.close()


# --- kill -9 ------------------------------------------------------------------------------------


def test_a_run_killed_at_any_point_leaves_the_old_version_serving_and_the_next_run_cleans_up(
    demo: Path, file_store: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, old = file_store
    root = Path(url.removeprefix("file://"))
    # During a LightFM fit (timed on the real step's progress line), and with a checked copy of
    # the new version not yet renamed into place. (With it in place but the pointer not switched:
    # the lock test above.)
    for point in ("fit", "FileStore._upload:after"):
        run = Run(tmp_path, demo, url, pause=None if point == "fit" else point)
        if point == "fit":
            run.wait_for(line="[run] fit (hold-out) ...")
        else:
            run.wait_for(paused=True)
        run.kill()
        assert_serves(url, old)
        if point == "FileStore._upload:after":
            assert list((root / "versions").glob(".incoming-*")), "a partial copy, ignored"
    # Each run closed the record its killed predecessor left running; the last one still is.
    statuses = [r.status for r in read_records(FileRunLog(root / "runs"))]
    assert statuses == ["running", "interrupted", "published"]

    store = open_store(url)
    store.answers.add([response("live-1", "C00000001"), response("live-2", "nobody")])
    record = run_pipeline(
        demo,
        store=url,
        config=load_config(**SMALL),
        runs_dir=tmp_path / "runs",
        force=True,
        show_progress=False,
    )
    assert record.published and store.active_version() == record.version != old
    assert not list((root / "versions").glob(".incoming-*"))
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [record.run_id]
    statuses = [r.status for r in read_records(FileRunLog(root / "runs"))]
    assert statuses == ["published", "interrupted", "interrupted", "published"]
    assert record.live is not None
    assert (record.live.stored, record.live.merged, record.live.unknown_customer) == (2, 1, 1)
    # The record travels with the version, and `runs` lists them all.
    assert record.version is not None
    sealed = root / "versions" / record.version / "run.json"
    assert b'"status": "publishing"' in sealed.read_bytes()
    assert main(["runs", "--store", url]) == 0
    listing = capsys.readouterr().out
    assert listing.count("interrupted") == 2 and record.run_id in listing


@pytest.mark.redis
def test_a_run_killed_during_a_redis_publish_leaves_the_old_version_active(
    demo: Path, redis_store: str, tmp_path: Path
) -> None:
    config = load_config(**SMALL)
    old = run_pipeline(
        demo, store=redis_store, config=config, runs_dir=tmp_path / "r0", show_progress=False
    )
    assert old.version is not None
    run = Run(tmp_path, demo, redis_store, pause="RedisStore._register:before")
    run.wait_for(paused=True)
    run.kill()
    assert_serves(redis_store, old.version)
    store = RedisStore(redis_store)
    client = redis.Redis.from_url(redis_store.split("?")[0])
    try:
        uploaded = list(client.scan_iter(match=f"{store.prefix}:model:*"))
        orphans = [k for k in uploaded if old.version.encode() not in k]
        assert orphans and all(client.ttl(k) > 0 for k in orphans), "orphan chunks expire"
        deadline = time.monotonic() + 5  # the killed run's lock (ttl 1 s) expires by itself
        while client.exists(f"{store.prefix}:train-lock") and time.monotonic() < deadline:
            time.sleep(0.05)
        record = run_pipeline(
            demo,
            store=redis_store,
            config=config,
            runs_dir=tmp_path / "r1",
            force=True,
            show_progress=False,
        )
        assert record.published and store.active_version() == record.version
        assert [r.status for r in store_records(redis_store)] == [
            "published",
            "interrupted",
            "published",
        ]
    finally:
        client.close()
        store.close()


def store_records(url: str) -> list[RunRecord]:
    store = open_store(url)
    try:
        return read_records(store.run_log())
    finally:
        store.close()


# --- failures, live responses -----------------------------------------------------------------


def test_a_failed_run_exits_non_zero_and_is_recorded_as_failed(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(demo, broken)
    (broken / "orders.parquet").unlink()
    url = f"file://{tmp_path / 'store'}"
    runs = ["--runs-dir", str(tmp_path / "runs")]
    code = main(["-q", "run", "--data", str(broken), "--store", url, *runs])
    assert code == 2
    assert "orders" in capsys.readouterr().err
    (record,) = read_records(FileRunLog(tmp_path / "store" / "runs"))
    assert record.status == "failed" and record.error and "orders" in record.error
    assert record.finished_at and record.duration is not None


def test_live_responses_join_the_batch_once_and_only_for_known_customers(
    demo: Path, tmp_path: Path
) -> None:
    clean = validate_dataset(demo, tmp_path / "validation", show_progress=False).clean_paths
    path = clean["nps_responses"]
    written = path.read_bytes()
    batch = pl.read_parquet(path)
    in_batch = str(batch["response_id"][0])
    store = FileStore(tmp_path / "store")
    store.answers.add(
        [
            response("live-new", "C00000007", score=0),
            response(in_batch, "C00000007", score=0),  # the shop's file already has this id
            response("live-stranger", "not-a-customer"),
        ]
    )
    read = read_live_responses(store).responses
    customers = pl.read_parquet(clean["customers"])
    since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    merge = merge_live_responses(read, batch, customers, since=since)
    intake = merge.intake
    assert (intake.stored, intake.merged, intake.in_batch, intake.unknown_customer) == (3, 1, 1, 1)
    assert intake.new_since_last_run == 3
    merged = merge.nps_responses
    assert merged.height == batch.height + 1
    assert merged.schema == batch.schema
    row = merged.filter(pl.col("response_id") == "live-new").row(0, named=True)
    assert row["score"] == 0 and row["responded_at"] == ANSWERED_AT.replace(tzinfo=None)
    kept = merged.filter(pl.col("response_id") == in_batch).row(0, named=True)
    assert kept == batch.row(0, named=True)  # the batch file wins
    assert path.read_bytes() == written  # the validator's clean file is its own: not rewritten


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_an_answer_taken_over_http_joins_the_second_and_third_nightly_runs(
    kind: str, demo: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Train; POST one answer to the real app; train again; train a third time. Each run takes the
    answer in (the intake stores its times as aware UTC, the run compares them with its own), the
    second counts it as new since the last run, the third does not, and the next request is
    answered from a version that holds it."""
    url = (
        f"file://{tmp_path / 'store'}" if kind == "file" else request.getfixturevalue("redis_store")
    )

    def train() -> RunRecord:
        record = run_pipeline(
            demo,
            store=url,
            config=load_config(**SMALL),
            runs_dir=tmp_path / "runs",
            show_progress=False,
            force=True,
        )
        assert record.published, record
        return record

    train()
    store = open_store(url)
    try:
        with client_for(store) as client:
            posted = client.post(
                "/v1/nps-responses",
                json={
                    "response_id": "live-second-night",
                    "customer_id": "C00000007",
                    "score": 0,
                    "responded_at": "2025-12-31T09:00:00+01:00",
                    "touchpoint": "post_delivery",
                },
            )
            assert posted.status_code == 202, posted.text
        second, third = train(), train()
        assert second.live is not None and third.live is not None
        assert (second.live.merged, second.live.new_since_last_run) == (1, 1)
        assert (third.live.merged, third.live.new_since_last_run) == (1, 0)
        # The second run moved it to the archive; the third read it from there.
        # The third run first moves the answer the second run's version holds to the archive.
        assert (second.live.compacted, third.live.compacted, third.live.archived) == (0, 1, 1)
        with client_for(store) as client:
            profile = client.get("/v1/customers/C00000007").json()
        assert profile["model_version"] == third.version
        assert profile["nps"]["latest_score"] == 0
        assert profile["nps"]["last_response_at"] == "2025-12-31T08:00:00Z"
    finally:
        store.close()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_order_lines_taken_over_http_join_the_next_runs_once_and_the_profile_counts_them_once(
    kind: str, demo: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Train; POST three order lines to the real app (one the shop's files hold already, one new,
    one of a product the shop has not listed); train twice more. The second run adds the new line,
    leaves the file's line to the file and quarantines the stranger; the third takes the held lines
    from the archive and adds the new one once again, not twice. Through all of it the customer's
    order count rises by exactly one, and the bought product stays out of the suggestions."""
    url = (
        f"file://{tmp_path / 'store'}" if kind == "file" else request.getfixturevalue("redis_store")
    )
    runs: list[RunRecord] = []

    def train() -> RunRecord:
        record = run_pipeline(
            demo,
            store=url,
            config=load_config(**SMALL),
            runs_dir=tmp_path / "runs",
            show_progress=False,
            force=True,
        )
        assert record.published, record
        runs.append(record)
        return record

    customer = "C00000007"
    in_files = (
        pl.read_parquet(demo / "orders.parquet")
        .filter(pl.col("customer_id") == customer)
        .sort("ordered_at")
        .row(-1, named=True)
    )
    first = train()
    store = open_store(url)

    def profile() -> dict[str, object]:
        with client_for(store) as client:
            got = client.get(f"/v1/customers/{customer}")
            assert got.status_code == 200, got.text
            recs = client.get(f"/v1/customers/{customer}/recommendations", params={"limit": 50})
            items = [item["product_id"] for item in recs.json()["items"]]
            return {
                "version": got.json()["model_version"],
                "rfm": got.json()["rfm"],
                "items": items,
            }

    try:
        before = profile()
        bought = str(before["items"][0])  # type: ignore[index]
        order_count = before["rfm"]["order_count"]  # type: ignore[index]
        when = "2025-12-31T10:00:00Z"
        lines = [
            {  # the shop's file has this line (and its order) already
                "line_id": in_files["line_id"],
                "order_id": in_files["order_id"],
                "customer_id": customer,
                "product_id": in_files["product_id"],
                "quantity": in_files["quantity"],
                "unit_price": in_files["unit_price"],
                "ordered_at": in_files["ordered_at"].isoformat() + "Z",
                "status": in_files["status"],
            },
            {
                "line_id": "live-night-1",
                "order_id": "live-night",
                "customer_id": customer,
                "product_id": bought,
                "quantity": 2,
                "unit_price": 10.0,
                "ordered_at": when,
                "status": "placed",
            },
            {
                "line_id": "live-night-2",
                "order_id": "live-night",
                "customer_id": customer,
                "product_id": "P-NOT-LISTED",
                "quantity": 1,
                "unit_price": 5.0,
                "ordered_at": when,
                "status": "placed",
            },
        ]
        with client_for(store) as client:
            posted = client.post("/v1/orders", json=lines)
            assert posted.status_code == 202, posted.text
            assert posted.json()["accepted"] == 3
        live = profile()
        # The line the version holds counts once; the new order (two lines) counts once.
        assert live["rfm"]["order_count"] == order_count + 1  # type: ignore[index]
        assert bought not in live["items"]  # type: ignore[operator]

        second = train()
        orders = second.live_orders
        assert orders is not None
        assert (orders.stored, orders.merged, orders.in_batch) == (3, 1, 1)
        assert (orders.unknown_customer, orders.unknown_product) == (0, 1)
        assert (orders.new_since_last_run, orders.compacted) == (3, 0)
        quarantine = pl.read_csv(tmp_path / "runs" / second.run_id / "validation" / LIVE_QUARANTINE)
        assert quarantine["line_id"].to_list() == ["live-night-2"]
        assert "product_id 'P-NOT-LISTED'" in quarantine["_reason"][0]
        assert second.rows["order_lines"] == first.rows["order_lines"] + 1
        after_second = profile()
        assert after_second["version"] == second.version
        assert after_second["rfm"]["order_count"] == order_count + 1  # type: ignore[index]
        assert bought not in after_second["items"]  # type: ignore[operator]

        third = train()
        orders = third.live_orders
        assert orders is not None
        # The two lines the second version held moved to the archive; the stranger stays live.
        assert (orders.compacted, orders.archived, orders.stored) == (2, 2, 3)
        assert (orders.merged, orders.in_batch, orders.new_since_last_run) == (1, 1, 0)
        assert third.rows["order_lines"] == second.rows["order_lines"]
        assert [r.line_id for r in store.orders.iter_live()] == ["live-night-2"]
        after_third = profile()
        assert after_third["version"] == third.version
        assert after_third["rfm"] == after_second["rfm"]
    finally:
        store.close()
    # A fresh handle (a restarted service) sees the same.
    reopened = open_store(url)
    try:
        with client_for(reopened) as client:
            rfm = client.get(f"/v1/customers/{customer}").json()["rfm"]
        assert rfm["order_count"] == order_count + 1
    finally:
        reopened.close()


# --- the schedule -------------------------------------------------------------------------------


def test_a_missed_run_is_due_only_when_no_successful_run_started_after_the_scheduled_time() -> None:
    now = dt.datetime(2024, 5, 10, 9, 30, tzinfo=dt.UTC)
    assert catch_up_due("0 2 * * *", None, now)
    assert catch_up_due("0 2 * * *", dt.datetime(2024, 5, 9, 2, 0, 5, tzinfo=dt.UTC), now)
    assert not catch_up_due("0 2 * * *", dt.datetime(2024, 5, 10, 2, 0, 5, tzinfo=dt.UTC), now)
    exactly = dt.datetime(2024, 5, 10, 2, 0, tzinfo=dt.UTC)
    assert catch_up_due("0 2 * * *", exactly - dt.timedelta(seconds=1), exactly)


def test_the_schedule_catches_up_once_however_many_runs_were_missed(tmp_path: Path) -> None:
    log = FileRunLog(tmp_path / "runs")
    three_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    save_record(
        log,
        RunRecord(
            run_id="old",
            data_dir="d",
            store="s",
            started_at=three_days_ago.isoformat(timespec="seconds"),
            status="published",
        ),
    )
    counter = tmp_path / "count"
    command = [sys.executable, "-c", f"open({str(counter)!r}, 'a').write('x')"]
    scheduler = Scheduler("0 2 * * *", command, log, zone=dt.UTC)
    loop = threading.Thread(target=scheduler.serve)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while not counter.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the loop now waits for tomorrow's 02:00; nothing replays
        assert counter.read_text() == "x"
        assert scheduler.runs == 1
    finally:
        scheduler.stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()


def test_the_schedule_does_not_run_at_start_when_the_last_scheduled_run_happened(
    tmp_path: Path,
) -> None:
    log = FileRunLog(tmp_path / "runs")
    save_record(
        log,
        RunRecord(
            run_id="recent",
            data_dir="d",
            store="s",
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            status="not_published",
        ),
    )
    scheduler = Scheduler("0 2 * * *", [sys.executable, "-c", "pass"], log, zone=dt.UTC)
    loop = threading.Thread(target=scheduler.serve)
    loop.start()
    time.sleep(0.5)
    scheduler.stop.set()
    loop.join(timeout=10)
    assert scheduler.runs == 0 and not loop.is_alive()


def test_the_schedule_retries_a_run_that_found_the_lock_held(tmp_path: Path) -> None:
    """A Redis lock left by a run killed outright lasts its ttl: the catch-up run waits it out."""
    counter = tmp_path / "count"
    script = (
        f"import sys; p = {str(counter)!r}; open(p, 'a').write('x'); "
        "sys.exit(3 if open(p).read() == 'x' else 0)"
    )
    scheduler = Scheduler(
        "0 2 * * *",
        [sys.executable, "-c", script],
        FileRunLog(tmp_path / "runs"),
        zone=dt.UTC,
        lock_retry_seconds=0.1,
    )
    assert scheduler.run_once() == 0
    assert counter.read_text() == "xx"


def test_the_schedule_passes_its_run_options_on_to_each_run(tmp_path: Path) -> None:
    from training.__main__ import _parser, _run_arguments

    parser = _parser()
    options = ["--data", "/data", "--store", "redis://redis:6379/0", "--epochs", "7"]
    options += ["--search-trials", "0"]
    options += ["--segments", "a.toml", "--segments", "b.toml", "--force", "--lock-ttl", "90"]
    args = parser.parse_args(["schedule", "--cron", "0 2 * * *", *options])
    run = parser.parse_args(["run", *_run_arguments(args)])
    names = ("data", "store", "epochs", "search_trials", "segments", "force", "lock_ttl")
    for name in (*names, "runs_dir"):
        assert getattr(run, name) == getattr(args, name), name


def test_runs_starting_in_the_same_second_get_different_ids(tmp_path: Path) -> None:
    """Run ids (and the versions named after them) are start seconds; none is ever reused."""
    url = f"file://{tmp_path / 'store'}"
    broken = tmp_path / "missing"  # fails at once, so the runs follow each other within a second
    for _ in range(3):
        with pytest.raises(RecsvcError):
            run_pipeline(broken, store=url, runs_dir=tmp_path / "runs", show_progress=False)
    ids = [r.run_id for r in read_records(FileRunLog(tmp_path / "store" / "runs"))]
    assert len(ids) == len(set(ids)) == 3


# A record as runs stored it before they noted each step's rows (and the gate its sample size).
RECORD_BEFORE_STEP_ROWS = b"""{
  "run_id": "20250101T020000Z", "data_dir": "data", "store": "file://store",
  "started_at": "2025-01-01T02:00:00+00:00", "finished_at": "2025-01-01T02:01:00+00:00",
  "status": "published", "steps": {"validate": 1.5, "segments": 2.5},
  "rows": {"customers": 600, "order_lines": 7000}, "rejected_rows": 0, "live": null,
  "metrics": {}, "gate": {"publish": true, "reason": "no active model", "new_ndcg": 0.1,
  "active_version": null, "active_ndcg": null, "comparison": "none"},
  "version": "20250101T020000Z-abcdef12", "published": true, "error": null, "host": "h", "pid": 1
}"""


def test_records_stored_before_steps_noted_their_rows_are_still_read_and_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"file://{tmp_path / 'store'}"
    FileRunLog(tmp_path / "store" / "runs").save("20250101T020000Z", RECORD_BEFORE_STEP_ROWS)
    (record,) = read_records(FileRunLog(tmp_path / "store" / "runs"))
    assert record.steps == {"validate": 1.5, "segments": 2.5} and record.step_rows == {}
    assert record.gate is not None and record.gate.compared == 0
    assert "steps: validate 1.5s, segments 2.5s\n" in format_record(record)
    assert main(["runs", "--store", url]) == 0
    assert "steps: validate 1.5s, segments 2.5s" in capsys.readouterr().out
