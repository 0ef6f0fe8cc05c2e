"""NPS intake over HTTP against both stores: one response or a batch, contract checks per item,
idempotency, durable storage before 202, the live update of the customer, and the detractor webhook
(a real HTTP server on 127.0.0.1 that fails the first call) retried without holding up intake."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
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


# --- the detractor webhook -------------------------------------------------------------------------


class Webhook:
    """A real HTTP endpoint: the first call is held until released, then fails with 500; the
    next ones succeed."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        self.delivered = threading.Event()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.calls.append(body)
                if len(hook.calls) == 1:
                    hook.first_arrived.set()
                    hook.release.wait(10)
                    self.send_response(500)
                else:
                    self.send_response(200)
                    hook.delivered.set()
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/detractors"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def assert_metric_soon(client: TestClient[Litestar], line: str, seconds: float = 5) -> None:
    """`/metrics` shows `line` within `seconds` (the webhook thread counts after the reply)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        metrics = client.get("/metrics").text
        if line in metrics:
            return
        time.sleep(0.05)
    assert line in metrics


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


def test_a_new_detractor_reaches_the_webhook_after_a_failed_first_try_without_blocking_intake(
    store: Store, webhook: Webhook
) -> None:
    with client_for(store, detractor_webhook_url=webhook.url) as client:
        started = time.monotonic()
        response = client.post(
            "/v1/nps-responses",
            json=[
                answer("hook-1", "NEW-CUSTOMER-4", 1, comment="never again"),
                answer("hook-2", "NEW-CUSTOMER-5", 10),  # a promoter: no call
            ],
        )
        assert response.status_code == 202 and response.json()["accepted"] == 2
        assert webhook.first_arrived.wait(5), "the webhook was never called"
        # Intake answered while the webhook still held its first call.
        assert not webhook.delivered.is_set()
        assert time.monotonic() - started < 5
        webhook.release.set()
        assert webhook.delivered.wait(5), "no retry after the failed first call"
        assert len(webhook.calls) == 2
        delivered = webhook.calls[1]
        assert delivered["event"] == "detractor_response"
        assert (delivered["response_id"], delivered["score"]) == ("hook-1", 1)
        assert delivered["comment"] == "never again"
        # A repeated post of the same response is a duplicate: no second notification.
        client.post("/v1/nps-responses", json=answer("hook-1", "NEW-CUSTOMER-4", 1))
        assert_metric_soon(client, 'recsvc_webhook_deliveries_total{outcome="delivered"} 1.0')
    assert len(webhook.calls) == 2


def test_a_waiting_notice_about_a_customer_erased_meanwhile_is_dropped(
    store: Store, webhook: Webhook
) -> None:
    with client_for(store, detractor_webhook_url=webhook.url) as client:
        response = client.post("/v1/nps-responses", json=answer("hook-9", "NEW-CUSTOMER-9", 0))
        assert response.status_code == 202
        assert webhook.first_arrived.wait(5), "the webhook was never called"
        assert client.delete("/v1/customers/NEW-CUSTOMER-9").status_code == 202
        webhook.release.set()  # the first call fails; the retry must not go out
        assert_metric_soon(client, 'recsvc_webhook_deliveries_total{outcome="erased"} 1.0')
    assert len(webhook.calls) == 1
