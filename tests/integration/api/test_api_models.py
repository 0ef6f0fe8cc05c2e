"""Model versions over HTTP and on the command line, against both stores: list them with
created_at, NDCG and the active flag; activate an older one (rollback) and it is served at once;
an unknown version is a 404."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.__main__ import main
from recsvc.store import RedisStore
from recsvc.store.base import Store
from recsvc.version.artifacts import MANIFEST, read_manifest
from tests.api_support import STORE_KINDS, Artifact, client_for, store_for

OLDER = "20000101T000000Z-older"


def renamed(artifact: Artifact, root: Path, version: str, ndcg: float) -> Path:
    """The artifact as another version (same files, its own name and NDCG)."""
    directory = root / version
    shutil.copytree(artifact.directory, directory)
    manifest = read_manifest(directory)
    manifest = msgspec.structs.replace(
        manifest,
        version=version,
        created_at="2000-01-01T00:00:00+00:00",
        metrics={**manifest.metrics, "ndcg": ndcg},
    )
    (directory / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    return directory


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, artifact: Artifact, tmp_path: Path) -> Iterator[Store]:
    with store_for(request, artifact, tmp_path) as opened:
        opened.publish(renamed(artifact, tmp_path, OLDER, 0.01), activate=False)
        yield opened


@pytest.fixture
def client(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store) as test_client:
        yield test_client


def _store_url(store: Store) -> str:
    if isinstance(store, RedisStore):
        return f"{store.url}?prefix={store.prefix}&cache_dir={store.cache_dir.parent}"
    return store.url


def test_versions_are_listed_with_created_at_ndcg_and_the_active_one(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    body = client.get("/v1/models").json()
    assert (body["active"], body["serving"]) == (artifact.version, artifact.version)
    versions = {v["version"]: v for v in body["versions"]}
    assert set(versions) == {OLDER, artifact.version}
    current = versions[artifact.version]
    assert current["active"] and current["serving"]
    assert current["ndcg"] == pytest.approx(read_manifest(artifact.directory).metrics["ndcg"])
    assert current["created_at"] == read_manifest(artifact.directory).created_at
    older = versions[OLDER]
    assert not older["active"] and not older["serving"]
    assert (older["ndcg"], older["created_at"]) == (0.01, "2000-01-01T00:00:00+00:00")


def test_activating_an_older_version_rolls_back_at_once(
    client: TestClient[Litestar], artifact: Artifact, store: Store
) -> None:
    response = client.post(f"/v1/models/{OLDER}/activate")
    assert response.status_code == 200
    assert response.json() == {"active": OLDER, "previous": artifact.version, "serving": OLDER}
    assert store.active_version() == OLDER
    recs = client.get("/v1/customers/C00000001/recommendations").json()
    assert recs["model_version"] == OLDER
    assert client.get("/health/ready").json()["model_version"] == OLDER
    back = client.post(f"/v1/models/{artifact.version}/activate")
    assert back.json()["serving"] == artifact.version


def test_activating_an_unknown_version_is_a_json_404(
    client: TestClient[Litestar], artifact: Artifact, store: Store
) -> None:
    for version in ["no-such-version", "..", "..%2F..%2Fetc", ".hidden", "v{1}", "x" * 300, "%00"]:
        response = client.post(f"/v1/models/{version}/activate")
        assert response.status_code == 404, version
        assert response.json()["error"] == "not_found"
        assert store.active_version() == artifact.version


def test_the_cli_lists_and_activates_versions(
    store: Store,
    artifact: Artifact,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECSVC_STORE", _store_url(store))
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["version", "created_at", "ndcg"]
    marked = {line[2:].split()[0]: line.startswith("*") for line in lines[1:]}
    assert marked == {OLDER: False, artifact.version: True}
    assert main(["models", "activate", OLDER]) == 0
    assert f"version {OLDER} is active (was {artifact.version})" in capsys.readouterr().out
    assert store.active_version() == OLDER
    assert main(["models", "activate", "no-such-version"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("recsvc: error: ") and "no-such-version" in error
    assert error.count("\n") == 1
    assert store.active_version() == OLDER
