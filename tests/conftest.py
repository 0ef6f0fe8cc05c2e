"""Shared fixtures. Redis tests use a real server: they skip on a developer machine without one, and
fail loudly in CI (CI=true), where a missing Redis is a broken environment rather than a reason to skip."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.redis_cluster import LocalCluster
    from tests.redis_server import RedisServer

TEST_REDIS_URL = os.environ.get("RECSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"no Redis reachable at {TEST_REDIS_URL} ({exc})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run the Redis tests", pytrace=False)
        pytest.skip(f"{message}; set RECSVC_TEST_REDIS_URL or start redis-server")
    finally:
        client.close()
    yield TEST_REDIS_URL


def _require_redis_server() -> None:
    """Skip on a developer machine without redis-server; fail in CI, which must run these tests."""
    from tests.redis_server import REDIS_SERVER

    if REDIS_SERVER is None:
        message = "redis-server is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run the Redis tests", pytrace=False)
        pytest.skip(message)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (`redis_server(persistent=True)`), killed after the test. Like
    the shared Redis, a missing redis-server skips on a developer machine and fails in CI."""
    from tests.redis_server import RedisServer

    _require_redis_server()
    started: list[RedisServer] = []

    def launch(*, persistent: bool = False) -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp("redis-server"), persistent=persistent)
        server.start()
        started.append(server)
        return server

    yield launch
    for server in started:
        server.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A private three-master Redis Cluster for the session (each pytest-xdist worker that asks
    starts its own; about two seconds), stopped and removed at the end. Tests use it under key
    prefixes of their own. A missing redis-server skips on a developer machine and fails in CI."""
    from tests.redis_cluster import local_cluster

    _require_redis_server()
    with local_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster
