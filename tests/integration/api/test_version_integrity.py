"""A corrupted version is never activated, and a worker never answers "no model" while a good
version is stored: activation checks every file's SHA-256 against the manifest and opens the
version as a worker would before it moves the pointer (409 naming the file otherwise); a worker
whose active version does not open keeps serving the last one that did, or (freshly started) the
newest stored version that opens, and says `degraded` with the reason on /health/ready."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from recsvc.__main__ import main
from recsvc.store import FileStore, RedisStore
from recsvc.store.base import Store
from tests.api_support import STORE_KINDS, Artifact, client_for, published_store
from tests.integration.api.test_api_models import OLDER, renamed
from training.config import load_config
from training.run.pipeline import run_pipeline

KNOWN = "C00000001"


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, artifact: Artifact, tmp_path: Path) -> Iterator[Store]:
    """The session's artifact active, and an older copy of it stored beside it."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    with published_store(request.param, artifact, tmp_path, redis_url) as opened:
        opened.publish(renamed(artifact, tmp_path, OLDER, 0.01), activate=False)
        yield opened


def same_length_damage(path: Path) -> None:
    """Overwrite bytes in place, keeping the file's length (a size check cannot see it)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    path.write_bytes(bytes(data))


def nan_vectors(path: Path) -> None:
    """NaN into the item vectors, in place: the array still loads, every score would be NaN."""
    array = np.load(path, mmap_mode="r+")
    array[:] = np.nan
    array.flush()
    del array


def local_copy(store: Store, version: str) -> Path:
    """Where this machine reads a version's files from (a Redis store: its cache)."""
    if isinstance(store, FileStore):
        return store.version_dir(version)
    return store.version_path(version)


def damage_in_redis(store: RedisStore, version: str, name: str) -> None:
    """Flip bytes in the Redis copy of a file (the original every machine downloads)."""
    key = store._chunk_key(version, name, 0)
    client = redis.Redis.from_url(store.url.split("?")[0])
    try:
        chunk = client.get(key)
        assert isinstance(chunk, bytes)
        client.setrange(key, len(chunk) // 2, bytes(b ^ 0xFF for b in chunk[len(chunk) // 2 :][:4]))
    finally:
        client.close()
    shutil.rmtree(store.cache_dir / version, ignore_errors=True)


@pytest.mark.parametrize(
    ("name", "damage"), [("profiles.json", same_length_damage), ("item_vectors.npy", nan_vectors)]
)
def test_activating_a_damaged_version_is_a_409_naming_the_file_and_moves_nothing(
    store: Store, artifact: Artifact, name: str, damage: object
) -> None:
    if isinstance(store, RedisStore):
        local_copy(store, OLDER)
        damage_in_redis(store, OLDER, name)
    else:
        damage(local_copy(store, OLDER) / name)  # type: ignore[operator]
    with client_for(store) as client:
        response = client.post(f"/v1/models/{OLDER}/activate")
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "conflict"
        assert name in body["detail"] and "SHA-256" in body["detail"]
        assert "/tmp" not in body["detail"] and str(Path.cwd()) not in body["detail"]
        assert store.active_version() == artifact.version
        assert client.get(f"/v1/customers/{KNOWN}/recommendations").json()["items"]


def test_a_damaged_cached_copy_is_fetched_again_from_redis_when_activated(
    redis_url: str, artifact: Artifact, tmp_path: Path
) -> None:
    """The Redis copy is the original: a damaged local copy is not a damaged version."""
    with published_store("redis", artifact, tmp_path, redis_url) as store:
        store.publish(renamed(artifact, tmp_path, OLDER, 0.01), activate=False)
        nan_vectors(local_copy(store, OLDER) / "item_vectors.npy")
        with client_for(store) as client:
            assert client.post(f"/v1/models/{OLDER}/activate").status_code == 200
            items = client.get(f"/v1/customers/{KNOWN}/recommendations").json()["items"]
            assert items and all(np.isfinite(item["score"]) for item in items)


def test_the_cli_refuses_to_activate_a_damaged_version(
    tmp_path: Path, artifact: Artifact, capsys: pytest.CaptureFixture[str]
) -> None:
    with published_store("file", artifact, tmp_path) as store:
        store.publish(renamed(artifact, tmp_path, OLDER, 0.01), activate=False)
        same_length_damage(local_copy(store, OLDER) / "segments.json")
        assert main(["models", "--store", store.url, "activate", OLDER]) == 2
        assert "segments.json" in capsys.readouterr().err
        assert store.active_version() == artifact.version


@pytest.mark.parametrize("name", ["profiles.json", "item_vectors.npy"])
def test_a_fresh_worker_whose_active_version_is_damaged_serves_the_newest_good_one(
    tmp_path: Path, artifact: Artifact, name: str
) -> None:
    """The active version was damaged on disk after it was activated (the pointer is already
    there), then a worker crashed and restarted: every request is answered, from the older
    version, and readiness says why."""
    with published_store("file", artifact, tmp_path) as store:
        store.publish(renamed(artifact, tmp_path, OLDER, 0.01), activate=False)
        same_length_damage(local_copy(store, artifact.version) / name)
        with client_for(store) as client:
            statuses = [
                client.get(f"/v1/customers/{KNOWN}/recommendations").status_code for _ in range(10)
            ]
            assert statuses == [200] * 10
            recs = client.get(f"/v1/customers/{KNOWN}/recommendations").json()
            assert recs["model_version"] == OLDER and recs["items"]
            ready = client.get("/health/ready")
            assert ready.status_code == 200
            body = ready.json()
            assert body["status"] == "degraded" and body["model_version"] == OLDER
            assert artifact.version in body["detail"] and name in body["detail"]
            assert str(tmp_path) not in body["detail"]
            metrics = client.get("/metrics").text
            assert "recsvc_active_version_broken 1.0" in metrics


def test_a_running_worker_keeps_its_version_when_the_active_one_breaks(
    tmp_path: Path, artifact: Artifact
) -> None:
    """Pointing at a damaged version behind the service's back (not through activation) leaves
    every worker on the version it serves, degraded, until a good one is activated."""
    with published_store("file", artifact, tmp_path) as store:
        assert isinstance(store, FileStore)
        store.publish(renamed(artifact, tmp_path, OLDER, 0.01), activate=False)
        with client_for(store, reload_seconds=0.05) as client:
            assert client.get("/health/ready").json()["status"] == "ready"
            same_length_damage(local_copy(store, OLDER) / "profiles.bin")
            (store.root / "ACTIVE").write_text(OLDER + "\n")  # as a hand edit would
            client.app.state.holder.refresh(force=True)
            ready = client.get("/health/ready").json()
            assert ready["status"] == "degraded" and ready["model_version"] == artifact.version
            assert "profiles.bin" in ready["detail"]
            recs = client.get(f"/v1/customers/{KNOWN}/recommendations")
            assert recs.status_code == 200 and recs.json()["model_version"] == artifact.version
            assert client.post(f"/v1/models/{artifact.version}/activate").status_code == 200
            assert client.get("/health/ready").json()["status"] == "ready"


def test_the_nightly_run_publishes_over_a_damaged_active_version(
    tmp_path: Path, artifact: Artifact
) -> None:
    """A damaged active version is no yardstick for the quality gate, and must not keep the next
    good version from replacing it."""
    with published_store("file", artifact, tmp_path) as store:
        same_length_damage(local_copy(store, artifact.version) / "item_vectors.npy")
        record = run_pipeline(
            artifact.data,
            store=store.url,
            config=load_config(search_trials=0, epochs=1, components=8, max_eval_users=200),
            runs_dir=tmp_path / "runs",
            show_progress=False,
        )
        assert record.published and record.gate is not None
        assert record.gate.reason == "no active model"
        assert store.active_version() == record.version
