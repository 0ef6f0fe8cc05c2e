"""Live order lines through `recsvc serve` with two worker processes, on both stores: a line one
worker takes is seen by the other at once (the product leaves the suggestions whichever worker
answers), and when the server is killed (SIGKILL, the whole process group) in the middle of
concurrent intake, every line it answered 202 for is in the store after a restart, where a
client retrying it is told it is a duplicate."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from recsvc.domain import columns as c
from recsvc.store import RedisStore
from tests.api_support import STORE_KINDS, Artifact, published_store
from tests.serving import serve


def line(line_id: str, customer: str, product: str, when: str | None = None) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "order_id": f"order-{line_id}",
        "customer_id": customer,
        "product_id": product,
        "quantity": 1,
        "unit_price": 12.0,
        "ordered_at": when or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "status": "placed",
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_two_workers_share_live_orders_and_every_accepted_line_survives_a_kill(
    kind: str, artifact: Artifact, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else None
    with published_store(kind, artifact, tmp_path, redis_url) as store:
        url = store.url
        if isinstance(store, RedisStore):
            url = f"{redis_url}?prefix={store.prefix}&cache_dir={tmp_path / 'serve-cache'}"
        env = {"RECSVC_STORE": url, "RECSVC_LOG_LEVEL": "warning"}
        customers = [str(x) for x in artifact.customer_table()[c.CUSTOMER_ID].sort()[:40]]
        customer = customers[0]

        def suggested(base: str) -> list[str]:
            # A new connection each time, so that both workers answer in turn.
            reply = httpx.get(f"{base}/v1/customers/{customer}/recommendations?limit=50")
            assert reply.status_code == 200, reply.text
            return [item["product_id"] for item in reply.json()["items"]]

        accepted: list[dict[str, Any]] = []  # the lines the server answered 202 for
        with serve(tmp_path, env, workers=2) as served:
            top = suggested(served.base_url)[0]
            posted = httpx.post(
                f"{served.base_url}/v1/orders", json=line("serve-bought", customer, top)
            )
            assert posted.status_code == 202 and posted.json()["accepted"] == 1, posted.text
            for _ in range(10):
                assert top not in suggested(served.base_url)

            stop = threading.Event()

            def client(n: int) -> None:
                with httpx.Client(base_url=served.base_url, timeout=5) as http:
                    batch = 0
                    while not stop.is_set():
                        lines = [
                            line(f"kill-{n}-{batch}-{i}", customers[(n + i) % 40], top)
                            for i in range(20)
                        ]
                        batch += 1
                        try:
                            reply = http.post("/v1/orders", json=lines)
                        except httpx.HTTPError:
                            return  # the server is gone: this batch's fate is unknown
                        assert reply.status_code == 202, reply.text
                        assert reply.json()["accepted"] == 20
                        accepted.extend(lines)

            threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30
            while len(accepted) < 400 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(served.process.pid, signal.SIGKILL)
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            served.process.wait(timeout=15)
        taken = list(accepted)
        assert len(taken) >= 400
        assert {item["line_id"] for item in taken} <= {r.line_id for r in store.orders.iter_live()}
        with (
            serve(tmp_path, env, workers=2) as served,
            httpx.Client(base_url=served.base_url, timeout=10) as http,
        ):
            assert top not in suggested(served.base_url)
            # A client that never saw its answers retries: every line is a duplicate.
            for start in range(0, len(taken), 500):
                chunk = taken[start : start + 500]
                reply = http.post("/v1/orders", json=chunk)
                assert reply.status_code == 202, reply.text
                assert reply.json() == {"accepted": 0, "duplicates": len(chunk), "rejected": []}
        assert "Traceback" not in served.output(), served.output()
