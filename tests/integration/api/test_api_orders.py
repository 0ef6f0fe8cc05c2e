"""Live order lines over HTTP against both stores: one line or a batch, contract checks per item,
idempotency by line and content, status updates as revisions, durable storage before 202, and
the effects a request on another worker sees at once: the product leaves the suggestions, the
customer's RFM, churn and segments are rescored (a hibernating customer leaves win-back), and a
cancelled line gives the product back."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.store import FileStore, RedisStore
from recsvc.store.base import Store
from tests.api_support import API_KEYS, Artifact, auth, client_for


def line(
    line_id: str,
    customer: str,
    product: str,
    *,
    order: str | None = None,
    status: str = "placed",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "order_id": order or f"order-of-{line_id}",
        "customer_id": customer,
        "product_id": product,
        "quantity": 1,
        "unit_price": 19.5,
        "ordered_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "status": status,
        **extra,
    }


@contextlib.contextmanager
def another_worker(store: Store) -> Iterator[TestClient[Litestar]]:
    """The app on a second, independent handle of the same store: another worker process (its own
    index of the live files, its own Redis connections)."""
    other: Store
    if isinstance(store, FileStore):
        other = FileStore(store.root)
    else:
        assert isinstance(store, RedisStore)
        other = RedisStore(store.url, prefix=store.prefix, cache_dir=store.cache_dir)
    try:
        with client_for(other) as client:
            yield client
    finally:
        other.close()


@pytest.fixture(scope="module")
def worker_b(store: Store) -> Iterator[TestClient[Litestar]]:
    with another_worker(store) as client:
        yield client


def caught_up(worker: TestClient[Litestar], store: Store, *customer_ids: str) -> None:
    """Wait until another worker holds what the store holds of these customers' live records:
    it follows the store's changes (a look at the live files every few milliseconds, or Redis'
    change channel), so it sees a write within milliseconds, not within the same instant."""
    theirs: Store = worker.app.state.holder.store
    deadline = time.monotonic() + 5
    for customer in customer_ids:
        expected = store.live_of(customer)
        while True:
            held = theirs.live_of(customer)
            if list(held.orders) == list(expected.orders) and list(held.answers) == list(
                expected.answers
            ):
                break
            assert time.monotonic() < deadline, f"worker B never saw {customer}'s live records"
            time.sleep(0.002)


def customers(artifact: Artifact) -> pl.DataFrame:
    return artifact.customer_table().sort(c.CUSTOMER_ID)


def recommended(client: TestClient[Litestar], customer: str, **params: Any) -> list[str]:
    reply = client.get(f"/v1/customers/{customer}/recommendations", params={"limit": 50, **params})
    assert reply.status_code == 200, reply.text
    return [item["product_id"] for item in reply.json()["items"]]


# --- intake ----------------------------------------------------------------------------------------


def test_one_line_is_accepted_a_repeat_is_a_duplicate_and_a_new_status_is_an_update(
    client: TestClient[Litestar], store: Store
) -> None:
    placed = line("o-intake-1", "NEW-BUYER-1", "P-UNKNOWN-1")
    first = client.post("/v1/orders", json=placed)
    assert first.status_code == 202
    assert first.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert client.post("/v1/orders", json=placed).json()["duplicates"] == 1
    delivered = placed | {"status": "delivered", "delivered_at": placed["ordered_at"]}
    assert client.post("/v1/orders", json=delivered).json()["accepted"] == 1
    # A client retrying its first request now: a duplicate, the line stays delivered.
    assert client.post("/v1/orders", json=placed).json() == {
        "accepted": 0,
        "duplicates": 1,
        "rejected": [],
    }
    stored = store.orders.of_customer("NEW-BUYER-1")
    assert [r.status for r in stored] == ["placed", "delivered"]


def test_a_batch_stores_the_valid_lines_and_names_the_bad_ones(
    client: TestClient[Litestar], store: Store
) -> None:
    batch = [
        line("o-intake-2", "NEW-BUYER-2", "P1"),
        line("o-intake-3", "NEW-BUYER-2", "P1", quantity=0),  # quantity must be > 0
        {k: v for k, v in line("x", "NEW-BUYER-2", "P1").items() if k != "line_id"},
        line("o-intake-4", "NEW-BUYER-2", "P1", quantity="2"),  # a JSON string, not a number
        line("o-intake-5", "NEW-BUYER-2", "P1", status="lost"),
        line("o-intake-6", "NEW-BUYER-2", "P1", ordered_at="2999-01-01T00:00:00Z"),
        line("o-intake-2", "NEW-BUYER-2", "P1"),  # the same line twice in one batch
        "not an object",
    ]
    response = client.post("/v1/orders", json=batch)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    rejected = {r["index"]: r for r in body["rejected"]}
    assert set(rejected) == {1, 2, 3, 4, 5, 7}
    assert rejected[1]["line_id"] == "o-intake-3" and "quantity" in rejected[1]["errors"][0]
    assert rejected[2]["line_id"] is None
    assert rejected[2]["errors"] == ["line_id: required value is missing"]
    assert rejected[3]["errors"][0] == "quantity: expected an integer, got a JSON string"
    assert "status: unknown value" in rejected[4]["errors"][0]
    assert "ordered_at: in the future" in rejected[5]["errors"][0]
    assert [r.line_id for r in store.orders.of_customer("NEW-BUYER-2")] == ["o-intake-2"]


def test_a_request_without_any_valid_line_is_a_400_and_the_body_rules_are_the_intakes(
    client: TestClient[Litestar],
) -> None:
    bad = client.post("/v1/orders", json=[line("o-intake-7", "X", "P1", unit_price=-1)])
    assert bad.status_code == 400 and "[0] unit_price" in bad.json()["detail"]
    assert client.post("/v1/orders", json=[]).status_code == 400
    too_many = [line(f"o-many-{i}", "X", "P1") for i in range(1001)]
    assert "at most 1000" in client.post("/v1/orders", json=too_many).json()["detail"]
    wrong_type = client.post("/v1/orders", content=b"{}", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415


def test_intake_needs_the_ingest_scope(store: Store) -> None:
    with client_for(store, api_keys=API_KEYS) as client:
        body = line("o-scope-1", "NEW-BUYER-3", "P1")
        assert client.post("/v1/orders", json=body).status_code == 401
        assert client.post("/v1/orders", json=body, headers=auth("recommend")).status_code == 403
        assert client.post("/v1/orders", json=body, headers=auth("ingest")).status_code == 202


# --- what another worker sees within milliseconds --------------------------------------------------------------


def test_a_bought_product_leaves_the_customers_suggestions_on_another_worker(
    client: TestClient[Litestar], worker_b: TestClient[Litestar], store: Store, artifact: Artifact
) -> None:
    customer = str(customers(artifact)[c.CUSTOMER_ID][11])
    before = recommended(worker_b, customer)
    top = before[0]
    posted = client.post("/v1/orders", json=line("o-effect-1", customer, top))
    assert posted.status_code == 202 and posted.json()["accepted"] == 1
    caught_up(worker_b, store, customer)
    assert top not in recommended(worker_b, customer)
    # Asked to include purchases, the product may come back (buy-again): it is not lost.
    assert top in recommended(worker_b, customer, exclude_purchased="false", limit=100)
    # A cancelled line is no purchase: the product is suggested again.
    cancelled = line("o-effect-1", customer, top, status="cancelled")
    assert client.post("/v1/orders", json=cancelled).json()["accepted"] == 1
    caught_up(worker_b, store, customer)
    assert recommended(worker_b, customer)[0] == top


def test_a_hibernating_customer_who_orders_leaves_win_back_on_the_next_call(
    client: TestClient[Litestar], worker_b: TestClient[Litestar], store: Store, artifact: Artifact
) -> None:
    table = customers(artifact).filter(
        (pl.col(ct.RFM_SEGMENT) == "hibernating") & (pl.col(ct.NPS_CATEGORY) != "detractor")
    )
    customer = next(
        str(cid) for cid in table[c.CUSTOMER_ID] if "win_back" in kinds(worker_b, str(cid))
    )
    stored = worker_b.get(f"/v1/customers/{customer}").json()
    assert stored["rfm"]["segment"] == "hibernating"
    product = recommended(worker_b, customer)[0]
    assert client.post("/v1/orders", json=line("o-effect-2", customer, product)).status_code == 202
    caught_up(worker_b, store, customer)
    assert "win_back" not in kinds(worker_b, customer)
    profile = worker_b.get(f"/v1/customers/{customer}").json()
    rfm = profile["rfm"]
    assert rfm["order_count"] == stored["rfm"]["order_count"] + 1
    assert rfm["days_since_last_order"] == 0 and rfm["recency_score"] == 5
    assert rfm["monetary_value"] == pytest.approx(stored["rfm"]["monetary_value"] + 19.5)
    assert rfm["segment"] in ("new_customers", "potential_loyalists", "champions")
    assert profile["churn"]["level"] == "low"
    assert "hibernating" not in profile["segments"]


def kinds(client: TestClient[Litestar], customer: str) -> list[str]:
    reply = client.get(f"/v1/customers/{customer}/offers")
    assert reply.status_code == 200, reply.text
    return [offer["kind"] for offer in reply.json()["offers"]]


def test_a_line_of_a_product_or_customer_the_version_lacks_is_stored_and_harmless(
    client: TestClient[Litestar], worker_b: TestClient[Litestar], store: Store, artifact: Artifact
) -> None:
    customer = str(customers(artifact)[c.CUSTOMER_ID][12])
    before = recommended(worker_b, customer)
    orders = worker_b.get(f"/v1/customers/{customer}").json()["rfm"]["order_count"]
    batch = [
        line("o-unknown-1", customer, "P-NOT-IN-THE-CATALOGUE"),
        line("o-unknown-2", "A-CUSTOMER-NOT-YET-KNOWN", str(before[0])),
    ]
    assert client.post("/v1/orders", json=batch).json()["accepted"] == 2
    assert [r.line_id for r in store.orders.of_customer(customer)][-1] == "o-unknown-1"
    caught_up(worker_b, store, customer, "A-CUSTOMER-NOT-YET-KNOWN")
    # An order all the same (recency, frequency), of nothing the catalogue can leave out.
    assert worker_b.get(f"/v1/customers/{customer}").json()["rfm"]["order_count"] == orders + 1
    assert len(recommended(worker_b, customer)) == len(before)
    # A new customer's bought product is left out of their cold start too.
    assert str(before[0]) not in recommended(worker_b, "A-CUSTOMER-NOT-YET-KNOWN")
    assert worker_b.get("/v1/customers/A-CUSTOMER-NOT-YET-KNOWN/offers").status_code == 200
