"""`recsvc deliver` as an operator runs it: two of them on one store (one delivers, the other
stands by), the delivering one killed with SIGKILL in the middle of the queue. The standby takes
over and every event still arrives, in order, under the id it was queued with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from recsvc.service.webhooks.delivery import ACK_EVERY
from recsvc.store import open_store
from tests.api_support import auth, client_for
from tests.integration.webhooks.test_delivery import SECRET, answers, unique, write_webhooks
from tests.webhook_receiver import Receiver, Reply, running

EVENTS_PER_CUSTOMER = 10
CUSTOMERS = 8


def start_deliverer(store_url: str, webhooks: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSVC_")}
    env |= {
        "RECSVC_STORE": store_url,
        "RECSVC_WEBHOOKS_FILE": str(webhooks),
        "RECSVC_DELIVER_POLL_SECONDS": "0.05",
        "RECSVC_DELIVER_LOCK_SECONDS": "3",
        "RECSVC_WEBHOOK_RETRY_SECONDS": "0.05",
        "CRM_SECRET": SECRET,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "recsvc", "deliver"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_deliverer_killed_mid_queue_loses_nothing_and_the_standby_takes_over(
    empty_store_url: str, tmp_path: Path
) -> None:
    receiver = Receiver(SECRET)
    store = open_store(empty_store_url, cache_dir=tmp_path / "cache")
    items = answers(customers=CUSTOMERS, per_customer=EVENTS_PER_CUSTOMER)
    expected = [i["response_id"] for i in items if int(str(i["score"])) <= 6]
    log = tmp_path / "deliver.log"
    with running(receiver) as live:
        webhooks = write_webhooks(tmp_path / "webhooks.toml", live.url)
        os.environ["CRM_SECRET"] = SECRET
        try:
            with client_for(store, webhooks_file=str(webhooks)) as client:
                reply = client.post("/v1/nps-responses", json=items, headers=auth("ingest"))
                assert reply.status_code == 202
        finally:
            del os.environ["CRM_SECRET"]
        live.default = Reply(delay=0.04)  # slow enough for the second to start mid-queue
        first = start_deliverer(empty_store_url, webhooks, log)
        assert live.wait_for(lambda r: len(r.received) > 0, 30), log.read_text()
        second = start_deliverer(empty_store_url, webhooks, log)
        try:
            assert live.wait_for(lambda _: "standing by" in log.read_text(), 30), log.read_text()
            live.default = Reply(delay=0.01)
            assert live.wait_for(lambda r: len(r.delivered()) >= len(expected) // 3, 60), (
                log.read_text()
            )
            assert first.poll() is None and second.poll() is None
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            killed_at = len(live.delivered())
            assert killed_at < len(expected), "killed before the end of the queue"
            assert live.wait_for(lambda r: len(unique(r)) == len(expected), 60), log.read_text()
        finally:
            for process in (first, second):
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(15)
    text = log.read_text()
    assert "standing by: another deliverer holds the lock" in text
    assert second.returncode == 0, text  # SIGTERM: a clean stop
    delivered = unique(live)
    assert [r.body["data"]["response_id"] for r in delivered] == expected
    assert all(r.verified for r in live.received)
    # At most the group delivered but not yet removed at the kill went twice, under their ids.
    assert len(live.delivered()) - len(expected) <= ACK_EVERY
    state = store.outbox.state("crm")
    assert state.pending == 0
    store.close()
