"""Shared fixtures. Redis tests use a real server: they skip on a developer machine without one, and
fail loudly in CI (CI=true), where a missing Redis is a broken environment rather than a reason to skip."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

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
