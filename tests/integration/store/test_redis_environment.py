"""The Redis the Redis-backed tests rely on is a real server that stores and returns data."""

import uuid

import pytest


@pytest.mark.redis
def test_the_test_redis_round_trips_a_value(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"recsvc-test:{uuid.uuid4()}"
    try:
        client.set(key, b"\x00payload", ex=30)
        assert client.get(key) == b"\x00payload"
    finally:
        client.delete(key)
        client.close()
