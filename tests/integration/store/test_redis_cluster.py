"""The Redis store on a Redis Cluster (the session's three private masters, `redis_cluster`),
along the paths a user takes: the trained version published into the cluster and loaded back by
another machine; the real app serving recommendations and offers from it over HTTP; NPS answers
and order lines taken in over HTTP and seen by the next request; a privacy erasure; the console's
sign-in kept in the cluster; the training lock, the run log and the training CLI taking a cluster
URL; an activation heard by subscribers on every node; and a node going down, which degrades the
service instead of failing it, until it is back. The store contract, real training runs with
their compaction, the erasure log, the outbox and the membership journal also run on the cluster
(test_store.py and its neighbours)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import msgspec
import polars as pl
import pytest
import redis
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.errors import LockHeld
from recsvc.store import RedisStore
from recsvc.store.redis_live import as_text
from recsvc.store.runs import read_records
from tests.api_support import (
    API_KEYS,
    KEYS,
    Artifact,
    client_for,
    delete_prefix,
    published_store,
    record_run,
)
from tests.integration.api.test_api_faults import wait_for
from tests.integration.api.test_api_intake import answer
from tests.integration.api.test_api_orders import customers, kinds, recommended
from tests.integration.api.test_api_orders import line as order_line
from tests.integration.api.test_console import sign_in
from tests.integration.store.test_store import response
from tests.redis_cluster import LocalCluster

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def store(
    redis_cluster: LocalCluster, artifact: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisStore]:
    """The session's trained version published into the cluster, under a prefix of its own."""
    root = tmp_path_factory.mktemp("cluster-store")
    with published_store("redis-cluster", artifact, root, redis_cluster.url) as opened:
        assert isinstance(opened, RedisStore) and opened.cluster
        yield opened


@pytest.fixture(scope="module")
def client(store: RedisStore) -> Iterator[TestClient[Litestar]]:
    """The real app on the cluster store (no API keys: every scope open)."""
    with client_for(store) as test_client:
        yield test_client


def keys_of(store: RedisStore, pattern: str) -> list[str]:
    """The store's keys matching `pattern` (after the prefix), from every node."""
    return [as_text(k) for k in store._client.scan_iter(match=f"{store.prefix}:{pattern}")]


# --- versions ----------------------------------------------------------------------------------


def test_a_version_published_into_the_cluster_is_active_and_another_machine_loads_it(
    store: RedisStore, artifact: Artifact, tmp_path: Path
) -> None:
    assert store.active_version() == artifact.version
    assert [(v.version, v.active) for v in store.list_versions()] == [(artifact.version, True)]
    # Another machine: its own cache, so it downloads every file from the cluster and checks it.
    other = RedisStore(store.url, prefix=store.prefix, cache_dir=tmp_path / "cache")
    try:
        model = other.load_active()
        assert model is not None and model.manifest.version == artifact.version
        assert Path(model.directory).is_relative_to(tmp_path / "cache")
    finally:
        other.close()


def test_one_intake_batch_for_customers_on_every_node_is_stored_and_read_back(
    store: RedisStore, redis_cluster: LocalCluster
) -> None:
    batch = [response(f"spread-{i}", f"SPREAD-{i:02d}") for i in range(30)]
    assert store.answers.add(batch) == [True] * 30
    nodes = {
        redis_cluster.node_of(store.answers.keys.of_customer(r.customer_id)[0]).port for r in batch
    }
    assert len(nodes) == 3, "thirty customers' keys land on every master"
    for record in batch:
        assert [r.response_id for r in store.live_of(record.customer_id).answers] == [
            record.response_id
        ]


# --- the service over HTTP -----------------------------------------------------------------------


def test_recommendations_and_offers_are_served_from_the_cluster(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    customer = str(customers(artifact).filter(pl.col(ct.ORDER_COUNT) >= 3)[c.CUSTOMER_ID][0])
    reply = client.get(f"/v1/customers/{customer}/recommendations", params={"limit": 10})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model_version"] == artifact.version
    assert len(reply.json()["items"]) == 10
    assert kinds(client, customer)
    assert client.get("/health/ready").json()["status"] == "ready"


def test_a_detractor_answer_taken_in_turns_the_next_offers_into_a_recovery(
    client: TestClient[Litestar], store: RedisStore, artifact: Artifact
) -> None:
    promoters = customers(artifact).filter(pl.col(ct.NPS_CATEGORY) == "promoter")
    customer = str(promoters[c.CUSTOMER_ID][0])
    assert "recovery" not in kinds(client, customer)
    posted = answer("cluster-nps-1", customer, 2, comment="The parcel arrived two weeks late")
    first = client.post("/v1/nps-responses", json=posted)
    assert first.status_code == 202 and first.json()["accepted"] == 1
    again = client.post("/v1/nps-responses", json=posted)
    assert again.json()["duplicates"] == 1, "idempotent by response id on the cluster too"
    assert kinds(client, customer)[0] == "recovery"
    assert [r.response_id for r in store.answers.of_customer(customer)] == ["cluster-nps-1"]


def test_an_order_line_taken_in_leaves_the_next_suggestions(
    client: TestClient[Litestar], store: RedisStore, artifact: Artifact
) -> None:
    customer = str(customers(artifact)[c.CUSTOMER_ID][11])
    top = recommended(client, customer)[0]
    posted = client.post("/v1/orders", json=order_line("cluster-line-1", customer, top))
    assert posted.status_code == 202 and posted.json()["accepted"] == 1
    assert top not in recommended(client, customer)
    assert [r.line_id for r in store.orders.of_customer(customer)] == ["cluster-line-1"]


def test_a_privacy_erasure_removes_the_customers_live_records_from_the_cluster(
    client: TestClient[Litestar], store: RedisStore
) -> None:
    customer = "CLUSTER-ERASED-1"
    posted = answer("cluster-erased-1", customer, 9)
    assert client.post("/v1/nps-responses", json=posted).status_code == 202
    assert client.delete(f"/v1/customers/{customer}").status_code == 202
    assert store.answers.of_customer(customer) == []
    assert not keys_of(store, f"{{c:{customer}}}:*")
    assert [e.state for e in store.erasures.entries()][-1] == "completed"


def test_a_console_sign_in_is_kept_in_the_cluster(store: RedisStore) -> None:
    with client_for(store, api_keys=API_KEYS) as client:
        signed_in = sign_in(client, KEYS["export"])
        assert signed_in.status_code == 303  # type: ignore[attr-defined]
        assert client.get("/console", follow_redirects=False).status_code == 200
    assert len(keys_of(store, "console-sessions:*")) == 1


# --- the training job's side ---------------------------------------------------------------------


def test_the_training_lock_admits_one_holder_and_the_run_log_keeps_records(
    store: RedisStore, artifact: Artifact
) -> None:
    other = RedisStore(store.url, prefix=store.prefix, cache_dir=store.cache_dir)
    try:
        with (
            store.training_lock(),
            pytest.raises(LockHeld, match="another training run holds the lock"),
            other.training_lock(),
        ):
            pass
        with other.training_lock():
            pass  # released: the next run takes it
        record = record_run(store, artifact)
        assert [r.run_id for r in read_records(other.run_log())] == [record.run_id]
    finally:
        other.close()


def test_the_training_cli_takes_a_cluster_url_and_lists_its_runs(
    store: RedisStore, redis_cluster: LocalCluster, artifact: Artifact
) -> None:
    record = record_run(store, artifact)
    url = f"{redis_cluster.url}?prefix={store.prefix}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECSVC_")}
    listed = subprocess.run(
        [sys.executable, "-m", "training", "runs", "--store", url, "--json"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert listed.returncode == 0, listed.stderr
    assert [msgspec.json.decode(line)["run_id"] for line in listed.stdout.splitlines()] == [
        record.run_id
    ]


def test_an_activation_is_heard_by_subscribers_on_every_node(
    store: RedisStore, redis_cluster: LocalCluster, artifact: Artifact
) -> None:
    # One plain subscriber per node (PUBLISH reaches every node of a cluster), and one through
    # the cluster client, as a service machine would listen.
    clients = [redis.Redis(port=node.port) for node in redis_cluster.nodes]
    listeners = [client.pubsub(ignore_subscribe_messages=True) for client in clients]
    listeners.append(store._client.pubsub(ignore_subscribe_messages=True))
    try:
        for listener in listeners:
            listener.subscribe(store.events_channel)
            listener.get_message(timeout=1)  # the subscribe confirmation
        store.activate(artifact.version)
        expected = msgspec.json.encode({"event": "activated", "version": artifact.version})
        for listener in listeners:
            message = wait_for(partial(listener.get_message, timeout=0.2), 5, "the message")
            assert message["data"] == expected
    finally:
        for listener in listeners:
            listener.close()
        for client in clients:
            client.close()


# --- a node going down ---------------------------------------------------------------------------


def test_a_node_going_down_degrades_the_service_and_it_recovers_when_the_node_is_back(
    redis_cluster: LocalCluster, artifact: Artifact, tmp_path: Path
) -> None:
    down = redis_cluster.nodes[-1]
    # A prefix whose active pointer lives on the node that goes down (so every poll of it fails),
    # and a customer whose live records do too.
    prefix = next(
        p
        for p in (f"recsvc-test-{uuid.uuid4().hex[:12]}" for _ in range(1000))
        if redis_cluster.node_of(f"{p}:active") is down
    )
    customer = next(
        cid
        for cid in (f"NODE-DOWN-{i}" for i in range(1000))
        if redis_cluster.node_of(f"{prefix}:{{c:{cid}}}:nps") is down
    )
    known = str(customers(artifact)[c.CUSTOMER_ID][0])
    store = RedisStore(redis_cluster.url, prefix=prefix, cache_dir=tmp_path / "cache")
    try:
        store.publish(artifact.directory)
        with client_for(store, reload_seconds=0.1) as client:
            down.kill()
            try:
                assert recommended(client, known), "served from the model in memory"
                assert recommended(client, customer)
                refused = client.post("/v1/nps-responses", json=answer("node-down-1", customer, 3))
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"] == "unavailable"
                wait_for(
                    lambda: client.get("/health/ready").json()["status"] == "degraded",
                    5,
                    "readiness to report degraded",
                )
            finally:
                down.start()  # same port and cluster config, empty (no persistence)
                redis_cluster.wait_until_ok()
            wait_for(
                lambda: client.get("/health/ready").json()["status"] == "ready",
                10,
                "readiness to recover",
            )
            accepted = client.post("/v1/nps-responses", json=answer("node-down-1", customer, 3))
            assert accepted.status_code == 202 and accepted.json()["accepted"] == 1
            assert [r.response_id for r in store.answers.of_customer(customer)] == ["node-down-1"]
    finally:
        store.close()
        delete_prefix(redis_cluster.url, prefix)
