"""NPS intake over HTTP against both stores: one response or a batch, contract checks per item,
idempotency, durable storage before 202, the live update of the customer, and detractor answers
queued in the webhook outbox before the 202 (delivery itself: tests/integration/webhooks)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.webhooks import OutboxEvent
from recsvc.store import FileStore, RedisStore
from recsvc.store.base import Store
from tests.api_support import Artifact, client_for


def answer(rid: str, customer: str, score: int = 9, **extra: Any) -> dict[str, Any]:
    return {
        "response_id": rid,
        "customer_id": customer,
        "score": score,
        "responded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "touchpoint": "relationship",
        **extra,
    }


def test_one_response_is_accepted_and_a_repeat_is_a_duplicate(
    client: TestClient[Litestar],
) -> None:
    first = client.post("/v1/nps-responses", json=answer("intake-1", "NEW-CUSTOMER-1"))
    assert first.status_code == 202
    assert first.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    again = client.post("/v1/nps-responses", json=answer("intake-1", "NEW-CUSTOMER-1", 2))
    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_a_batch_stores_the_valid_items_and_names_the_bad_ones(
    client: TestClient[Litestar], store: Store
) -> None:
    batch = [
        answer("intake-2", "NEW-CUSTOMER-2", 10),
        answer("intake-3", "NEW-CUSTOMER-2", 11),  # out of range
        answer("intake-4", "NEW-CUSTOMER-2", 8, mood="great"),  # unknown field
        answer("intake-2", "NEW-CUSTOMER-2", 10),  # the same id twice in one batch
        "not an object",
    ]
    response = client.post("/v1/nps-responses", json=batch)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    rejected = {r["index"]: r for r in body["rejected"]}
    assert set(rejected) == {1, 2, 4}
    assert "score" in rejected[1]["errors"][0] and rejected[1]["response_id"] == "intake-3"
    assert "mood" in rejected[2]["errors"][0]
    assert [r.response_id for r in store.answers.of_customer("NEW-CUSTOMER-2")] == ["intake-2"]


def test_a_request_without_any_valid_response_is_a_400_saying_why(
    client: TestClient[Litestar],
) -> None:
    response = client.post("/v1/nps-responses", json=[answer("intake-5", "X", score=-1)])
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "[0] score" in response.json()["detail"]


def test_an_accepted_response_is_stored_durably_before_the_reply(
    client: TestClient[Litestar], store: Store
) -> None:
    assert (
        client.post("/v1/nps-responses", json=answer("intake-6", "NEW-CUSTOMER-3")).status_code
        == 202
    )
    # A second, independent store handle (another worker or a restarted one) sees it at once.
    reopened: Store
    if isinstance(store, FileStore):
        reopened = FileStore(store.root)
    else:
        assert isinstance(store, RedisStore)
        reopened = RedisStore(store.url, prefix=store.prefix, cache_dir=store.cache_dir)
    try:
        assert [r.response_id for r in reopened.answers.of_customer("NEW-CUSTOMER-3")] == [
            "intake-6"
        ]
    finally:
        reopened.close()


def test_the_profile_shows_a_live_answer_before_the_nightly_run(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    table = artifact.customer_table().sort(c.CUSTOMER_ID)
    promoter = str(table.filter(pl.col(ct.NPS_CATEGORY) == "promoter")[c.CUSTOMER_ID][3])
    assert client.post("/v1/nps-responses", json=answer("intake-7", promoter, 4)).status_code == 202
    profile = client.get(f"/v1/customers/{promoter}").json()
    assert profile["nps"]["latest_score"] == 4
    assert profile["nps"]["latest_category"] == "detractor"
    assert "detractors" in profile["segments"]


# --- detractor answers for the webhook destinations ------------------------------------------------


@pytest.fixture
def webhooks_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """One destination taking detractor answers (nothing delivers in these tests: `recsvc
    deliver` does, see tests/integration/webhooks)."""
    monkeypatch.setenv("INTAKE_HOOK_SECRET", "whsec_" + base64.b64encode(b"k" * 32).decode())
    path = tmp_path / "webhooks.toml"
    path.write_text(
        '[destinations.alerts]\nurl = "http://127.0.0.1:9/hooks"\n'
        'secret_env = "INTAKE_HOOK_SECRET"\nevents = ["nps.response.detractor", "customer.erased"]\n'
    )
    return str(path)


def test_a_detractor_answer_is_queued_for_the_webhooks_before_the_202(
    store: Store, webhooks_file: str
) -> None:
    before = store.outbox.state("alerts").pending
    with client_for(store, webhooks_file=webhooks_file) as client:
        response = client.post(
            "/v1/nps-responses",
            json=[
                answer("hook-1", "NEW-CUSTOMER-4", 1, comment="never again"),
                answer("hook-2", "NEW-CUSTOMER-5", 10),  # a promoter: no event
            ],
        )
        assert response.status_code == 202 and response.json()["accepted"] == 2
        assert store.outbox.state("alerts").pending == before + 1
        head = store.outbox.head("alerts")
        assert head is not None and head.type == "nps.response.detractor"
        queued = [e for e in _waiting(store) if "hook-1" in e.body]
        assert len(queued) == 1 and '"comment":"never again"' in queued[0].body
        # Sent again (a client retrying after a lost reply): queued again under the same id, so
        # an event whose first queueing failed is never lost; receivers drop the repeat by id.
        client.post("/v1/nps-responses", json=answer("hook-1", "NEW-CUSTOMER-4", 1))
        again = [e for e in _waiting(store) if "hook-1" in e.body]
        assert len(again) == 2 and again[0].id == again[1].id


def test_an_erasure_takes_the_customer_out_of_the_waiting_events(
    store: Store, webhooks_file: str
) -> None:
    with client_for(store, webhooks_file=webhooks_file) as client:
        assert (
            client.post("/v1/nps-responses", json=answer("hook-9", "NEW-CUSTOMER-9", 0)).status_code
            == 202
        )
        assert any("NEW-CUSTOMER-9" in e.body for e in _waiting(store))
        held = client.get("/v1/customers/NEW-CUSTOMER-9/data").json()
        assert [e["destination"] for e in held["webhook_events"]] == ["alerts"]
        assert '"comment"' in held["webhook_events"][0]["body"]
        assert {h["name"]: h["records"] for h in held["holders"]}["webhook_outbox"] == 1
        erased = client.delete("/v1/customers/NEW-CUSTOMER-9")
        assert erased.status_code == 202 and erased.json()["removed"]["webhook_events"] == 1
    # Their answer's event is gone; the last event about them tells the receiver to erase too.
    about = [e for e in _waiting(store) if "NEW-CUSTOMER-9" in e.body]
    assert [e.type for e in about] == ["customer.erased"]
    notice = msgspec.json.decode(about[0].body)["data"]
    assert notice["customer_id"] == "NEW-CUSTOMER-9"
    assert notice["erasure_id"] == erased.json()["erasure_id"]


def _waiting(store: Store) -> list[OutboxEvent]:
    """Every event waiting for `alerts`, read without removing any (the test's own look)."""
    if isinstance(store, RedisStore):
        raw = store._client.lrange(store.outbox.events_key("alerts"), 0, -1)
        return [msgspec.json.decode(r, type=OutboxEvent) for r in raw]
    directory = Path(store.url.removeprefix("file://")) / "outbox" / "alerts"
    state = msgspec.json.decode((directory / "state.json").read_bytes())
    data = (directory / f"events-{state['generation']}.ndjson").read_bytes()[state["offset"] :]
    return [msgspec.json.decode(line, type=OutboxEvent) for line in data.splitlines() if line]
