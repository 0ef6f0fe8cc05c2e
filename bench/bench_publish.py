"""Publish time of a 1M-customer version, to the embedded store and to Redis, and the reload pause
clients see while the service swaps to it.

    uv run python bench/bench_publish.py                      # 1,000,000 customers
    uv run python bench/bench_publish.py --customers 100000

The version is a real training run's artifact (one epoch, not published), built once and cached
under var/bench/publish/ (the demo data too: generating and training 1M customers takes a while
the first time). Then:

1. file store: `publish` into a fresh store (copy, hash check, fsync, rename, pointer switch);
2. Redis: `publish` into a private redis-server with AOF (everysec, as docker-compose runs it),
   then the first load on a machine with an empty cache (download + check), what a new replica or
   a replica's first reload pays;
3. reload pause: `python -m recsvc serve --workers 2` on the file store, hammered by client threads
   asking for recommendations; a second version is published while they run. Latency p50/p99/max
   of the requests started in steady state, during the publish (copying) and in the swap window
   (from the pointer switch until every worker answers from the new version, plus a second), and
   the count of failed requests. Also the in-process time to open a version (what each worker does
   in a background thread before the swap).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import numpy as np
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "var" / "bench" / "publish"

from recsvc.store import FileStore, RedisStore  # noqa: E402
from recsvc.version.artifacts import MANIFEST, Manifest, load_model, read_manifest  # noqa: E402
from recsvc.version.opened import open_version  # noqa: E402


def artifact_for(customers: int) -> Path:
    """A real artifact of `customers` customers (cached)."""
    from training.config import load_config
    from training.run.pipeline import run_pipeline
    from training.sources.generate import generate

    final = CACHE / f"artifact-{customers}"
    if (final / MANIFEST).is_file():
        return final
    data = CACHE / f"data-{customers}"
    if not (data / "orders.parquet").exists():
        print(f"generating {customers:,} demo customers into {data} (once)", flush=True)
        generate(data, customers, seed=42, show_progress=True)
    print(f"training one epoch on {customers:,} customers for the artifact (once)", flush=True)
    runs = CACHE / f"runs-{customers}"
    record = run_pipeline(
        data,
        store=f"file://{CACHE / f'scratch-{customers}'}",
        config=load_config(epochs=1),
        publish=False,
        runs_dir=runs,
    )
    shutil.rmtree(final, ignore_errors=True)
    shutil.move(runs / record.run_id / "artifact", final)
    return final


def second_version(artifact: Path, into: Path) -> Path:
    """The same files under another version name (the manifest is not in its own file list)."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(artifact, into)
    manifest = read_manifest(into)
    renamed = msgspec.structs.replace(manifest, version=manifest.version + "-b")
    (into / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(renamed)))
    msgspec.json.decode((into / MANIFEST).read_bytes(), type=Manifest)
    return into


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def drop_page_cache_hint(directory: Path) -> None:
    """Evict the artifact's pages where the OS lets us, so the copy reads from disk like a fresh run."""
    for path in directory.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_file_store(artifact: Path, work: Path) -> float:
    store = FileStore(work / "file-store")
    drop_page_cache_hint(artifact)
    started = time.perf_counter()
    store.publish(artifact)
    seconds = time.perf_counter() - started
    assert store.active_version() == read_manifest(artifact).version
    return seconds


@contextmanager
def redis_server(work: Path, fsync: str = "everysec") -> Iterator[str]:
    """A private redis-server on a free port with AOF (`appendfsync` as given; everysec is how
    docker-compose runs it), its data under `work`; its URL while the block runs."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    data = work / f"redis-{fsync}-{port}"
    data.mkdir(parents=True)
    process = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)),
            *("--appendonly", "yes", "--appendfsync", fsync, "--save", ""),
            *("--logfile", str(data / "redis.log")),
        ]
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.02)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def bench_redis(artifact: Path, work: Path) -> tuple[float, float, int]:
    """Publish seconds, first-load seconds on an empty cache, Redis memory used (bytes)."""
    with redis_server(work) as url:
        publisher = RedisStore(url, cache_dir=work / "publisher-cache")
        drop_page_cache_hint(artifact)
        started = time.perf_counter()
        publisher.publish(artifact)
        publish_seconds = time.perf_counter() - started
        replica = RedisStore(url, cache_dir=work / "replica-cache")
        started = time.perf_counter()
        model = replica.load_active()
        load_seconds = time.perf_counter() - started
        assert model is not None
        client = redis.Redis.from_url(url)
        memory = int(client.info("memory")["used_memory"])
        client.close()
        publisher.close()
        replica.close()
        return publish_seconds, load_seconds, memory


def time_open_version(artifact: Path) -> float:
    started = time.perf_counter()
    open_version(load_model(artifact))
    return time.perf_counter() - started


def percentiles(latencies: list[float]) -> str:
    if not latencies:
        return "no requests"
    ms = np.array(latencies) * 1000
    return (
        f"{len(ms):>6,} requests  p50 {np.percentile(ms, 50):7.1f} ms  "
        f"p99 {np.percentile(ms, 99):7.1f} ms  max {ms.max():7.1f} ms"
    )


def bench_reload(artifact: Path, second: Path, work: Path, threads: int, steady: float) -> None:
    store_dir = work / "serve-store"
    store = FileStore(store_dir)
    store.publish(artifact)
    old, new = read_manifest(artifact).version, read_manifest(second).version
    customers = np.load(artifact / "customer_ids.npy", mmap_mode="r")
    rng = np.random.default_rng(0)
    sample = [str(customers[i]) for i in rng.integers(0, customers.size, size=2_000)]
    port = free_port()
    env = {
        **os.environ,
        "RECSVC_STORE": f"file://{store_dir}",
        "RECSVC_RELOAD_SECONDS": "0.5",
        "RECSVC_LOG_LEVEL": "warning",
    }
    env.pop("RECSVC_API_KEYS", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "recsvc", "serve", "--port", str(port), "--workers", "2"],
        cwd=work,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("the service did not become ready")
        stop = threading.Event()
        records: list[tuple[float, float, str]] = []  # start, latency, version
        errors: list[str] = []

        def hammer(n: int) -> None:
            with httpx.Client(timeout=30) as client:
                i = n
                while not stop.is_set():
                    customer = sample[i % len(sample)]
                    i += threads
                    started = time.monotonic()
                    try:
                        reply = client.get(f"{base}/v1/customers/{customer}/recommendations")
                        reply.raise_for_status()
                        version = reply.json()["model_version"]
                    except (httpx.HTTPError, ValueError) as exc:
                        errors.append(repr(exc))
                        continue
                    records.append((started, time.monotonic() - started, version))

        workers = [threading.Thread(target=hammer, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        time.sleep(1.0)  # warm-up: page cache, connection pools
        warm = time.monotonic()
        time.sleep(steady)
        publish_started = time.monotonic()
        store.publish(second)
        switched = time.monotonic()
        deadline = switched + 60
        while time.monotonic() < deadline:
            recent = [v for s, _, v in records[-4 * threads :] if s > switched]
            if len(recent) >= 4 * threads and all(v == new for v in recent):
                break
            time.sleep(0.05)
        swapped = time.monotonic()
        time.sleep(1.0)
        window_end = time.monotonic()
        time.sleep(steady / 2)
        stop.set()
        for worker in workers:
            worker.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    def window(start: float, end: float) -> list[float]:
        return [latency for s, latency, _ in records if start <= s < end]

    versions = {v for _, _, v in records}
    print(
        f"\nreload pause seen by clients ({threads} client threads, 2 workers, reload poll 0.5 s)"
    )
    print(f"  steady state        {percentiles(window(warm, publish_started))}")
    print(f"  during the publish  {percentiles(window(publish_started, switched))}")
    print(f"  swap window         {percentiles(window(switched, window_end))}")
    print(f"  after               {percentiles(window(window_end, float('inf')))}")
    print(
        f"  publish (file store, while serving) {switched - publish_started:.2f}s; every "
        f"worker on the new version {swapped - switched:.2f}s after the switch"
    )
    print(f"  failed requests: {len(errors)}; versions answered: {sorted(versions)}")
    assert versions <= {old, new}, versions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=4, help="client threads for the reload")
    parser.add_argument("--steady", type=float, default=5.0, help="seconds of steady state")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-reload", action="store_true")
    args = parser.parse_args()

    artifact = artifact_for(args.customers)
    manifest = read_manifest(artifact)
    print(
        f"version {manifest.version}: {manifest.n_customers:,} customers, "
        f"{manifest.n_items:,} products, {len(manifest.files)} files, "
        f"{size_of(artifact) / 2**20:,.0f} MiB"
    )
    print(f"opening the version (load + profiles, per worker): {time_open_version(artifact):.2f}s")
    with tempfile.TemporaryDirectory(prefix="bench-publish-", dir=CACHE) as scratch:
        work = Path(scratch)
        print(f"publish to the file store: {bench_file_store(artifact, work):.2f}s")
        if not args.skip_redis:
            publish, load, memory = bench_redis(artifact, work)
            print(
                f"publish to Redis (AOF everysec): {publish:.2f}s; first load on a machine "
                f"with an empty cache: {load:.2f}s; Redis memory {memory / 2**20:,.0f} MiB"
            )
        if not args.skip_reload:
            second = second_version(artifact, work / "second")
            bench_reload(artifact, second, work, args.threads, args.steady)


if __name__ == "__main__":
    main()
