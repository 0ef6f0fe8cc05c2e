"""A worker following the Redis store's live records (`RedisStore.follow_live`) serves them from
memory and stays exact: another machine's intake, compaction and erasure reach it, its own writes
show at once, and after a Redis restart it reads everything again (reading Redis directly, never
a stale copy, until then)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from recsvc.domain.live import LiveResponse
from recsvc.domain.privacy import Erasure, customer_hash
from recsvc.errors import StoreUnavailable
from recsvc.store import RedisStore
from tests.api_support import delete_prefix
from tests.redis_server import RedisServer


def answer(customer: str, n: int, score: int = 3) -> LiveResponse:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return LiveResponse(
        response_id=f"{customer}-{n}",
        customer_id=customer,
        score=score,
        responded_at=now,
        touchpoint="relationship",
        received_at=now,
    )


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.005)


def following(url: str) -> RedisStore:
    store = RedisStore(url)
    store.follow_live()
    mirror = store.live_mirror
    assert mirror is not None
    eventually(lambda: mirror.synced)
    return store


@pytest.fixture(params=["redis", "redis-cluster"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh prefix on the shared Redis, or on the session's three-master cluster."""
    prefix = f"test-mirror-{uuid.uuid4().hex[:8]}"
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        yield f"{redis_url}?prefix={prefix}"
        delete_prefix(redis_url, prefix)
    else:
        yield f"{request.getfixturevalue('redis_cluster').url}?prefix={prefix}"


def test_another_machines_changes_reach_a_following_worker(url: str) -> None:
    writer = RedisStore(url)
    writer.answers.add([answer("C1", 1)])  # before the worker starts: read in full at start
    worker = following(url)
    try:
        mirror = worker.live_mirror
        assert mirror is not None
        held = mirror.live_of("C1")
        assert held is not None and [r.response_id for r in held.answers] == ["C1-1"]

        writer.answers.add([answer("C2", 1, score=0)])
        eventually(lambda: len(worker.live_of("C2").answers) == 1)
        assert worker.live_of("C2").answers == writer.answers.of_customer("C2")

        writer.answers.compact(writer.answers.of_customer("C1"))
        eventually(lambda: not worker.live_of("C1").answers)

        erased_at = dt.datetime.now(dt.UTC)
        writer.erasures.append(
            Erasure(
                erasure_id="e1",
                customer_hash=customer_hash("C2"),
                erased_at=erased_at,
                requested_by="test",
                state="started",
            )
        )
        writer.answers.erase("C2")
        eventually(lambda: worker.live_of("C2").erased_at == erased_at)
        eventually(lambda: not worker.live_of("C2").answers)
        assert mirror.syncs == 1  # all of it through announcements, none by reading everything
    finally:
        worker.close()
        writer.close()


def test_a_workers_own_write_shows_at_once(url: str) -> None:
    worker = following(url)
    try:
        for n in range(20):
            worker.answers.add([answer("C9", n)])
            # No waiting: the writer brings its own mirror up to date before it returns.
            assert len(worker.live_of("C9").answers) == n + 1
    finally:
        worker.close()


def test_after_a_redis_restart_the_mirror_reads_everything_again(
    redis_server: Callable[..., RedisServer],
) -> None:
    server = redis_server(persistent=True)
    worker = following(server.url)
    writer = RedisStore(server.url)
    try:
        mirror = worker.live_mirror
        assert mirror is not None
        writer.answers.add([answer("C1", 1)])
        eventually(lambda: len(worker.live_of("C1").answers) == 1)

        server.kill()
        eventually(lambda: not mirror.synced)
        with pytest.raises(StoreUnavailable):
            worker.live_of("C1")  # no answer from a copy that may miss changes

        server.start()
        writer.answers.add([answer("C1", 2)])  # may land before the worker subscribes again
        eventually(lambda: mirror.synced and len(worker.live_of("C1").answers) == 2)
        assert mirror.syncs >= 2
        writer.answers.add([answer("C1", 3)])
        eventually(lambda: len(worker.live_of("C1").answers) == 3)
    finally:
        worker.close()
        writer.close()
