"""The webhook outbox on both stores (Redis on one server and on a cluster): FIFO per destination,
removal only of the head it names, state changes, an erasure inside waiting events; on the file
store, the delivered part cut off into a new generation and a writer's torn line cut off before the
next append."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsvc.domain.webhooks import (
    DETRACTOR,
    SEGMENT_ENTERED,
    DetractorResponse,
    MemberChange,
    OutboxEvent,
    new_event,
)
from recsvc.store import FileStore, open_store
from recsvc.store import outbox as outbox_module
from tests.api_support import STORE_KINDS_AND_CLUSTER


def _answer(n: int, customer: str = "C1") -> DetractorResponse:
    return DetractorResponse(
        response_id=f"R{n}", customer_id=customer, score=3, responded_at="2026-12-01T10:00:00Z"
    )


def _detractor(n: int, customer: str = "C1") -> OutboxEvent:
    return new_event(
        DETRACTOR,
        _answer(n, customer),
        id=f"msg_{n}",
        created_at="2026-12-01T10:00:00Z",
        customers=[customer],
    )


def _batch(n: int, ids: list[str]) -> OutboxEvent:
    change = MemberChange(
        segment="promoters",
        version="v2",
        previous_version="v1",
        activated_at="2026-12-01T10:00:00Z",
        customer_ids=ids,
        batch=1,
        batches=1,
    )
    return new_event(SEGMENT_ENTERED, change, id=f"msg_b{n}", created_at="t", customers=ids)


@pytest.mark.parametrize("empty_store_url", STORE_KINDS_AND_CLUSTER, indirect=True)
def test_fifo_head_removal_state_and_erasure(empty_store_url: str, tmp_path: Path) -> None:
    store = open_store(empty_store_url, cache_dir=tmp_path / "cache")
    outbox = store.outbox
    assert outbox.head("crm") is None and outbox.state("crm").pending == 0
    outbox.append("crm", [_detractor(1), _detractor(2, "C2"), _batch(3, ["C1", "C3"])])
    outbox.append("other", [_detractor(9)])
    assert outbox.destinations() == ["crm", "other"]
    head = outbox.head("crm")
    assert head is not None and head.id == "msg_1"
    assert [e.id for e in outbox.peek("crm", 5)] == ["msg_1", "msg_2", "msg_b3"]
    assert not outbox.remove("crm", ["msg_2"]), "only the oldest events it names"
    assert not outbox.remove("crm", ["msg_1", "msg_b3"])
    assert outbox.state("crm").pending == 3
    assert outbox.remove("crm", ["msg_1"], add_delivered=1, attempts=0, last_status="200")
    state = outbox.update("crm", attempts=2, next_attempt_at="2026-12-01T10:00:05+00:00")
    assert (state.pending, state.delivered, state.attempts, state.last_status) == (2, 1, 2, "200")
    # The erasure: C1's answer in `other` goes; the batch keeps its id without C1.
    assert outbox.erase("C1") == 2
    crm_head = outbox.head("crm")
    assert crm_head is not None and crm_head.id == "msg_2"
    assert outbox.remove("crm", ["msg_2"])
    last = outbox.head("crm")
    assert last is not None and last.id == "msg_b3" and last.customers == ["C3"]
    assert "C1" not in last.body
    assert outbox.head("other") is None and outbox.state("other").pending == 0
    assert outbox.state("crm").delivered == 1 and outbox.state("crm").attempts == 2
    assert outbox.erase("C1") == 0
    store.close()


def test_the_file_outbox_cuts_off_what_was_delivered_and_torn_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "_COMPACT_BYTES", 600)
    store = FileStore(tmp_path / "store")
    outbox = store.outbox
    outbox.append("crm", [_detractor(n) for n in range(10)])
    directory = tmp_path / "store" / "outbox" / "crm"
    for n in range(0, 6, 2):
        assert outbox.remove("crm", [f"msg_{n}", f"msg_{n + 1}"])
    files = sorted(p.name for p in directory.glob("events-*.ndjson"))
    assert files != ["events-0.ndjson"] and len(files) == 1, "a new generation, the old removed"
    # A writer killed mid-line leaves a fragment after the counted events: the next append
    # starts where the counted events end, and every event still reads whole.
    current = directory / files[0]
    with current.open("ab") as handle:
        handle.write(b'{"id":"msg_torn","ty')
    outbox.append("crm", [_detractor(10)])
    ids = []
    while (head := outbox.head("crm")) is not None:
        ids.append(head.id)
        assert outbox.remove("crm", [head.id])
    assert ids == [f"msg_{n}" for n in range(6, 11)]
    store.close()
