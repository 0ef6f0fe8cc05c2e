"""Live NPS answers are compacted once a published version is served that holds them: each run
first moves to the store's archive the live answers the active version holds (and those no
version took in for `live_retention_days`), so live keeps only what no version holds yet; every
run still merges the archived ones; the service answers the same before and after the move; an
answer the active version holds is a duplicate when sent again; and a run killed (kill -9) at any
step of the move loses no answer, the next run finishing it.

Answers go in over HTTP (the real app on the store) and runs are real training runs on small demo
data (in-process, or `python -m training run` processes paused inside a store method and killed,
as in `test_nightly.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain.live import ANSWERS
from recsvc.store import FileStore, LiveResponse, RedisStore, Store, open_store
from recsvc.store.files_live import FileLiveLog
from recsvc.store.redis_live import RedisLiveLog
from tests.api_support import STORE_KINDS_AND_CLUSTER, client_for
from tests.integration.training.test_nightly import SMALL, Run, assert_serves
from training.config import load_config
from training.run.pipeline import format_record, run_pipeline
from training.run.records import RunRecord
from training.sources.generate import generate

# Customers of the demo data; the data's answers end on 2025-12-30, so answers on the 31st are
# newer than any stored one (each at its own hour: the latest one of a customer is unambiguous).
KNOWN = ["C00000007", "C00000011", "C00000023", "C00000042"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("compaction") / "data"
    generate(data, 600, seed=5, show_progress=False)
    return data


@pytest.fixture
def url(empty_store_url: str) -> str:
    """An empty store of each kind."""
    return empty_store_url


def train(demo: Path, url: str, runs: Path, **options: Any) -> RunRecord:
    config = load_config(**{**SMALL, **options.pop("config", {})})
    options = {"force": True, **options}
    return run_pipeline(
        demo, store=url, config=config, runs_dir=runs, show_progress=False, **options
    )


def answer(
    response_id: str, customer_id: str, score: int, *, hour: int = 20, **extra: Any
) -> dict[str, Any]:
    return {
        "response_id": response_id,
        "customer_id": customer_id,
        "score": score,
        "responded_at": f"2025-12-31T{hour:02d}:00:00Z",
        "touchpoint": "post_delivery",
        **extra,
    }


def post(client: TestClient[Litestar], answers: list[dict[str, Any]]) -> dict[str, Any]:
    reply = client.post("/v1/nps-responses", json=answers)
    assert reply.status_code == 202, reply.text
    body: dict[str, Any] = reply.json()
    return body


def live_ids(store: Store) -> list[str]:
    return [r.response_id for r in store.answers.iter_live()]


def archived_ids(store: Store) -> list[str]:
    return [r.response_id for r in store.answers.iter_archived()]


def held(store: Store, version: str, response_ids: Sequence[str]) -> list[bool]:
    """Which of these answers the stored version's NPS answer table holds."""
    table = store.open(version).responses
    assert table is not None
    return table.holds(response_ids)


def redis_live_keys(store: Store) -> tuple[set[str], set[str], int]:
    """A Redis store's per-customer live keys, its live customer set and its stream's length."""
    assert isinstance(store, RedisStore)
    client = store._client
    keys = {k.decode() for k in client.scan_iter(match=f"{store.prefix}:{{c:*", count=1000)}
    customers = {_text(c) for c in client.smembers(f"{store.prefix}:live:customers")}
    length = client.xlen(f"{store.prefix}:live:stream")
    assert isinstance(length, int)
    return keys, customers, length


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def wait_for_the_lock(store: Store) -> None:
    """A killed run's Redis lock (ttl 1 s) expires by itself; the file lock went with the process."""
    if isinstance(store, RedisStore):
        deadline = time.monotonic() + 5
        while store._client.exists(f"{store.prefix}:train-lock") and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture
def during_publish(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], object]], None]:
    """Run something inside the next runs, after they read the live answers and before they
    publish (the store class's `publish` wrapped)."""

    def install(action: Callable[[], object]) -> None:
        for cls in (FileStore, RedisStore):
            original = cls.publish

            def publish(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> str:
                action()
                return str(_original(self, *args, **kwargs))

            monkeypatch.setattr(cls, "publish", publish)

    return install


# --- what a run moves ---------------------------------------------------------------------------


# Also on a Redis Cluster: real runs (lock, compaction, publish, run log) against its slots.
@pytest.mark.parametrize("empty_store_url", STORE_KINDS_AND_CLUSTER, indirect=True)
def test_live_keeps_only_what_the_active_version_does_not_hold_and_every_run_still_merges_the_rest(
    demo: Path,
    url: str,
    tmp_path: Path,
    during_publish: Callable[[Callable[[], object]], None],
) -> None:
    """Three nights: answers over HTTP, then a run, with one answer arriving while it publishes.
    Each run first moves exactly the live answers the version active at its start holds; what stays
    live is what that version does not hold (the night's answers, the late one, and those of a
    customer the shop's data lacks, which never leave while fresh); nothing is ever in neither
    place; the new version holds every known customer's answer that was live when it started; the
    per-customer keys follow (Redis)."""
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    posted: list[str] = []
    strangers: list[str] = []
    late: list[dict[str, Any]] = []
    try:
        with client_for(store) as client:
            during_publish(lambda: post(client, late[-1:]))
            for night in range(3):
                previous = store.active_version()
                assert previous is not None
                batch = [
                    answer(f"n{night}-{k}", KNOWN[k], (3 * night + k) % 11, hour=10 + night)
                    for k in range(3)
                ]
                batch.append(answer(f"n{night}-stranger", f"NEW-{night}", 2))
                assert post(client, batch)["accepted"] == 4
                posted += [a["response_id"] for a in batch]
                strangers.append(f"n{night}-stranger")
                late.append(answer(f"n{night}-late", KNOWN[3], 9, hour=10 + night))
                live_before = live_ids(store)
                moving = [
                    r
                    for r, h in zip(live_before, held(store, previous, live_before), strict=True)
                    if h
                ]
                archived_before = archived_ids(store)

                record = train(demo, url, tmp_path / "runs")
                posted.append(f"n{night}-late")

                assert record.published and record.version and record.live is not None
                assert record.live.compaction_error is None
                assert record.live.compacted == len(moving)
                assert f"{len(moving)} moved to the archive first" in format_record(record)
                assert sorted(archived_ids(store)) == sorted(archived_before + moving)
                assert record.live.archived == len(archived_before) + len(moving)
                live_now = live_ids(store)
                assert not set(live_now) & set(archived_ids(store))
                assert set(live_now) | set(archived_ids(store)) == set(posted), "nothing lost"
                assert not any(held(store, previous, live_now)), "live: what it did not hold"
                assert set(strangers) <= set(live_now)
                known = [rid for rid in live_before if "stranger" not in rid]
                assert all(held(store, record.version, known))
                assert not any(held(store, record.version, strangers))
                assert record.live.unknown_customer == night + 1
                if isinstance(store, RedisStore):
                    customers_live = {r.customer_id for r in store.answers.iter_live()}
                    keys, customers, stream = redis_live_keys(store)
                    assert keys == {
                        f"{store.prefix}:{{c:{c}}}:{part}"
                        for c in customers_live
                        for part in ("nps", "nps_ids")
                    }
                    assert (customers, stream) == (customers_live, len(live_now))
    finally:
        store.close()


def test_answers_no_version_takes_in_move_after_the_retention_and_are_still_merged(
    demo: Path, tmp_path: Path
) -> None:
    url = f"file://{tmp_path / 'store'}"
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    with client_for(store) as client:
        post(client, [answer("stale-1", "NEW-STALE", 1)])
    kept = train(demo, url, tmp_path / "runs")
    assert kept.live is not None and kept.live.compacted == 0
    assert live_ids(store) == ["stale-1"]
    # A retention shorter than the time since it came in: the next run moves it.
    moved = train(demo, url, tmp_path / "runs", config={"live_retention_days": 1e-9})
    assert moved.live is not None and moved.live.compacted == 1
    assert (live_ids(store), archived_ids(store)) == ([], ["stale-1"])
    assert (moved.live.stored, moved.live.unknown_customer) == (1, 1)


@pytest.mark.parametrize("why", ["--no-publish", "refused by the quality gate"])
def test_a_run_moves_only_what_the_active_version_holds(
    demo: Path, tmp_path: Path, why: str
) -> None:
    """A run that changes no version leaves the next run nothing new to move; answers move one
    run after the version that holds them was published."""
    url = f"file://{tmp_path / 'store'}"
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    with client_for(store) as client:
        post(client, [answer("kept-1", KNOWN[0], 1), answer("kept-2", "NEW-1", 10)])
    if why == "--no-publish":
        record = train(demo, url, tmp_path / "runs", publish=False)
    else:  # a model that learnt nothing is worse than the active one by far
        record = train(demo, url, tmp_path / "runs", force=False, config={"learning_rate": 1e-9})
        assert record.gate is not None and record.gate.reason.startswith("refused")
    assert record.status == "not_published" and record.live is not None
    assert (record.live.stored, record.live.compacted) == (2, 0)
    published = train(demo, url, tmp_path / "runs")  # the first version holding kept-1
    assert published.live is not None and published.live.compacted == 0
    assert live_ids(store) == ["kept-1", "kept-2"]
    after = train(demo, url, tmp_path / "runs")
    assert after.live is not None and after.live.compacted == 1
    assert (live_ids(store), archived_ids(store)) == (["kept-2"], ["kept-1"])
    assert [r.response_id for r in store.answers.of_customer(KNOWN[0])] == []


# --- the service across a compaction ---------------------------------------------------------------


def snapshot(client: TestClient[Litestar], customers: Sequence[str]) -> dict[str, Any]:
    """What the service says about NPS and these customers."""
    views: dict[str, Any] = {}
    for path in ["/v1/nps/summary", "/v1/nps/summary?by=segment", "/v1/segments"]:
        views[path] = client.get(path).json()
    for customer in customers:
        for what in ("", "/offers", "/recommendations?limit=5"):
            path = f"/v1/customers/{customer}{what}"
            reply = client.get(path)
            assert reply.status_code == 200, reply.text
            views[path] = reply.json()
    return views


def serving(client: TestClient[Litestar], version: str) -> None:
    deadline = time.monotonic() + 10
    while client.get(f"/v1/customers/{KNOWN[0]}").json()["model_version"] != version:
        assert time.monotonic() < deadline, "the app never loaded the new version"
        time.sleep(0.05)


def compare_around_compaction(
    demo: Path,
    url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answers: list[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train, post the answers, train (a version holds them), train again: what the service said
    right before that third run moved them to the archive and right after."""
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    views: list[dict[str, Any]] = []
    customers = sorted({a["customer_id"] for a in answers})
    try:
        with client_for(store) as client:
            assert post(client, answers)["accepted"] == len(answers)
            before_run = snapshot(client, customers)
            holding = train(demo, url, tmp_path / "runs")
            assert holding.live is not None and holding.live.compacted == 0
            for cls in (FileLiveLog, RedisLiveLog):

                def compact(
                    self: Any, responses: Sequence[LiveResponse], _original: Any = cls.compact
                ) -> int:
                    if self.kind is not ANSWERS:
                        return int(_original(self, responses))
                    version = store.active_version()
                    assert version is not None
                    serving(client, version)
                    assert sorted(live_ids(store)) == sorted(a["response_id"] for a in answers)
                    views.append(snapshot(client, customers))
                    moved = int(_original(self, responses))
                    assert live_ids(store) == []
                    views.append(snapshot(client, customers))
                    return moved

                monkeypatch.setattr(cls, "compact", compact)
            record = train(demo, url, tmp_path / "runs")
            assert record.live is not None and record.live.compacted == len(answers)
    finally:
        store.close()
    # The answers changed what the service said before the run, and the version holds them now.
    assert before_run != views[0]
    assert views[0]["/v1/nps/summary"]["live_answers"] == 0
    for given in answers:  # one answer per customer
        path = f"/v1/customers/{given['customer_id']}"
        for view in (before_run, views[0]):
            assert view[path]["nps"]["latest_score"] == given["score"]
    return views[0], views[1]


def test_the_service_answers_the_same_right_before_and_after_a_compaction(
    demo: Path, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NPS summaries skip live answers the active version holds, and a customer's live overlay
    only applies answers newer than their stored profile: once the version holds them, moving them
    out of live changes no number, segment, offer or recommendation."""
    answers = [
        answer("same-1", KNOWN[0], 1),  # a detractor now
        answer("same-2", KNOWN[1], 10),
        answer("same-3", KNOWN[2], 7),
    ]
    before, after = compare_around_compaction(demo, url, tmp_path, monkeypatch, answers)
    assert after == before


def test_a_complaint_theme_taken_in_live_survives_the_compaction(
    demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path / 'store'}"
    answers = [answer("theme-1", KNOWN[0], 1, comment="the parcel was late, delivery took weeks")]
    before, after = compare_around_compaction(demo, url, tmp_path, monkeypatch, answers)
    assert before[f"/v1/customers/{KNOWN[0]}/offers"]["complaint_theme"] == "delivery"
    assert after == before


def test_an_answer_the_active_version_holds_is_a_duplicate_when_sent_again_after_compaction(
    demo: Path, tmp_path: Path
) -> None:
    url = f"file://{tmp_path / 'store'}"
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    with client_for(store) as client:
        post(client, [answer("again-1", KNOWN[0], 2), answer("again-2", KNOWN[1], 9)])
        train(demo, url, tmp_path / "runs")  # the version holding them
        record = train(demo, url, tmp_path / "runs")  # moves them
        assert record.live is not None and record.live.compacted == 2
        serving(client, str(record.version))
        assert live_ids(store) == []
        resent = [answer("again-1", KNOWN[0], 10, hour=21), answer("again-3", KNOWN[1], 9)]
        assert post(client, resent) == {"accepted": 1, "duplicates": 1, "rejected": []}
        assert post(client, resent) == {"accepted": 0, "duplicates": 2, "rejected": []}
        assert live_ids(store) == ["again-3"]
        profile = client.get(f"/v1/customers/{KNOWN[0]}").json()
        assert profile["nps"]["latest_score"] == 2


# --- kill -9 during a compaction ---------------------------------------------------------------

# Each step of the move, paused inside a `python -m training run`, then killed; where the known
# customers' answers of that night are then: (live, archived, in their customers' live lists).
KILL_POINTS = {
    "file": {
        "FileLiveLog.compact:before": (True, False, True),  # nothing moved yet
        "FileLiveLog._append_archive:after": (True, True, True),  # archived (fsync'd), still live
        "FileLiveLog._write_live_copy:after": (True, True, True),  # new live file not renamed in
    },
    "redis": {
        "RedisLiveLog._archive:after": (True, True, True),
        "RedisLiveLog._remove_from_customers:after": (True, True, False),  # still in the stream
    },
}


def test_a_run_killed_at_any_step_of_its_compaction_loses_no_answer_and_the_next_run_finishes_it(
    demo: Path, url: str, tmp_path: Path
) -> None:
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    kind = "file" if isinstance(store, FileStore) else "redis"
    posted: list[str] = []
    strangers: list[str] = []
    try:
        for step, (point, where) in enumerate(KILL_POINTS[kind].items()):
            batch = [
                answer(f"kill-{step}-{k}", KNOWN[k], (step + k) % 11, hour=10 + step)
                for k in range(2)
            ]
            batch.append(answer(f"kill-{step}-stranger", f"NEW-KILL-{step}", 0))
            with client_for(store) as client:
                post(client, batch)
            posted += [a["response_id"] for a in batch]
            strangers.append(f"kill-{step}-stranger")
            train(demo, url, tmp_path / "runs")  # the version holding tonight's answers
            run = Run(tmp_path, demo, url, pause=point)
            run.wait_for(paused=True, timeout=120)
            run.kill()

            live, archived = live_ids(store), archived_ids(store)
            assert set(posted) <= set(live) | set(archived), point
            tonight = [a["response_id"] for a in batch[:2]]
            listed = [r.response_id for k in range(2) for r in store.answers.of_customer(KNOWN[k])]
            assert (
                set(tonight) <= set(live),
                set(tonight) <= set(archived),
                set(tonight) <= set(listed),
            ) == where, point
            assert set(strangers) <= set(live), "not held: never moved while fresh"
            version = store.active_version()
            assert version is not None
            assert_serves(url, version)
            assert all(held(store, version, [p for p in posted if p not in strangers]))
            with client_for(store) as client:  # a fresh worker, on what the kill left
                serving(client, version)
                summary = client.get("/v1/nps/summary")
                assert summary.status_code == 200 and summary.json()["live_answers"] is not None
                profile = client.get(f"/v1/customers/{KNOWN[0]}").json()
                assert profile["nps"]["latest_score"] == batch[0]["score"]
            wait_for_the_lock(store)

        record = train(demo, url, tmp_path / "runs")
        assert record.published and record.version and record.live is not None
        assert record.live.compaction_error is None
        assert sorted(live_ids(store)) == sorted(strangers)
        assert sorted(archived_ids(store)) == sorted(p for p in posted if p not in strangers)
        if isinstance(store, FileStore):
            assert sorted(p.name for p in store.answers.live_path.parent.iterdir()) == [
                "archive.ndjson",
                "nps_responses.ndjson",
            ]
        else:
            keys, customers, stream = redis_live_keys(store)
            stranger_customers = {f"NEW-KILL-{step}" for step in range(len(strangers))}
            assert customers == stranger_customers and stream == len(strangers)
            assert len(keys) == 2 * len(strangers)
    finally:
        store.close()
