"""Hot reload over real HTTP: service workers swap to a newly published version, and back on a
rollback, without a restart, without failing a request, and answering every request from one
version (the items of each response are exactly what that version answers); two service
processes against one Redis serve the same versions and both swap.

The versions are two real training runs on small demo data (different seeds, so their answers
differ); the servers are `python -m recsvc serve` processes polling the store every 0.2 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from recsvc.store import RedisStore, open_store
from tests.serving import free_port
from training.config import load_config
from training.run.pipeline import run_pipeline
from training.sources.generate import generate

ROOT = Path(__file__).resolve().parents[3]
RELOAD_SECONDS = "0.2"
SETTLE = 1.5  # long enough for every worker to poll, load and swap (several reload intervals)
CUSTOMERS = [f"C{i:08d}" for i in range(1, 41)] + ["someone-new"]  # one cold start


@dataclass(frozen=True)
class Versions:
    a: str
    b: str
    artifacts: dict[str, Path]


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """Two trained versions, not published anywhere yet: each test publishes them itself."""
    root = tmp_path_factory.mktemp("reload")
    data = root / "data"
    generate(data, 600, seed=3, show_progress=False)
    artifacts = {}
    for seed in (1, 2):
        config = load_config(search_trials=0, epochs=3, components=8, max_eval_users=300, seed=seed)
        record = run_pipeline(
            data,
            store=f"file://{root / 'scratch'}",
            config=config,
            publish=False,
            runs_dir=root / f"runs-{seed}",
            show_progress=False,
        )
        assert record.version is not None
        artifacts[record.version] = root / f"runs-{seed}" / record.run_id / "artifact"
    a, b = artifacts
    return Versions(a, b, artifacts)


class Server:
    """`python -m recsvc serve` on a free port, ready when /health/ready answers 200."""

    def __init__(self, store: str, tmp: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"server-{self.port}.log"
        env = {
            **os.environ,
            "RECSVC_STORE": store,
            "RECSVC_RELOAD_SECONDS": RELOAD_SECONDS,
            "RECSVC_LOG_LEVEL": "warning",
        }
        env.pop("RECSVC_API_KEYS", None)  # development mode: loopback, every scope open
        argv = ["serve", "--port", str(self.port), "--workers", str(workers)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "recsvc", *argv],
                cwd=tmp,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                reply = httpx.get(f"{self.base}/health/ready", timeout=1)
                if reply.status_code == 200:
                    return str(reply.json()["model_version"])
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def answer(base: str, customer: str, client: httpx.Client) -> tuple[str, tuple[str, ...]]:
    reply = client.get(f"{base}/v1/customers/{customer}/recommendations", params={"limit": 10})
    reply.raise_for_status()
    body = reply.json()
    return body["model_version"], tuple(item["product_id"] for item in body["items"])


def answers_of(base: str, version: str) -> dict[str, tuple[str, ...]]:
    """What `version` answers each customer, asked while every worker serves it."""
    out = {}
    with httpx.Client(timeout=5) as client:
        for customer in CUSTOMERS:
            served, items = answer(base, customer, client)
            assert served == version
            out[customer] = items
    return out


@dataclass
class Hammer:
    """Threads asking for recommendations in a loop, recording every answer or error."""

    bases: list[str]
    threads: int = 4
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[float, str, str, tuple[str, ...], float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Hammer:
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(n,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def _loop(self, n: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = n
            while not self.stop.is_set():
                customer = CUSTOMERS[i % len(CUSTOMERS)]
                base = self.bases[i % len(self.bases)]
                i += 1
                started = time.perf_counter()
                try:
                    version, items = answer(base, customer, client)
                except httpx.HTTPError as exc:
                    self.errors.append(f"{customer}: {exc!r}")
                    continue
                latency = time.perf_counter() - started
                self.answers.append((time.monotonic(), customer, version, items, latency))

    def finish(self) -> None:
        self.stop.set()
        for thread in self._workers:
            thread.join(timeout=15)

    def served_since(self, moment: float) -> set[str]:
        return {version for at, _, version, _, _ in self.answers if at > moment}


def check(hammer: Hammer, expected: dict[str, dict[str, tuple[str, ...]]]) -> None:
    assert not hammer.errors, hammer.errors[:5]
    assert len(hammer.answers) > 100
    for _, customer, version, items, _ in hammer.answers:
        assert version in expected, f"a version that was never active: {version}"
        assert items == expected[version][customer], f"{customer}: a mix inside one response"


def test_workers_swap_to_a_published_version_and_back_on_rollback_without_a_failed_request(
    versions: Versions, tmp_path: Path, servers: list[Server]
) -> None:
    url = f"file://{tmp_path / 'store'}"
    store = open_store(url)
    store.publish(versions.artifacts[versions.a])
    server = Server(url, tmp_path, workers=2)
    servers.append(server)
    assert server.wait_ready() == versions.a
    expected = {versions.a: answers_of(server.base, versions.a)}

    hammer = Hammer([server.base]).start()
    time.sleep(0.5)
    store.publish(versions.artifacts[versions.b])  # what the nightly run's publish step does
    time.sleep(SETTLE)
    expected[versions.b] = answers_of(server.base, versions.b)
    # Rollback over the API: the worker that takes it swaps at once, the other at its next poll.
    reply = httpx.post(f"{server.base}/v1/models/{versions.a}/activate", timeout=10)
    assert reply.status_code == 200, reply.text
    rolled_back = time.monotonic()
    time.sleep(SETTLE)
    hammer.finish()

    check(hammer, expected)
    assert {v for _, _, v, _, _ in hammer.answers} == {versions.a, versions.b}
    assert hammer.served_since(rolled_back + 1.0) == {versions.a}
    assert expected[versions.a] != expected[versions.b]


@pytest.mark.redis
def test_two_replicas_on_one_redis_serve_the_same_versions_and_both_reload(
    versions: Versions, redis_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    prefix = f"recsvc-test-{uuid.uuid4().hex[:12]}"
    url = f"{redis_url}?prefix={prefix}"
    try:
        store = RedisStore(url, cache_dir=tmp_path / "publisher-cache")
        store.publish(versions.artifacts[versions.a])
        # Two machines: each its own working directory, so each its own local model cache.
        for name in ("one", "two"):
            (tmp_path / name).mkdir()
            servers.append(Server(url, tmp_path / name))
        assert [s.wait_ready() for s in servers] == [versions.a, versions.a]
        expected = {versions.a: answers_of(servers[0].base, versions.a)}
        assert answers_of(servers[1].base, versions.a) == expected[versions.a]

        hammer = Hammer([s.base for s in servers]).start()
        time.sleep(0.5)
        store.publish(versions.artifacts[versions.b])
        time.sleep(SETTLE)
        expected[versions.b] = answers_of(servers[0].base, versions.b)
        assert answers_of(servers[1].base, versions.b) == expected[versions.b]
        rollback = subprocess.run(
            [sys.executable, "-m", "recsvc", "models", "--store", url, "activate", versions.a],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rollback.returncode == 0, rollback.stderr
        rolled_back = time.monotonic()
        time.sleep(SETTLE)
        hammer.finish()

        check(hammer, expected)
        for server in servers:
            ready = httpx.get(f"{server.base}/health/ready", timeout=5).json()
            assert ready["model_version"] == versions.a
        assert hammer.served_since(rolled_back + 1.0) == {versions.a}
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
