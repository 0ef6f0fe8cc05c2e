"""Webhook delivery end to end: detractor answers POSTed to the real app land in the store's
outbox before the 202; the deliverer sends them, signed, to a local receiver that misbehaves in
turn (down, slow, 500, 429 with Retry-After, 410), on the file store and on Redis. Every event
arrives, a retry keeps its webhook-id, and answers reach the receiver in order per customer."""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from recsvc.domain.webhooks import DETRACTOR
from recsvc.service.webhooks.delivery import ACK_EVERY, Deliverer
from recsvc.service.webhooks.destinations import load_destinations
from recsvc.service.webhooks.status import event_body_type
from recsvc.store import open_store
from recsvc.store.base import Store
from tests.api_support import API_KEYS, auth, client_for
from tests.redis_server import RedisServer
from tests.serving import free_port
from tests.webhook_receiver import Received, Receiver, Reply, running

SECRET = "whsec_" + base64.b64encode(b"delivery-test-secret-0123456789").decode()


def write_webhooks(path: Path, url: str, *, timeout: float = 0.5, extra: str = "") -> Path:
    path.write_text(
        f'[destinations.crm]\nurl = "{url}"\nsecret_env = "CRM_SECRET"\n'
        f"timeout_seconds = {timeout}\n{extra}"
    )
    return path


def answers(customers: int, per_customer: int) -> list[dict[str, object]]:
    """Detractor answers (and one promoter per customer, never sent), a few per customer."""
    items: list[dict[str, object]] = []
    for k in range(per_customer):
        for c in range(customers):
            items.append(
                {
                    "response_id": f"R-{c}-{k}",
                    "customer_id": f"C{c:08d}",
                    "score": k % 7,
                    "responded_at": f"2026-11-{10 + k:02d}T12:00:00Z",
                    "touchpoint": "post_delivery",
                }
            )
        items.append(
            {
                "response_id": f"P-{k}",
                "customer_id": "C00000000",
                "score": 10,
                "responded_at": f"2026-11-{10 + k:02d}T13:00:00Z",
                "touchpoint": "post_delivery",
            }
        )
    return items


def assert_documented(received: list[Received]) -> None:
    """Every body decodes, strictly, as the documented schema of its type."""
    for r in received:
        msgspec.convert(r.body, event_body_type(r.body["type"]), strict=True)


def unique(receiver: Receiver) -> list[Received]:
    """The first 2xx delivery of each webhook-id, in arrival order (what a receiver that drops
    repeats by id keeps)."""
    seen: dict[str, Received] = {}
    for r in receiver.delivered():
        seen.setdefault(r.webhook_id, r)
    return list(seen.values())


@contextmanager
def delivering(store: Store, webhooks: Path, **options: object) -> Iterator[Deliverer]:
    deliverer = Deliverer(store, load_destinations(webhooks), **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=deliverer.run, daemon=True)
    thread.start()
    try:
        yield deliverer
    finally:
        deliverer.stop()
        thread.join(10)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SECRET", SECRET)


@pytest.mark.usefixtures("secret_env")
def test_every_detractor_arrives_signed_in_order_through_a_misbehaving_receiver(
    empty_store_url: str, tmp_path: Path
) -> None:
    port = free_port()
    webhooks = write_webhooks(tmp_path / "webhooks.toml", f"http://127.0.0.1:{port}/hooks")
    store = open_store(empty_store_url, cache_dir=tmp_path / "cache")
    items = answers(customers=4, per_customer=3)
    expected = [i["response_id"] for i in items if int(i["score"]) <= 6]  # type: ignore[call-overload]
    with client_for(store, webhooks_file=str(webhooks)) as client:
        reply = client.post("/v1/nps-responses", json=items, headers=auth("ingest"))
        assert reply.status_code == 202, reply.text
        assert store.outbox.state("crm").pending == len(expected)  # durable before the 202
        status = client.get("/v1/webhooks", headers=auth("admin")).json()["destinations"][0]
        assert status["pending"] == len(expected) and status["state"] == "enabled"

        receiver = Receiver(
            SECRET,
            script=[
                Reply(delay=1.0),  # slower than the 0.5 s timeout
                Reply(500),
                Reply(429, headers={"Retry-After": "1"}),
            ],
        )
        with delivering(
            store, webhooks, retry_base=dt.timedelta(milliseconds=50), poll_seconds=0.05
        ):
            # The receiver is down: connection refused, then backoff.
            assert receiver.wait_for(lambda _: store.outbox.state("crm").failed_attempts >= 2, 10)
            assert store.outbox.state("crm").pending == len(expected)
            with running(receiver, port):
                assert receiver.wait_for(lambda r: len(unique(r)) == len(expected), 20)
                # The last group leaves the outbox once its last POST has been answered.
                assert receiver.wait_for(lambda _: store.outbox.state("crm").pending == 0, 10)
                metrics = client.get("/metrics").text

        attempts = sorted(receiver.received, key=lambda r: r.at)  # in the order they arrived
        assert all(r.verified for r in attempts), "every request verifies with standardwebhooks"
        assert_documented(attempts)
        # The first event went out four times under one webhook-id: answered too late (the
        # receiver has it, the sender timed out: at least once), 500, 429, then 200.
        assert sorted(r.status for r in attempts[:4]) == [200, 200, 429, 500]
        assert len({r.webhook_id for r in attempts[:4]}) == 1
        throttled = next(r for r in attempts if r.status == 429)
        after = attempts[attempts.index(throttled) + 1]
        assert after.at - throttled.at >= 0.9, "Retry-After: 1 is honoured"
        bodies = [r.body for r in unique(receiver)]
        assert [b["data"]["response_id"] for b in bodies] == expected  # queue order, all of them
        assert {b["type"] for b in bodies} == {DETRACTOR}
        assert len(receiver.delivered()) == len(expected) + 1  # the one repeat is the timeout
        for customer in {b["data"]["customer_id"] for b in bodies}:
            times_sent = [
                b["data"]["responded_at"] for b in bodies if b["data"]["customer_id"] == customer
            ]
            assert times_sent == sorted(times_sent), "in order per customer"
        done = store.outbox.state("crm")
        assert done.pending == 0 and done.delivered == len(expected) and done.attempts == 0
        assert 'recsvc_webhook_delivered_total{destination="crm"}' in metrics
        assert 'recsvc_webhook_queue_depth{destination="crm"} 0.0' in metrics
    store.close()


@pytest.mark.usefixtures("secret_env")
def test_a_410_disables_the_destination_until_an_admin_enables_it(
    empty_store_url: str, tmp_path: Path
) -> None:
    receiver = Receiver(SECRET, script=[Reply(410)])
    store = open_store(empty_store_url, cache_dir=tmp_path / "cache")
    with running(receiver) as live:
        webhooks = write_webhooks(tmp_path / "webhooks.toml", live.url)
        with client_for(store, webhooks_file=str(webhooks), api_keys=API_KEYS) as client:
            items = answers(customers=1, per_customer=2)
            assert (
                client.post("/v1/nps-responses", json=items, headers=auth("ingest")).status_code
                == 202
            )
            with delivering(
                store, webhooks, retry_base=dt.timedelta(milliseconds=50), poll_seconds=0.05
            ):
                assert live.wait_for(lambda r: len(r.received) == 1, 10)
                assert live.wait_for(lambda _: store.outbox.state("crm").disabled is not None, 10)
                time.sleep(0.5)  # the deliverer polls every 50 ms: ten chances to send more
                assert len(live.received) == 1, "nothing more goes to a receiver that said 410"
                status = client.get("/v1/webhooks", headers=auth("admin")).json()["destinations"][0]
                assert status["state"] == "disabled" and status["disabled"].startswith("410 Gone")
                assert status["pending"] == 2
                assert (
                    client.post("/v1/webhooks/crm/enable", headers=auth("export")).status_code
                    == 403
                )
                assert (
                    client.post("/v1/webhooks/nope/enable", headers=auth("admin")).status_code
                    == 404
                )
                enabled = client.post("/v1/webhooks/crm/enable", headers=auth("admin"))
                assert enabled.status_code == 200 and enabled.json()["state"] == "enabled"
                assert live.wait_for(lambda r: len(r.delivered()) == 2, 10)
            assert live.received[0].webhook_id == live.received[1].webhook_id
    store.close()


@pytest.mark.usefixtures("secret_env")
def test_an_event_failing_past_its_maximum_age_is_given_up_and_the_next_goes(
    empty_store_url: str, tmp_path: Path
) -> None:
    receiver = Receiver(SECRET, default=Reply(500))
    store = open_store(empty_store_url, cache_dir=tmp_path / "cache")
    first, second = answers(customers=2, per_customer=1)[:2]
    with running(receiver) as live:
        webhooks = write_webhooks(tmp_path / "webhooks.toml", live.url)
        with (
            client_for(store, webhooks_file=str(webhooks)) as client,
            delivering(
                store,
                webhooks,
                retry_base=dt.timedelta(milliseconds=50),
                max_age=dt.timedelta(milliseconds=400),
                poll_seconds=0.05,
            ),
        ):
            assert (
                client.post("/v1/nps-responses", json=first, headers=auth("ingest")).status_code
                == 202
            )
            assert live.wait_for(lambda _: store.outbox.state("crm").expired == 1, 10)
            live.default = Reply(200)
            assert (
                client.post("/v1/nps-responses", json=second, headers=auth("ingest")).status_code
                == 202
            )
            assert live.wait_for(lambda r: len(r.delivered()) == 1, 10)
    state = store.outbox.state("crm")
    assert (state.pending, state.expired, state.delivered) == (0, 1, 1)
    given_up = {r.webhook_id for r in live.received if r.status == 500}
    assert len(given_up) == 1
    assert live.delivered()[0].body["data"]["response_id"] == second["response_id"]
    store.close()


@pytest.mark.redis
@pytest.mark.usefixtures("secret_env")
def test_redis_crashing_and_restarting_mid_queue_loses_no_event(
    redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server(persistent=True)
    store = open_store(f"{server.url}?cache_dir={tmp_path / 'cache'}")
    receiver = Receiver(SECRET, default=Reply(delay=0.01))
    items = answers(customers=5, per_customer=12)
    expected = [i["response_id"] for i in items if int(str(i["score"])) <= 6]
    with running(receiver) as live:
        webhooks = write_webhooks(tmp_path / "webhooks.toml", live.url)
        with client_for(store, webhooks_file=str(webhooks)) as client:
            assert (
                client.post("/v1/nps-responses", json=items, headers=auth("ingest")).status_code
                == 202
            )
        with delivering(
            store, webhooks, retry_base=dt.timedelta(milliseconds=50), poll_seconds=0.05
        ):
            assert live.wait_for(lambda r: len(r.delivered()) >= len(expected) // 3, 20)
            server.kill()
            time.sleep(0.5)
            server.start()
            assert live.wait_for(lambda r: len(unique(r)) == len(expected), 30)
    assert [r.body["data"]["response_id"] for r in unique(live)] == expected
    # At most the group delivered but not yet removed when Redis went down went twice, same ids.
    assert len(live.delivered()) - len(expected) <= ACK_EVERY
    assert store.outbox.state("crm").pending == 0
    store.close()
