"""The store contract, run against both stores: the embedded FileStore and the RedisStore on a real
Redis (one server, and a private three-master cluster). Versions publish atomically, roll back and
prune; live NPS intake is idempotent, durable and visible to every worker; a Redis that goes away
is a fast StoreUnavailable and comes back by itself."""

from __future__ import annotations

import datetime as dt
import mmap
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest
import redis
from artifact_factory import make_artifact
from redis.crc import key_slot

from recsvc.errors import ArtifactError, ConfigError, NotFoundError
from recsvc.store import (
    FileStore,
    LiveResponse,
    RedisStore,
    Store,
    StoreUnavailable,
    VersionInfo,
    open_store,
)
from recsvc.version.artifacts import read_manifest
from tests.api_support import STORE_KINDS_AND_CLUSTER, delete_prefix
from tests.redis_cluster import LocalCluster
from tests.redis_server import RedisServer
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[3]


def response(response_id: str, customer_id: str = "c001", score: int = 9) -> LiveResponse:
    return LiveResponse(
        response_id=response_id,
        customer_id=customer_id,
        score=score,
        responded_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC),
        touchpoint="post_delivery",
        order_id="o-1",
        comment="fast delivery",
        received_at=dt.datetime(2024, 5, 1, 12, 0, 5, tzinfo=dt.UTC),
    )


def msgspec_line(value: LiveResponse) -> bytes:
    return msgspec.json.encode(value) + b"\n"


def ids(responses: Iterator[LiveResponse] | list[LiveResponse]) -> list[str]:
    return [r.response_id for r in responses]


def with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@dataclass
class Backend:
    """One store's data, opened as often as a test likes (each object is like another worker)."""

    kind: str
    url: str
    cache_dir: Path | None = None
    restart: Callable[[], None] | None = None  # crash the server and start it on the same data

    def open(self) -> Store:
        if self.kind == "file":
            return FileStore.from_url(self.url)
        # Small chunks, so even a tiny artifact spans several keys per file.
        return RedisStore(self.url, cache_dir=self.cache_dir, chunk_size=4096)


@pytest.fixture
def own_redis(redis_server: Callable[..., RedisServer]) -> RedisServer:
    """A private redis-server with an fsync-always AOF: it may be killed and restarted."""
    return redis_server(persistent=True)


@pytest.fixture
def redis_backend(redis_url: str, tmp_path: Path) -> Iterator[Backend]:
    """The test Redis, under a prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"recsvc-test-{uuid.uuid4().hex[:12]}"
    yield Backend("redis", with_query(redis_url, prefix=prefix), cache_dir=tmp_path / "cache")
    delete_prefix(redis_url, prefix)


@pytest.fixture
def cluster_backend(redis_cluster: LocalCluster, tmp_path: Path) -> Iterator[Backend]:
    """The session's private Redis Cluster, under a prefix of this test's own."""
    prefix = f"recsvc-test-{uuid.uuid4().hex[:12]}"
    url = with_query(redis_cluster.url, prefix=prefix)
    yield Backend("redis", url, cache_dir=tmp_path / "cache")
    delete_prefix(redis_cluster.url, prefix)


@pytest.fixture(params=STORE_KINDS_AND_CLUSTER)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each store: the file store, Redis on one server, Redis on a cluster."""
    if request.param == "file":
        return Backend("file", f"file://{tmp_path / 'store'}")
    name = "cluster_backend" if request.param == "redis-cluster" else "redis_backend"
    backend: Backend = request.getfixturevalue(name)
    return backend


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Like `backend`, but a Redis one runs on a private server the test may crash and restart."""
    if request.param == "file":
        return Backend("file", f"file://{tmp_path / 'store'}")
    server: RedisServer = request.getfixturevalue("own_redis")

    def crash_and_restart() -> None:
        server.kill()
        server.start()

    return Backend("redis", server.url, cache_dir=tmp_path / "cache", restart=crash_and_restart)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Callable[..., Path]:
    """Build artifact directories for versions by name, e.g. `artifacts("v1", n_customers=5)`."""

    def build(version: str, **options: int) -> Path:
        return make_artifact(tmp_path / "artifacts" / version, version, **options)

    return build


# --- model versions -----------------------------------------------------------------------------


def test_an_empty_store_has_no_active_version(store: Store) -> None:
    assert store.active_version() is None
    assert store.load_active() is None
    assert store.list_versions() == []


def _memory_mapped(array: np.ndarray) -> bool:
    """Whether the array's data lives in a file mapping (directly or through a view)."""
    node: object = array
    while node is not None:
        if isinstance(node, (np.memmap, mmap.mmap)):
            return True
        node = getattr(node, "base", None)
    return False


def test_a_published_version_is_active_listed_and_loads_memory_mapped(
    store: Store, artifacts: Callable[..., Path]
) -> None:
    source = artifacts("v1", extra_bytes=10_000)
    assert store.publish(source) == "v1"
    manifest = read_manifest(source)
    assert store.active_version() == "v1"
    assert store.list_versions() == [VersionInfo("v1", manifest.created_at, True, 0.25)]
    assert store.manifest("v1") == manifest
    model = store.load_active()
    assert model is not None and model.manifest == manifest
    assert _memory_mapped(model.arrays.item_vectors)
    assert np.array_equal(model.arrays.item_vectors, np.load(source / "item_vectors.npy"))
    assert model.customer_index("c002") == 2


def test_a_second_publish_switches_the_active_version(
    store: Store, artifacts: Callable[..., Path]
) -> None:
    store.publish(artifacts("v1"))
    store.publish(artifacts("v2", n_customers=5))
    assert store.active_version() == "v2"
    assert [(v.version, v.active) for v in store.list_versions()] == [("v1", False), ("v2", True)]
    model = store.load_active()
    assert model is not None and model.manifest.version == "v2" and model.customer_ids.size == 5


def test_publishing_without_activating_keeps_the_current_version(
    store: Store, artifacts: Callable[..., Path]
) -> None:
    store.publish(artifacts("v1"))
    store.publish(artifacts("v2"), activate=False)
    assert store.active_version() == "v1"
    assert [v.version for v in store.list_versions()] == ["v1", "v2"]


def test_an_older_version_can_be_reactivated(store: Store, artifacts: Callable[..., Path]) -> None:
    store.publish(artifacts("v1"))
    store.publish(artifacts("v2"))
    store.activate("v1")
    assert store.active_version() == "v1"
    model = store.load_active()
    assert model is not None and model.manifest.version == "v1"


def test_activating_an_unknown_version_is_not_found_and_changes_nothing(
    store: Store, artifacts: Callable[..., Path]
) -> None:
    store.publish(artifacts("v1"))
    with pytest.raises(NotFoundError, match="v9"):
        store.activate("v9")
    with pytest.raises(NotFoundError):
        store.manifest("v9")
    assert store.active_version() == "v1"


def test_prune_keeps_the_newest_versions_and_never_the_active_one(
    store: Store, artifacts: Callable[..., Path]
) -> None:
    for version in ("v1", "v2", "v3", "v4"):
        store.publish(artifacts(version), keep=10)
    store.activate("v1")
    assert store.prune(2) == ["v2"]
    assert [(v.version, v.active) for v in store.list_versions()] == [
        ("v1", True),
        ("v3", False),
        ("v4", False),
    ]
    with pytest.raises(NotFoundError):
        store.activate("v2")
    model = store.load_active()
    assert model is not None and model.manifest.version == "v1"


def test_publishing_prunes_beyond_keep(store: Store, artifacts: Callable[..., Path]) -> None:
    for version in ("v1", "v2", "v3"):
        store.publish(artifacts(version), keep=2)
    assert [v.version for v in store.list_versions()] == ["v2", "v3"]


def test_an_artifact_that_differs_from_its_manifest_is_refused(
    store: Store, artifacts: Callable[..., Path]
) -> None:
    store.publish(artifacts("v1"))
    broken = artifacts("v2")
    vectors = broken / "item_vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    vectors.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="item_vectors"):
        store.publish(broken)
    assert store.active_version() == "v1"
    assert [v.version for v in store.list_versions()] == ["v1"]


def test_a_publish_interrupted_before_the_switch_leaves_the_old_version_in_charge(
    store: Store, artifacts: Callable[..., Path]
) -> None:
    store.publish(artifacts("v1"))
    # The publisher dies after uploading every file of v2, before registering or switching.
    assert isinstance(store, FileStore | RedisStore)
    store._upload(artifacts("v2"))
    assert store.active_version() == "v1"
    assert [v.version for v in store.list_versions()] == ["v1"]
    model = store.load_active()
    assert model is not None and model.manifest.version == "v1"
    with pytest.raises(NotFoundError):
        store.activate("v2")
    # The next run publishes it properly.
    store.publish(artifacts("v2"))
    assert store.active_version() == "v2"


def test_readers_only_ever_see_complete_versions_while_publishes_run(
    store: Store, artifacts: Callable[..., Path]
) -> None:
    sources = {
        f"v{i}": artifacts(f"v{i}", n_customers=2 + i, extra_bytes=200_000) for i in range(6)
    }
    vectors = {v: np.load(path / "item_vectors.npy") for v, path in sources.items()}
    store.publish(sources["v0"])
    seen: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def read_in_a_loop() -> None:
        try:
            while not stop.is_set():
                active = store.active_version()
                assert active in sources
                assert store.manifest(active).version == active
                model = store.load_active()
                assert model is not None
                version = model.manifest.version
                assert model.customer_ids.size == 2 + int(version[1:])
                assert np.array_equal(model.arrays.item_vectors, vectors[version])
                seen.append(version)
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read_in_a_loop)
    reader.start()
    try:
        for version in list(sources)[1:]:
            reads_before = len(seen)
            store.publish(sources[version], keep=2)
            # Let the reader come round at least once more, so reads and publishes overlap.
            deadline = time.monotonic() + 10
            while len(seen) <= reads_before and not failures and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not failures, failures
    assert set(seen) <= set(sources) and len(set(seen)) >= 3
    final = store.load_active()
    assert final is not None and final.manifest.version == "v5"


# --- live NPS intake ----------------------------------------------------------------------------


def test_a_response_is_stored_once_by_response_id(store: Store) -> None:
    assert store.answers.add([response("r1")]) == [True]
    assert store.answers.add([response("r1", score=3)]) == [False]
    assert store.answers.of_customer("c001") == [response("r1")]


def test_a_batch_with_a_repeated_response_id_stores_it_once(store: Store) -> None:
    batch = [response("r1"), response("r2"), response("r1")]
    assert store.answers.add(batch) == [True, True, False]
    assert store.answers.add([]) == []
    assert ids(store.answers.of_customer("c001")) == ["r1", "r2"]


def test_a_customers_live_responses_come_oldest_first(store: Store) -> None:
    store.answers.add([response("r1", "c001"), response("r2", "c002")])
    store.answers.add([response("r3", "c001", score=2)])
    assert store.answers.of_customer("c001") == [response("r1", "c001"), response("r3", "c001", 2)]
    assert ids(store.answers.of_customer("c002")) == ["r2"]
    assert store.answers.of_customer("c404") == []


def test_every_live_response_is_listed_once_in_arrival_order(store: Store) -> None:
    store.answers.add([response("r1", "c001"), response("r2", "c002")])
    store.answers.add([response("r2", "c002"), response("r3", "c003"), response("r1")])
    assert ids(store.answers.iter_live()) == ["r1", "r2", "r3"]


def test_another_worker_sees_responses_and_ids_stored_by_this_one(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    assert ids(second.answers.of_customer("c001")) == []  # second has looked before the write
    first.answers.add([response("r1"), response("r2")])
    assert ids(second.answers.of_customer("c001")) == ["r1", "r2"]
    assert second.answers.add([response("r2"), response("r3")]) == [False, True]
    assert ids(first.answers.iter_live()) == ["r1", "r2", "r3"]


def test_concurrent_workers_accept_each_response_id_exactly_once(backend: Backend) -> None:
    """Two worker processes send the same 60 responses at the same moment, one per request."""
    script = (
        "import sys, msgspec\n"
        "from recsvc.store import LiveResponse, open_store\n"
        "store = open_store(sys.argv[1])\n"
        "store.ping()\n"
        "print('ready', flush=True)\n"
        "batch = msgspec.json.decode(sys.stdin.buffer.read(), type=list[LiveResponse])\n"
        "print(sum(store.answers.add([r])[0] for r in batch), flush=True)\n"
    )
    url = backend.url
    if backend.kind == "redis":
        url = with_query(url, cache_dir=str(backend.cache_dir))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    batch = msgspec.json.encode([response(f"r{i}", f"c{i % 7:03d}") for i in range(60)])
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
    for worker in workers:  # all started and connected: now release them together
        assert worker.stdin is not None
        worker.stdin.write(batch)
        worker.stdin.close()
    accepted = [int(worker.stdout.read()) for worker in workers if worker.stdout is not None]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    for worker in workers:
        assert worker.stdout is not None
        worker.stdout.close()
    assert sum(accepted) == 60
    stored = ids(backend.open().answers.iter_live())
    assert sorted(stored) == sorted(f"r{i}" for i in range(60))


def test_an_accepted_response_survives_a_crash_and_restart(durable_backend: Backend) -> None:
    store = durable_backend.open()
    assert store.answers.add([response("r1"), response("r2", "c002")]) == [True, True]
    if durable_backend.restart is not None:
        durable_backend.restart()  # SIGKILL: only what was fsync'd before the reply survives
    reopened = durable_backend.open()
    assert ids(reopened.answers.of_customer("c001")) == ["r1"]
    assert ids(reopened.answers.iter_live()) == ["r1", "r2"]
    assert reopened.answers.add([response("r1")]) == [False]
    # The first object keeps working too (its client reconnects by itself).
    assert store.answers.add([response("r3")]) == [True]


# --- the embedded store's append-only file ------------------------------------------------------


def test_a_line_still_being_written_is_ignored_until_complete(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.answers.add([response("r1")])
    line = msgspec_line(response("r2"))
    with store.answers.live_path.open(
        "ab"
    ) as handle:  # another process, half-way through its write
        handle.write(line[:20])
    assert ids(store.answers.of_customer("c001")) == ["r1"]
    with store.answers.live_path.open("ab") as handle:
        handle.write(line[20:])
    assert ids(store.answers.of_customer("c001")) == ["r1", "r2"]


def test_a_line_torn_by_a_crashed_writer_is_skipped_and_later_appends_survive(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    store.answers.add([response("r1")])
    with store.answers.live_path.open("ab") as handle:
        handle.write(msgspec_line(response("r2"))[:25])  # the writer died here
    assert FileStore(tmp_path).answers.add([response("r3")]) == [True]
    assert ids(store.answers.of_customer("c001")) == ["r1", "r3"]
    assert ids(FileStore(tmp_path).answers.iter_live()) == ["r1", "r3"]


def test_readers_drop_a_response_id_that_two_writers_appended_at_once(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.answers.add([response("r1")])
    with store.answers.live_path.open("ab") as handle:  # a writer that skipped the lock
        handle.write(msgspec_line(response("r1", score=0)))
    assert FileStore(tmp_path).answers.of_customer("c001") == [response("r1")]


# --- the Redis store ----------------------------------------------------------------------------


@pytest.mark.redis
def test_writes_fail_fast_while_redis_is_down_and_work_again_when_it_returns(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    store = RedisStore(own_redis.url, cache_dir=tmp_path / "cache")
    assert store.answers.add([response("r1")]) == [True]
    own_redis.kill()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.answers.add([response("r2")])
    with pytest.raises(StoreUnavailable):
        store.ping()
    assert time.monotonic() - started < 3
    own_redis.start()
    store.ping()
    assert store.answers.add([response("r2")]) == [True]
    assert ids(store.answers.of_customer("c001")) == ["r1", "r2"]


@pytest.mark.redis
def test_a_redis_that_refuses_writes_is_unavailable_rather_than_an_error(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    store = RedisStore(own_redis.url, cache_dir=tmp_path / "cache")
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("maxmemory", 1)  # full: every write is refused with OOM
    with pytest.raises(StoreUnavailable, match="refused"):
        store.answers.add([response("r1")])
    admin.config_set("maxmemory", 0)
    admin.close()
    assert store.answers.add([response("r1")]) == [True]


@pytest.mark.redis
def test_redis_keys_keep_a_version_and_a_customer_each_in_one_cluster_slot(
    redis_backend: Backend, artifacts: Callable[..., Path]
) -> None:
    store = redis_backend.open()
    assert isinstance(store, RedisStore)
    store.publish(artifacts("v1", extra_bytes=10_000))
    store.answers.add([response("r1", "c001"), response("r2", "c002")])
    client = redis.Redis.from_url(redis_backend.url.split("?")[0])
    keys = sorted(k.decode() for k in client.scan_iter(match=f"{store.prefix}:*", count=1000))
    client.close()
    model_keys = [k for k in keys if k.startswith(f"{store.prefix}:model:")]
    assert f"{store.prefix}:model:{{v:v1}}:manifest" in model_keys
    assert len(model_keys) > len(read_manifest(artifacts("v1")).files) + 2  # chunked files
    assert len({key_slot(k.encode()) for k in model_keys}) == 1
    for customer in ("c001", "c002"):
        own = [k for k in keys if f"{{c:{customer}}}" in k]
        assert own == [
            f"{store.prefix}:{{c:{customer}}}:nps",
            f"{store.prefix}:{{c:{customer}}}:nps_ids",
        ]
        assert len({key_slot(k.encode()) for k in own}) == 1
    assert {f"{store.prefix}:active", f"{store.prefix}:versions"} <= set(keys)
    assert {f"{store.prefix}:live:customers", f"{store.prefix}:live:stream"} <= set(keys)


@pytest.mark.redis
def test_activating_a_version_announces_it_on_the_events_channel(
    redis_backend: Backend, artifacts: Callable[..., Path]
) -> None:
    store = redis_backend.open()
    assert isinstance(store, RedisStore)
    client = redis.Redis.from_url(redis_backend.url.split("?")[0])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.events_channel)
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    store.publish(artifacts("v1"))
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    client.close()
    assert message is not None and message["data"] == b'{"event":"activated","version":"v1"}'


@pytest.mark.redis
def test_workers_of_one_machine_download_a_version_once_and_share_it(
    redis_backend: Backend, artifacts: Callable[..., Path]
) -> None:
    assert redis_backend.cache_dir is not None
    redis_backend.open().publish(artifacts("v1", extra_bytes=50_000))
    workers = [redis_backend.open() for _ in range(4)]
    loaded: list[Path] = []

    def load(worker: Store) -> None:
        model = worker.load_active()
        assert model is not None and _memory_mapped(model.arrays.item_vectors)
        loaded.append(Path(model.directory) / "item_vectors.npy")

    threads = [threading.Thread(target=load, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(workers[0], RedisStore)
    cache = workers[0].cache_dir
    assert len(loaded) == 4 and set(loaded) == {cache / "v1" / "item_vectors.npy"}
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == ["v1"]
    assert not list(cache.glob(".download-*"))


@pytest.mark.redis
def test_a_damaged_cached_copy_is_fetched_again_and_pruned_versions_leave_the_cache(
    redis_backend: Backend, artifacts: Callable[..., Path]
) -> None:
    store = redis_backend.open()
    assert isinstance(store, RedisStore)
    store.publish(artifacts("v1"))
    assert store.load_active() is not None
    damaged = store.cache_dir / "v1" / "item_vectors.npy"
    damaged.write_bytes(damaged.read_bytes()[:-8])
    model = store.load_active()
    assert model is not None and model.manifest.version == "v1"
    store.publish(artifacts("v2"), keep=1)
    assert store.load_active() is not None
    assert sorted(p.name for p in store.cache_dir.iterdir() if not p.name.startswith(".")) == ["v2"]


# --- open_store ---------------------------------------------------------------------------------


def test_open_store_reads_the_prefix_and_cache_dir_from_a_redis_url(tmp_path: Path) -> None:
    store = open_store(f"redis://:secret@127.0.0.1:6379/2?prefix=shop1&cache_dir={tmp_path}")
    assert isinstance(store, RedisStore)
    assert store.prefix == "shop1" and store.cache_dir == tmp_path / "shop1"
    assert "secret" not in store.url
    default = open_store("rediss://redis.example:6380/0")
    assert isinstance(default, RedisStore) and default.prefix == "recsvc"
    assert isinstance(open_store(f"file://{tmp_path}"), FileStore)


def test_open_store_reads_a_cluster_url_with_its_startup_nodes_without_connecting(
    tmp_path: Path,
) -> None:
    # Nothing listens at these addresses: opening a store must not wait for Redis.
    url = "redis+cluster://:secret@192.0.2.1:7000,192.0.2.2:7001,[2001:db8::1]:7002"
    store = open_store(f"{url}?prefix=shop1&cache_dir={tmp_path}&socket_timeout=5")
    assert isinstance(store, RedisStore) and store.cluster
    assert store.prefix == "shop1" and store.cache_dir == tmp_path / "shop1"
    assert "secret" not in store.url
    tls = open_store("rediss+cluster://redis.example:6380/0")
    assert isinstance(tls, RedisStore) and tls.cluster and tls.prefix == "recsvc"
    store.close()
    tls.close()


def test_a_cluster_no_node_answers_is_unavailable_at_once_for_every_part_of_the_store(
    tmp_path: Path,
) -> None:
    ports = [free_port() for _ in range(2)]  # nobody listens
    store = open_store(
        "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports),
        cache_dir=str(tmp_path),
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable while reading the active version"):
        store.active_version()
    with pytest.raises(StoreUnavailable):
        store.answers.add([response("r1")])
    with pytest.raises(StoreUnavailable), store.training_lock():
        pass
    with pytest.raises(StoreUnavailable):
        store.run_log().records()
    assert time.monotonic() - started < 2
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/store",
        "redis://127.0.0.1:6379/0?prefix=a{b}",
        "redis://127.0.0.1:6379/0?colour=blue",
        "redis+cluster://127.0.0.1:7000/1",  # a cluster has only database 0
        "redis+cluster://127.0.0.1:7000?db=2",
        "redis+cluster://127.0.0.1:7000,:7001",
        "redis+cluster://127.0.0.1:port",
        "redis+cluster://127.0.0.1:7000?colour=blue",
        "redis+cluster://127.0.0.1:7000?socket_timeout=soon",
        "file://",
    ],
)
def test_open_store_refuses_urls_it_cannot_serve(url: str) -> None:
    with pytest.raises(ConfigError, match="store URL"):
        open_store(url)


# --- compaction: live answers a published version holds move to the archive ----------------------


def test_compaction_moves_exactly_the_given_responses_from_live_to_the_archive(
    backend: Backend,
) -> None:
    store, other_worker = backend.open(), backend.open()
    store.answers.add([response("r1", "c001"), response("r2", "c002"), response("r3", "c001")])
    store.answers.add([response("r4", "c003")])
    assert ids(other_worker.answers.iter_live()) == ["r1", "r2", "r3", "r4"]  # indexed before

    assert store.answers.compact([response("r1", "c001"), response("r2", "c002")]) == 2

    for worker in (store, other_worker, backend.open()):
        assert ids(worker.answers.iter_live()) == ["r3", "r4"]
        assert ids(worker.answers.of_customer("c001")) == ["r3"]
        assert worker.answers.of_customer("c002") == []
        assert list(worker.answers.iter_archived()) == [
            response("r1", "c001"),
            response("r2", "c002"),
        ]
    # Ids still live stay exactly idempotent; new answers go on being taken by every worker.
    assert other_worker.answers.add([response("r3", "c001"), response("r5", "c002")]) == [
        False,
        True,
    ]
    assert ids(store.answers.iter_live()) == ["r3", "r4", "r5"]


def test_compacting_answers_no_longer_live_changes_nothing(store: Store) -> None:
    store.answers.add([response("r1"), response("r2")])
    assert store.answers.compact([response("r1")]) == 1
    assert store.answers.compact([response("r1"), response("never-stored")]) == 0
    assert store.answers.compact([]) == 0
    assert ids(store.answers.iter_live()) == ["r2"]
    assert ids(store.answers.iter_archived()) == ["r1"]


def test_the_archive_keeps_every_compaction_in_order_and_each_response_id_once(
    store: Store,
) -> None:
    """A compaction killed after its archive write leaves the answers in both places; the next
    one archives them again. Readers of the archive see each response id once, first copy first."""
    store.answers.add([response("r1"), response("r2", "c002")])
    assert store.answers.compact([response("r1")]) == 1
    # r1 sent again after it left live (the intake asks the active version, not the store), with
    # another score: the archived first copy wins.
    assert store.answers.add([response("r1", score=0)]) == [True]
    assert store.answers.compact([response("r1"), response("r2", "c002")]) == 2
    assert list(store.answers.iter_archived()) == [response("r1"), response("r2", "c002")]
    assert list(store.answers.iter_live()) == []
    assert store.answers.of_customer("c001") == [] and store.answers.of_customer("c002") == []


def test_a_writer_waiting_for_the_live_file_during_a_compaction_appends_to_the_new_file(
    tmp_path: Path,
) -> None:
    """The compaction replaces the live file while it holds its lock; a writer that opened the old
    file and waited for the lock must not append to the file no longer at the path."""
    compactor, writer = FileStore(tmp_path), FileStore(tmp_path)
    compactor.answers.add([response("r1"), response("r2")])
    archived, release = threading.Event(), threading.Event()
    original = compactor.answers._append_archive

    def slow_archive(lines: list[bytes]) -> None:
        original(lines)
        archived.set()
        release.wait(10)  # the live file's lock is held meanwhile

    compactor.answers._append_archive = slow_archive  # type: ignore[method-assign]
    compaction = threading.Thread(target=compactor.answers.compact, args=([response("r1")],))
    compaction.start()
    assert archived.wait(10)
    inode = compactor.answers.live_path.stat().st_ino
    accepted: list[list[bool]] = []
    adding = threading.Thread(target=lambda: accepted.append(writer.answers.add([response("r3")])))
    adding.start()
    _wait_for_a_blocked_flock(inode)
    release.set()
    compaction.join(10)
    adding.join(10)
    assert accepted == [[True]]
    assert compactor.answers.live_path.stat().st_ino != inode
    for worker in (compactor, writer, FileStore(tmp_path)):
        assert ids(worker.answers.iter_live()) == ["r2", "r3"]
        assert ids(worker.answers.iter_archived()) == ["r1"]


def _wait_for_a_blocked_flock(inode: int) -> None:
    """Until some process waits for an flock on that inode (Linux: a "->" line in /proc/locks)."""
    deadline = time.monotonic() + 5
    locks = Path("/proc/locks")
    while time.monotonic() < deadline:
        if not locks.exists():  # not Linux: give the writer time to reach its flock
            time.sleep(0.5)
            return
        for line in locks.read_text().splitlines():
            if line.split()[1] == "->" and line.split()[6].endswith(f":{inode}"):
                return
        time.sleep(0.01)
    raise AssertionError("the writer never waited for the live file's lock")


def test_a_worker_that_last_looked_two_compactions_ago_reads_the_live_file_afresh(
    tmp_path: Path,
) -> None:
    """Each compaction writes a new live file, which may get the inode number of a file replaced
    before (ext4 hands freed inodes out again), and be bigger than what an idle worker read: that
    worker must not take it for the file it knew and read on from its old offset."""
    idle, busy = FileStore(tmp_path), FileStore(tmp_path)
    busy.answers.add([response("r0")])
    assert ids(idle.answers.iter_live()) == ["r0"]
    busy.answers.add([response("r1"), response("r2")])
    busy.answers.compact([response("r0")])
    busy.answers.add([response("r3")])
    busy.answers.compact([response("r1")])
    assert ids(idle.answers.iter_live()) == ["r2", "r3"]
    # Whether the kernel reused the inode above is up to it; this is the case where it did: a
    # different, longer file under the inode number the idle worker indexed.
    inode = idle.answers.live_path.stat().st_ino
    with idle.answers.live_path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(b"".join(msgspec_line(response(f"s{i}", "c002")) for i in range(3)))
    assert idle.answers.live_path.stat().st_ino == inode
    assert ids(idle.answers.iter_live()) == ["s0", "s1", "s2"]
    assert ids(idle.answers.of_customer("c002")) == ["s0", "s1", "s2"]
    assert idle.answers.of_customer("c001") == []


def test_the_archive_skips_a_line_torn_by_a_killed_compaction(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.answers.add([response("r1"), response("r2")])
    store.answers.compact([response("r1")])
    with store.answers.archive_path.open("ab") as handle:  # the next compaction died mid-write
        handle.write(msgspec_line(response("r2"))[:30])
    assert ids(store.answers.iter_archived()) == ["r1"]
    assert store.answers.compact([response("r2")]) == 1
    assert ids(FileStore(tmp_path).answers.iter_archived()) == ["r1", "r2"]
    assert list(store.answers.iter_live()) == []


@pytest.mark.redis
def test_redis_compaction_cleans_the_customers_keys_the_customer_set_and_the_stream(
    redis_backend: Backend,
) -> None:
    store = redis_backend.open()
    assert isinstance(store, RedisStore)
    store.answers.add([response("r1", "c001"), response("r2", "c002"), response("r3", "c002")])
    store.answers.add([response("r1", "c001")])  # a repeat: a second stream entry
    assert store.answers.compact([response("r1", "c001"), response("r2", "c002")]) == 2
    client = redis.Redis.from_url(redis_backend.url.split("?")[0])
    try:
        keys = {k.decode() for k in client.scan_iter(match=f"{store.prefix}:*", count=1000)}
        assert not any("{c:c001}" in k for k in keys), "an emptied customer leaves no keys"
        assert client.smembers(f"{store.prefix}:live:customers") == {b"c002"}
        assert client.smembers(f"{store.prefix}:{{c:c002}}:nps_ids") == {b"r3"}
        assert client.xlen(f"{store.prefix}:live:stream") == 1
        archive = [k for k in keys if k.startswith(f"{store.prefix}:{{live}}:archive")]
        assert len(archive) >= 2 and len({key_slot(k.encode()) for k in archive}) == 1
    finally:
        client.close()
    assert ids(store.answers.iter_archived()) == ["r1", "r2"]
