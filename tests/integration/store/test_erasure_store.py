"""A customer's erasure in the store, on both stores (Redis on one server and on a cluster): every
live and archived record of theirs goes (and nobody else's), every other worker sees it at once,
the erasure log and the suppression list hold the customer's hash and no id, and erasing again is
harmless."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsvc.domain.live import LiveOrderLine
from recsvc.domain.privacy import Erasure, customer_hash
from recsvc.store import Store
from tests.api_support import STORE_KINDS_AND_CLUSTER, delete_prefix
from tests.integration.store.test_store import Backend, ids, response, with_query

NOW = dt.datetime(2026, 1, 2, 9, 0, tzinfo=dt.UTC)


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


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()


def line(line_id: str, customer_id: str) -> LiveOrderLine:
    return LiveOrderLine(
        line_id=line_id,
        order_id=f"o-{line_id}",
        customer_id=customer_id,
        product_id="p1",
        quantity=1,
        unit_price=9.5,
        ordered_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC),
        received_at=dt.datetime(2024, 5, 1, 12, 0, 5, tzinfo=dt.UTC),
    )


def erasure(customer_id: str, state: str = "started") -> Erasure:
    return Erasure(
        erasure_id="e1",
        customer_hash=customer_hash(customer_id),
        erased_at=NOW,
        requested_by="key:0123456789ab",
        state=state,  # type: ignore[arg-type]
    )


def test_erase_removes_live_and_archived_records_of_the_customer_only(
    backend: Backend, store: Store
) -> None:
    other = backend.open()  # another worker
    try:
        store.answers.add([response("r1", "gone"), response("r2", "kept"), response("r3", "gone")])
        store.orders.add([line("l1", "gone"), line("l2", "kept")])
        # One answer and the order lines of both customers are in the archives already.
        assert store.answers.compact([response("r1", "gone")]) == 1
        assert store.orders.compact([line("l1", "gone"), line("l2", "kept")]) == 2
        store.answers.add([response("r4", "gone")])
        assert len(other.live_of("gone").answers) == 2

        assert store.answers.erase("gone") == 3  # r1 archived, r3 and r4 live
        assert store.orders.erase("gone") == 1

        for reader in (store, other):
            activity = reader.live_of("gone")
            assert not activity.answers and not activity.orders
            assert ids(reader.answers.iter_live()) == ["r2"]
            assert ids(reader.answers.iter_archived()) == []
            assert [x.line_id for x in reader.orders.iter_archived()] == ["l2"]
            assert ids(reader.live_of("kept").answers) == ["r2"]
        # Idempotent: nothing left to remove; the store still takes records afterwards.
        assert store.answers.erase("gone") == 0
        assert store.orders.erase("gone") == 0
        assert store.answers.add([response("r5", "gone")]) == [True]
        assert ids(other.live_of("gone").answers) == ["r5"]
    finally:
        other.close()


def test_the_erasure_log_is_the_suppression_list_every_worker_reads(
    backend: Backend, store: Store
) -> None:
    other = backend.open()
    try:
        assert other.live_of("gone").erased_at is None
        assert not other.erasures.suppression()
        store.erasures.append(erasure("gone"))
        # At once, on another worker: its next look sees the erasure.
        assert other.live_of("gone").erased_at == NOW
        assert other.live_of("kept").erased_at is None
        suppression = other.erasures.suppression()
        assert suppression.erased_at("gone") == NOW
        assert suppression.suppresses("gone", NOW - dt.timedelta(seconds=1))
        assert not suppression.suppresses("gone", NOW + dt.timedelta(seconds=1))
        store.erasures.append(
            Erasure(
                erasure_id="e1",
                customer_hash=customer_hash("gone"),
                erased_at=NOW,
                requested_by="key:0123456789ab",
                state="completed",
                removed={"answers": 2},
            )
        )
        entries = other.erasures.entries()
        assert [e.state for e in entries] == ["started", "completed"]
        assert entries[1].removed == {"answers": 2}
        assert all(e.customer_hash == customer_hash("gone") for e in entries)
    finally:
        other.close()


@pytest.mark.parametrize("count", [3])
def test_erasing_a_customer_without_records_removes_nothing(store: Store, count: int) -> None:
    store.answers.add([response(f"r{k}", "kept") for k in range(count)])
    assert store.answers.erase("nobody") == 0
    assert store.orders.erase("nobody") == 0
    assert len(store.live_of("kept").answers) == count
