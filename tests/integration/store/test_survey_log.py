"""The survey log on both stores (Redis on one server and on a cluster): sends and declines are
idempotent per customer, touchpoint and day across handles (workers, replicas), survive a close
and reopen (a restart), keep each customer's latest send and decline, count each day's sends, and
an erasure removes a customer's entries only."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsvc.domain.surveys import EventKind, SurveyEvent, Touchpoint
from recsvc.store import Store
from tests.api_support import STORE_KINDS_AND_CLUSTER, delete_prefix
from tests.integration.store.test_store import Backend, with_query

DAY = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(params=STORE_KINDS_AND_CLUSTER)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "file":
        yield Backend("file", f"file://{tmp_path / 'store'}")
        return
    redis_url: str
    if request.param == "redis-cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
    else:
        redis_url = request.getfixturevalue("redis_url")
    prefix = f"recsvc-test-{uuid.uuid4().hex[:12]}"
    yield Backend("redis", with_query(redis_url, prefix=prefix), cache_dir=tmp_path / "cache")
    delete_prefix(redis_url, prefix)


def event(
    customer: str,
    at: dt.datetime = DAY,
    kind: EventKind = "sent",
    touchpoint: Touchpoint = "relationship",
) -> SurveyEvent:
    return SurveyEvent(kind=kind, customer_id=customer, touchpoint=touchpoint, at=at)


def test_a_send_is_one_per_customer_touchpoint_and_day_across_handles(backend: Backend) -> None:
    one, two = backend.open(), backend.open()
    try:
        assert one.surveys.record([event("C1"), event("C1", DAY.replace(hour=18))]) == [True, False]
        # Another worker: the same day is a duplicate, another touchpoint or day is not.
        assert two.surveys.record(
            [
                event("C1", DAY.replace(hour=11)),
                event("C1", touchpoint="post_delivery"),
                event("C1", DAY + dt.timedelta(days=1)),
                event("C1", kind="declined"),
            ]
        ) == [False, True, True, True]
        assert one.surveys.sent_on(DAY.date()) == 2
        assert two.surveys.sent_on((DAY + dt.timedelta(days=1)).date()) == 1
        assert one.surveys.sent_on((DAY - dt.timedelta(days=1)).date()) == 0
        contact = one.surveys.contacts()["C1"]
        assert contact.asked == DAY + dt.timedelta(days=1)
        assert contact.declined == DAY
    finally:
        one.close()
        two.close()


def test_the_log_survives_a_restart_and_keeps_the_latest_send(backend: Backend) -> None:
    store: Store = backend.open()
    store.surveys.record([event("C2", DAY), event("C2", DAY - dt.timedelta(days=3))])
    store.close()
    fresh = backend.open()
    try:
        assert fresh.surveys.contacts()["C2"].asked == DAY  # an older send never wins
        assert fresh.surveys.record([event("C2", DAY)]) == [False]
        assert fresh.surveys.sent_on(DAY.date()) == 1
    finally:
        fresh.close()


def test_an_erasure_removes_the_customers_entries_only(backend: Backend) -> None:
    store, other = backend.open(), backend.open()
    try:
        store.surveys.record([event("C3"), event("C3", kind="declined"), event("C4")])
        assert other.surveys.contacts().keys() == {"C3", "C4"}
        assert store.surveys.erase("C3") == 2
        assert other.surveys.contacts().keys() == {"C4"}
        assert store.surveys.erase("C3") == 0
    finally:
        store.close()
        other.close()
