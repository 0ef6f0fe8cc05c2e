"""Live NPS answers are compacted once a published version holds them: a run that published moves
every live answer it read to the store's archive, so live keeps only what arrived since; the next
runs still merge the archived ones; the service answers the same before and after the move; an
answer the active version holds is a duplicate when sent again; a run that does not publish moves
nothing; and a run killed (kill -9) at any step of the move loses no answer, the next run finishing
it.

Answers go in over HTTP (the real app on the store) and runs are real training runs on small demo
data (in-process, or `python -m training run` processes paused inside a store method and killed,
as in `test_nightly.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from litestar import Litestar
from litestar.testing import TestClient
from test_nightly import SMALL, Run, assert_serves

from recsvc.nps_summary import response_key
from recsvc.store import FileStore, LiveResponse, RedisStore, Store, open_store
from tests.api_support import STORE_KINDS, client_for
from training.config import load_config
from training.generate import generate
from training.nightly import RunRecord
from training.pipeline import format_record, run_pipeline

# Customers of the demo data; the data's answers end on 2025-12-30, so answers on the 31st are
# newer than any stored one (each at its own hour: the latest one of a customer is unambiguous).
KNOWN = ["C00000007", "C00000011", "C00000023", "C00000042"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("compaction") / "data"
    generate(data, 600, seed=5, show_progress=False)
    return data


@pytest.fixture(params=STORE_KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store of each kind; a Redis one under a key prefix of its own, deleted after."""
    if request.param == "file":
        yield f"file://{tmp_path / 'store'}"
        return
    prefix = f"recsvc-test-{time.time_ns()}"
    redis_url: str = request.getfixturevalue("redis_url")
    yield f"{redis_url}?prefix={prefix}&cache_dir={tmp_path / 'cache'}"
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


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
    return [r.response_id for r in store.iter_live_responses()]


def archived_ids(store: Store) -> list[str]:
    return [r.response_id for r in store.iter_archived_responses()]


def held(store: Store, version: str, response_ids: Sequence[str]) -> list[bool]:
    """Which of these answers the stored version's NPS answer table holds."""
    table = store.open(version).responses
    assert table is not None
    keys = np.array([response_key(rid) for rid in response_ids], dtype=np.uint64)
    return [bool(x) for x in table.holds(keys)]


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


# --- what a published run moves -----------------------------------------------------------------


def test_published_runs_leave_live_only_what_came_after_they_read_it_and_later_runs_still_merge_it(
    demo: Path,
    url: str,
    tmp_path: Path,
    during_publish: Callable[[Callable[[], object]], None],
) -> None:
    """Three nights: answers over HTTP, then a run, with one answer arriving while it trains. After
    each publish live holds just that late answer (the live file or stream, and the per-customer
    keys), the archive holds the rest, the new version holds every answer of a known customer, and
    answers of a customer the shop's data lacks keep reaching every run from the archive."""
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    posted: list[str] = []  # known customers' answers, oldest first
    strangers: list[str] = []
    late: list[dict[str, Any]] = []
    try:
        with client_for(store) as client:
            during_publish(lambda: post(client, late[-1:]))
            for night in range(3):
                batch = [
                    answer(f"n{night}-{k}", KNOWN[k], (3 * night + k) % 11, hour=10 + night)
                    for k in range(3)
                ]
                batch.append(answer(f"n{night}-stranger", f"NEW-{night}", 2))
                assert post(client, batch)["accepted"] == 4
                late.append(answer(f"n{night}-late", KNOWN[3], 9, hour=10 + night))
                archived_before, live_before = len(archived_ids(store)), len(live_ids(store))
                record = train(demo, url, tmp_path / "runs")

                assert record.published and record.version and record.live is not None
                assert record.live.archived == archived_before
                assert record.live.stored == archived_before + live_before
                assert record.live.compacted == live_before
                assert record.live.unknown_customer == night + 1
                assert record.live.compaction_error is None
                assert f"{live_before} moved to the archive" in format_record(record)
                posted += [a["response_id"] for a in batch[:3]]
                posted += [f"n{night - 1}-late"] if night else []
                strangers.append(f"n{night}-stranger")
                assert all(held(store, record.version, posted))
                assert not any(held(store, record.version, strangers))

                assert live_ids(store) == [f"n{night}-late"]
                assert [r.response_id for r in store.live_responses(KNOWN[3])] == [f"n{night}-late"]
                assert store.live_responses(KNOWN[0]) == []
                assert store.live_responses(f"NEW-{night}") == []
                assert sorted(archived_ids(store)) == sorted(posted + strangers)
                if isinstance(store, RedisStore):
                    keys, customers, stream = redis_live_keys(store)
                    assert keys == {
                        f"{store.prefix}:{{c:{KNOWN[3]}}}:nps",
                        f"{store.prefix}:{{c:{KNOWN[3]}}}:nps_ids",
                    }
                    assert (customers, stream) == ({KNOWN[3]}, 1)
    finally:
        store.close()


@pytest.mark.parametrize("why", ["--no-publish", "refused by the quality gate"])
def test_a_run_that_does_not_publish_moves_no_answer(demo: Path, tmp_path: Path, why: str) -> None:
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
    assert live_ids(store) == ["kept-1", "kept-2"]
    assert archived_ids(store) == []
    assert [r.response_id for r in store.live_responses(KNOWN[0])] == ["kept-1"]


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
    """Train, post the answers, train again: what the service said right after that run published
    (answers still live) and right after it moved them to the archive."""
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    views: list[dict[str, Any]] = []
    customers = sorted({a["customer_id"] for a in answers})
    try:
        with client_for(store) as client:
            assert post(client, answers)["accepted"] == len(answers)
            before_run = snapshot(client, customers)
            for cls in (FileStore, RedisStore):

                def compact_live(
                    self: Any, responses: Sequence[LiveResponse], _original: Any = cls.compact_live
                ) -> int:
                    version = store.active_version()
                    assert version is not None
                    serving(client, version)
                    assert sorted(live_ids(store)) == sorted(a["response_id"] for a in answers)
                    views.append(snapshot(client, customers))
                    moved = int(_original(self, responses))
                    assert live_ids(store) == []
                    views.append(snapshot(client, customers))
                    return moved

                monkeypatch.setattr(cls, "compact_live", compact_live)
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
        record = train(demo, url, tmp_path / "runs")
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

# Each step of the move, paused inside a `python -m training run` that published, then killed;
# where the answers of that night are then: (live, archived, in their customers' live lists).
KILL_POINTS = {
    "file": {
        "FileStore.compact_live:before": (True, False, True),  # nothing moved yet
        "FileStore._append_archive:after": (True, True, True),  # archived (fsync'd), still live
        "FileStore._write_live_copy:after": (True, True, True),  # new live file not renamed in
    },
    "redis": {
        "RedisStore._archive:after": (True, True, True),
        "RedisStore._remove_from_customers:after": (True, True, False),  # still in the stream
    },
}


def test_a_run_killed_at_any_step_of_its_compaction_loses_no_answer_and_the_next_run_finishes_it(
    demo: Path, url: str, tmp_path: Path
) -> None:
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    kind = "file" if isinstance(store, FileStore) else "redis"
    posted: list[str] = []
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
            run = Run(tmp_path, demo, url, pause=point)
            run.wait_for(paused=True, timeout=120)
            run.kill()

            live, archived = live_ids(store), archived_ids(store)
            assert set(posted) <= set(live) | set(archived), point
            tonight = [a["response_id"] for a in batch]
            listed = [r.response_id for k in range(2) for r in store.live_responses(KNOWN[k])]
            assert (
                set(tonight) <= set(live),
                set(tonight) <= set(archived),
                set(tonight[:2]) <= set(listed),
            ) == where, point
            version = store.active_version()
            assert version is not None
            assert_serves(url, version)
            assert all(held(store, version, [p for p in posted if "stranger" not in p]))
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
        assert live_ids(store) == []
        assert sorted(archived_ids(store)) == sorted(posted)
        assert all(held(store, record.version, [p for p in posted if "stranger" not in p]))
        if isinstance(store, FileStore):
            assert sorted(p.name for p in store.live_path.parent.iterdir()) == [
                "archive.ndjson",
                "nps_responses.ndjson",
            ]
        else:
            keys, customers, stream = redis_live_keys(store)
            assert (keys, customers, stream) == (set(), set(), 0)
    finally:
        store.close()
