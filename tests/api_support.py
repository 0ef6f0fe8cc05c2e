"""Shared pieces of the API tests (`tests/integration/api/`): one real artifact per test
session, published into a file or a Redis store, and the real app over Litestar's TestClient.

The artifact comes from the real training pipeline on small demo data (3,000 customers, 3 epochs,
8 components), built once per session however many test modules ask for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.api.app import create_app
from recsvc.domain import columns as c
from recsvc.domain.experiments import Assignment, ExperimentResult, Outcome
from recsvc.service.settings import Settings
from recsvc.store import FileStore, RedisStore
from recsvc.store.base import Store
from recsvc.store.redis_client import RedisUrl
from recsvc.store.runs import RunRecord, encode_record
from recsvc.version.artifacts import MANIFEST, file_entries, read_manifest
from recsvc.version.experiments import write_experiments
from recsvc.version.responses import RESPONSES_JSON
from tests.unit.training.test_experiment_analysis import outcome_table
from training.config import load_config
from training.experiments.analysis import AnalysisConfig, analyse
from training.run.pipeline import run_pipeline
from training.sources.generate import generate

CUSTOMERS = 3000
SEED = 5
# One key per scope, and one with all of them.
KEYS = {
    "recommend": "recommend-key-0123456789",
    "export": "export-key-0123456789abc",
    "ingest": "ingest-key-0123456789abc",
    "admin": "admin-key-0123456789abcd",
    "privacy": "privacy-key-0123456789abc",
    "survey": "survey-key-0123456789abcd",
}
ALL_SCOPES_KEY = "all-scopes-key-0123456789"
API_KEYS = {
    **{key: [scope] for scope, key in KEYS.items()},
    ALL_SCOPES_KEY: list(KEYS),
}


@dataclass(frozen=True)
class Artifact:
    directory: Path  # a complete version directory, ready to publish
    data: Path  # the demo data it was trained on
    version: str

    def table(self, name: str) -> pl.DataFrame:
        return pl.read_parquet(self.data / f"{name}.parquet")

    def customer_table(self) -> pl.DataFrame:
        return pl.read_parquet(self.directory / "customers.parquet")


_built: dict[Path, Artifact] = {}


def build_artifact(factory: pytest.TempPathFactory) -> Artifact:
    """The session's artifact: generated data, one real pipeline run (built once per session)."""
    key = factory.getbasetemp()
    if key in _built:
        return _built[key]
    root = factory.mktemp("api-artifact")
    data = root / "data"
    generate(data, CUSTOMERS, seed=SEED, show_progress=False)
    # A small search, so that every API test serves settings a search chose (often the purely
    # collaborative fit, whose attribute rows are placed, not learned).
    record = run_pipeline(
        data,
        store=f"file://{root / 'pipeline-store'}",
        config=load_config(search_trials=3, search_max_epochs=10, epochs=3, components=8),
        runs_dir=root / "runs",
        show_progress=False,
        force=True,
    )
    assert record.version is not None, record
    directory = root / "artifact"
    shutil.copytree(FileStore(root / "pipeline-store").version_dir(record.version), directory)
    assert (directory / RESPONSES_JSON).is_file(), "the pipeline writes the NPS answer table"
    _built[key] = Artifact(directory, data, record.version)
    return _built[key]


@contextlib.contextmanager
def published_store(
    kind: str, artifact: Artifact, root: Path, redis_url: str | None = None
) -> Iterator[Store]:
    """A fresh store of `kind` ("file", "redis" or "redis-cluster", `redis_url` the server's or the
    cluster's) with the artifact published and active; a Redis store gets a random key prefix,
    deleted afterwards."""
    store: Store
    if kind == "file":
        store = FileStore(root / f"store-{uuid.uuid4().hex[:8]}")
    else:
        assert redis_url is not None
        prefix = f"recsvc-test-{uuid.uuid4().hex[:12]}"
        store = RedisStore(redis_url, prefix=prefix, cache_dir=root / f"cache-{prefix}")
    store.publish(artifact.directory)
    try:
        yield store
    finally:
        if isinstance(store, RedisStore):
            with contextlib.suppress(Exception):
                client = store._client
                for batch in _batches(client.scan_iter(match=f"{store.prefix}:*", count=1000)):
                    client.unlink(*batch)
        store.close()


def _batches(keys: Iterator[bytes], size: int = 500) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key of a test's Redis key prefix (on one server or a cluster: the store's
    own client scans every node and deletes slot by slot)."""
    client = RedisUrl.parse(redis_url).connect()
    try:
        for batch in _batches(client.scan_iter(match=f"{prefix}:*", count=1000)):
            client.unlink(*batch)
    finally:
        client.close()


@contextlib.contextmanager
def redis_store_url(redis_url: str, cache_dir: Path) -> Iterator[str]:
    """The URL of an empty Redis store under a key prefix of its own, its keys deleted after."""
    prefix = f"recsvc-test-{uuid.uuid4().hex[:12]}"
    try:
        yield f"{redis_url}?prefix={prefix}&cache_dir={cache_dir}"
    finally:
        delete_prefix(redis_url, prefix)


def store_for(
    request: pytest.FixtureRequest, artifact: Artifact, root: Path
) -> contextlib.AbstractContextManager[Store]:
    """`published_store` for a fixture parametrized with "file" / "redis" / "redis-cluster" (a
    Redis store on the session's private cluster, `redis_cluster`)."""
    kind = request.param
    redis_url = None
    if kind == "redis":
        redis_url = request.getfixturevalue("redis_url")
    elif kind == "redis-cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
    return published_store(kind, artifact, root, redis_url)


STORE_KINDS = ["file", pytest.param("redis", marks=pytest.mark.redis)]
# For the store tests whose transactions and scripts a Redis Cluster constrains (one slot each):
# also on the session's private cluster. The API modules stay on STORE_KINDS (time); the cluster's
# HTTP path has its own module (tests/integration/store/test_redis_cluster.py).
STORE_KINDS_AND_CLUSTER = [*STORE_KINDS, pytest.param("redis-cluster", marks=pytest.mark.redis)]


def settings(store: Store, **overrides: object) -> Settings:
    values: dict[str, object] = {"store": store.url, "reload_seconds": 0.2}
    values.update(overrides)
    return msgspec.convert(values, Settings)


@contextlib.contextmanager
def client_for(store: Store, **overrides: object) -> Iterator[TestClient[Litestar]]:
    """The real app on `store`, started (its lifespan has loaded the active version)."""
    app = create_app(settings(store, **overrides), store=store)
    with TestClient(app) as client:
        yield client


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[scope]}"}


def answered_customers(artifact: Artifact) -> pl.DataFrame:
    """The customer table of the artifact, for picking customers by their stored state."""
    return artifact.customer_table().sort(c.CUSTOMER_ID)


def record_run(store: Store, artifact: Artifact) -> RunRecord:
    """Put the run that trained the artifact (its sealed `run.json`) in the store's run log, as
    it is after the publish, for pages that show the run log."""
    record = msgspec.json.decode((artifact.directory / "run.json").read_bytes(), type=RunRecord)
    record = msgspec.structs.replace(record, status="published", published=True)
    store.run_log().save(record.run_id, encode_record(record))
    return record


def with_experiments(
    artifact: Artifact,
    root: Path,
    results: list[ExperimentResult],
    assignments: list[Assignment],
    version: str | None = None,
) -> Artifact:
    """The artifact as its run would have written it had it measured `results`: a copy with the
    experiments' files and its manifest's file list renewed, named `version` (by default the
    artifact's own, so every other page reads the same)."""
    directory = root / f"artifact-experiments-{uuid.uuid4().hex[:8]}"
    shutil.copytree(artifact.directory, directory)
    write_experiments(directory, results, assignments)
    manifest = read_manifest(directory)
    manifest = msgspec.structs.replace(
        manifest, version=version or manifest.version, files=file_entries(directory)
    )
    (directory / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    return Artifact(directory, artifact.data, manifest.version)


# (offer, primary outcome, simulated table's holdout share, configured share, effect on conversion)
MEASURED = (
    ("apology_credit", "conversion", 0.5, 0.5, 0.08),
    ("passive_engagement", "nps", 0.5, 0.5, 0.0),
    ("ambassador_referral", "conversion", 0.5, 0.1, 0.0),  # a broken split: SRM flags it
)


def measured_experiments(
    artifact: Artifact, customers: int = 1200
) -> tuple[list[ExperimentResult], list[Assignment]]:
    """Three offers' experiments measured by the nightly run's own analysis on simulated outcome
    tables of the artifact's customers: one with a real conversion lift, one null on NPS, one
    whose split does not match its configured share; with every customer's assignment."""
    ids = answered_customers(artifact)[c.CUSTOMER_ID].to_list()[:customers]
    results, assignments = [], []
    for seed, (offer, primary, simulated, configured, lift) in enumerate(MEASURED):
        table = outcome_table(
            customers,
            seed=seed,
            holdout_share=simulated,
            conversion_lift=lift,
            covariate_strength=0.5,
            segments=("promoters", "detractors"),
        ).with_columns(pl.Series(c.CUSTOMER_ID, ids))
        outcome: Outcome = "nps" if primary == "nps" else "conversion"
        config = AnalysisConfig(
            experiment=offer, offer_id=offer, holdout_share=configured, primary=outcome
        )
        results.append(analyse(table, config))
        assignments += [
            Assignment(
                offer,
                offer,
                row[c.CUSTOMER_ID],
                row["arm"],
                row["assigned_at"].replace(tzinfo=dt.UTC),
                row["exposures"],
                row["segment"],
                configured,
            )
            for row in table.iter_rows(named=True)
        ]
    return results, assignments
