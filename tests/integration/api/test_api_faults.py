"""When Redis goes away the service degrades instead of failing: recommendation and offer reads keep
answering from the model in memory, readiness and metrics say "degraded", NPS intake refuses with
503 (nothing is acknowledged that is not stored), and everything recovers by itself when Redis is
back. Runs a private redis-server (tests/redis_server.py), which the test kills and starts again."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.store import RedisStore
from tests.api_support import Artifact, client_for
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def wait_for(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


@pytest.fixture
def private_redis(redis_server: Callable[..., RedisServer]) -> RedisServer:
    return redis_server(persistent=False)


def answer(rid: str) -> dict[str, object]:
    return {
        "response_id": rid,
        "customer_id": "FAULT-1",
        "score": 3,
        "responded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "touchpoint": "relationship",
    }


def order_line(line_id: str) -> dict[str, object]:
    return {
        "line_id": line_id,
        "order_id": f"order-{line_id}",
        "customer_id": "FAULT-1",
        "product_id": "P000001",
        "quantity": 1,
        "unit_price": 9.5,
        "ordered_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "status": "placed",
    }


def metric(client: TestClient[Litestar], name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_reads_survive_redis_going_away_and_everything_recovers_when_it_returns(
    private_redis: RedisServer, artifact: Artifact, tmp_path: Path
) -> None:
    store = RedisStore(private_redis.url, prefix="faults", cache_dir=tmp_path / "cache")
    store.publish(artifact.directory)
    known = "C00000001"
    with client_for(store, reload_seconds=0.1) as client:
        assert client.get("/health/ready").json()["status"] == "ready"
        assert client.post("/v1/nps-responses", json=answer("fault-1")).status_code == 202

        private_redis.kill()

        recs = client.get(f"/v1/customers/{known}/recommendations")
        assert recs.status_code == 200 and recs.json()["model_version"] == artifact.version
        assert client.get(f"/v1/customers/{known}/offers").status_code == 200
        assert client.get("/v1/customers/SOMEONE-NEW/recommendations").status_code == 200
        ready = wait_for(
            lambda: (r := client.get("/health/ready").json())["status"] == "degraded" and r,
            5,
            "readiness to report degraded",
        )
        assert ready["model_version"] == artifact.version
        assert "cannot be reached" in ready["detail"]
        # An unauthenticated probe learns nothing of our infrastructure: no URL, host or port.
        assert "redis" not in ready["detail"].lower() and "127.0.0.1" not in ready["detail"]
        assert metric(client, "recsvc_store_degraded") == 1
        assert metric(client, "recsvc_store_errors_total") > 0
        refused = client.post("/v1/nps-responses", json=answer("fault-2"))
        assert refused.status_code == 503
        assert refused.json() == {
            "error": "unavailable",
            "detail": "the store cannot be reached right now: retry later",
        }
        assert refused.headers["retry-after"] == "5"
        refused_order = client.post("/v1/orders", json=order_line("fault-line-1"))
        assert refused_order.status_code == 503
        assert refused_order.json() == refused.json()
        # An erasure is not acknowledged unless it is durable: 503, and the client repeats it.
        refused_erasure = client.delete("/v1/customers/FAULT-1")
        assert refused_erasure.status_code == 503
        assert refused_erasure.json() == refused.json()
        assert client.get("/v1/customers/FAULT-1/data").status_code == 503
        assert client.get("/v1/segments").status_code == 200  # masks as last read
        summary = client.get("/v1/nps/summary")
        assert summary.status_code == 200 and summary.json()["live_answers"] is None
        assert client.get("/v1/models").status_code == 503

        private_redis.start()  # same port, empty (no persistence): the model stays in memory

        wait_for(
            lambda: client.get("/health/ready").json()["status"] == "ready",
            10,
            "readiness to recover",
        )
        assert metric(client, "recsvc_store_degraded") == 0
        accepted = client.post("/v1/nps-responses", json=answer("fault-2"))
        assert accepted.status_code == 202 and accepted.json()["accepted"] == 1
        ordered = client.post("/v1/orders", json=order_line("fault-line-1"))
        assert ordered.status_code == 202 and ordered.json()["accepted"] == 1
        assert client.delete("/v1/customers/FAULT-1").status_code == 202
        assert client.get(f"/v1/customers/{known}/recommendations").status_code == 200
    with contextlib.suppress(redis.RedisError):
        store.close()
