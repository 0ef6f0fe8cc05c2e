"""Fixtures shared by the API tests: one real artifact per session (built by the real training
pipeline on small demo data), published into each store kind, and the real app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.store.base import Store
from tests.api_support import (
    STORE_KINDS,
    Artifact,
    build_artifact,
    client_for,
    redis_store_url,
    store_for,
)


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    return build_artifact(tmp_path_factory)


@pytest.fixture(scope="module", params=STORE_KINDS)
def store(
    request: pytest.FixtureRequest, artifact: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """The artifact published into a fresh store of each kind (a module may define its own)."""
    with store_for(request, artifact, tmp_path_factory.mktemp(request.module.__name__)) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store) as test_client:
        yield test_client


@pytest.fixture(params=STORE_KINDS)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store of each kind; a Redis one under a key prefix of its own. A module
    adds the cluster with `pytest.mark.parametrize("empty_store_url", STORE_KINDS_AND_CLUSTER,
    indirect=True)`."""
    if request.param == "file":
        yield f"file://{tmp_path / 'store'}"
        return
    if request.param == "redis-cluster":
        server_url = request.getfixturevalue("redis_cluster").url
    else:
        server_url = request.getfixturevalue("redis_url")
    with redis_store_url(server_url, tmp_path / "cache") as url:
        yield url
