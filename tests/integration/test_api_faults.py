"""When Redis goes away the service degrades instead of failing: recommendation and offer reads keep
answering from the model in memory, readiness and metrics say "degraded", NPS intake refuses with
503 (nothing is acknowledged that is not stored), and everything recovers by itself when Redis is
back. Runs a private redis-server on a free port, which the test stops and starts again."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.store import RedisStore
from tests.api_support import Artifact, client_for

pytestmark = pytest.mark.redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server process on 127.0.0.1:port, without persistence."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            wait_for(lambda: _pings(client), 10, "the private redis-server to answer")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


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
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def answer(rid: str) -> dict[str, object]:
    return {
        "response_id": rid,
        "customer_id": "FAULT-1",
        "score": 3,
        "responded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "touchpoint": "relationship",
    }


def metric(client: TestClient[Litestar], name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_reads_survive_redis_going_away_and_everything_recovers_when_it_returns(
    private_redis: PrivateRedis, artifact: Artifact, tmp_path: Path
) -> None:
    store = RedisStore(private_redis.url, prefix="faults", cache_dir=tmp_path / "cache")
    store.publish(artifact.directory)
    known = "C00000001"
    with client_for(store, reload_seconds=0.1) as client:
        assert client.get("/health/ready").json()["status"] == "ready"
        assert client.post("/v1/nps-responses", json=answer("fault-1")).status_code == 202

        private_redis.stop()

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
        assert client.get(f"/v1/customers/{known}/recommendations").status_code == 200
    with contextlib.suppress(redis.RedisError):
        store.close()
