"""The storefront's recommendations endpoint at the limit, against a bare Litestar app on the fastest
ASGI server here, on the file store and on Redis, and how fast a live NPS answer reaches every
worker of every replica.

    uv run python bench/bench_service.py
    uv run python bench/bench_service.py --artifact DIR --duration 8 --rounds 5

The issue's targets (printed, not asserted), one worker, 32 connections, wrk on loopback:

- requests/s at least 0.6x a bare Litestar app (no middleware, one route returning a constant
  10-item msgspec body; bench/bare_app.py) on the fastest server measured here (granian and
  uvicorn are both tried; the faster one is the baseline);
- p99 at most 1.5x the bare app's p99 in the same closed loop, and under 10 ms under a paced load
  at half of our capacity;
- the Redis store at least 0.8x the file store's requests/s, p99 at most 1.5x the file store's;
- a live NPS answer reflected on every worker of two replicas (2 workers each) within 100 ms of its
  202, on Redis; and on every worker of one machine on the file store;
- the same at 1M customers and 50k products (the default artifact, built by bench_publish.py).

How:

1. `recommend()` per path in process (median over random customers); then the artifact (default
   `var/bench/publish/artifact-1000000`) is published into a fresh file
   store and into a private redis-server with an AOF (everysec, as docker-compose runs it);
2. servers, each on CPU 0 when `--pin` (the default on 2+ cores), wrk on CPU 1: the bare app on
   granian and on uvicorn (uvloop + httptools), then our service as a user starts it
   (`python -m recsvc serve --workers 1`, with an API key: the path a deployment takes) on each
   store;
3. closed loop, 32 connections, random customers C00000001..C01000000: the bare app (fastest
   server), the file store, Redis, in turn, `--rounds` rounds (medians: the machine is shared);
   requests/s, p50/p99, and the server's CPU time per request (all its processes, from /proc:
   what the load generator sharing the machine does not inflate);
   after each file-store run, the same server answers anonymous carts of `--cart-size` random
   bought products (`POST /v1/recommendations`, bench/wrk_carts.lua), printed against the known
   customers' page (the issue asks for a cart's latency close to it);
4. paced: the same 32 connections offering half of the file store's closed-loop capacity;
5. live answers: per trial, a customer not yet a detractor answers 0 through one replica; 8
   connections per replica poll the customer's offers until `nps_category` says detractor; the
   trial's time is the slowest connection's, from the 202;
6. resident memory of each worker with 1 and 4 workers (the model's files are mapped and shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_order_intake import (  # noqa: E402
    ensure_wrk,
    errors_of,
    start,
    stop,
    tree_cpu_seconds,
    wait_for,
)
from bench_publish import artifact_for, free_port, redis_server  # noqa: E402

from recsvc.store import FileStore, RedisStore  # noqa: E402
from recsvc.version.artifacts import LoadedModel  # noqa: E402

WORK = ROOT / "var" / "bench" / "service"
DEFAULT_ARTIFACT = ROOT / "var" / "bench" / "publish" / "artifact-1000000"
LUA = BENCH / "wrk_recommendations.lua"
CART_LUA = BENCH / "wrk_carts.lua"
PRODUCTS_FILE = WORK / "cart-products.txt"  # the version's bought products, for wrk_carts.lua
RECS_PATH = "/v1/customers/C%08d/recommendations"
KEY = "bench-storefront-key-0123456789"  # what a storefront holds: `recommend` only
OPERATOR_KEY = "bench-operator-key-0123456789"  # posts answers, reads the NPS category
API_KEYS = json.dumps({KEY: ["recommend"], OPERATOR_KEY: ["recommend", "export", "ingest"]})
PINNED: dict[str, list[str]] = {"server": [], "client": []}


# --- servers ------------------------------------------------------------------------------------


def bare(server: str, port: int) -> subprocess.Popen[bytes]:
    """bench/bare_app.py on `server` (granian or uvicorn), one worker, HTTP/1.1, uvloop."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), env.get("PYTHONPATH")]))
    bin_dir = Path(sys.executable).parent
    common = ("--host", "127.0.0.1", "--port", str(port))
    if server == "granian":
        command = [
            str(bin_dir / "granian"),
            *("--interface", "asgi", "--factory", *common, "--workers", "1"),
            *("--loop", "uvloop", "--http", "1", "--no-ws", "--log-level", "warning"),
            "bare_app:create_bare_app",
        ]
    else:
        command = [
            str(bin_dir / "uvicorn"),
            *("--factory", "bare_app:create_bare_app", *common),
            *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
            *("--log-level", "warning"),
        ]
    log = WORK / f"bare-{server}-{port}.log"
    proc = start([*PINNED["server"], *command], env, log)
    wait_for(proc, f"http://127.0.0.1:{port}/health/ready", log)
    return proc


def ours(store_url: str, port: int, workers: int, cache: Path) -> subprocess.Popen[bytes]:
    """`recsvc serve`, as a user starts it, with an API key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSVC_")}
    env |= {
        "RECSVC_STORE": store_url,
        "RECSVC_API_KEYS": API_KEYS,
        "RECSVC_LOG_LEVEL": "warning",
        "RECSVC_CACHE_DIR": str(cache),
        "RECSVC_RELOAD_SECONDS": "5",
    }
    log = WORK / f"serve-{port}.log"
    command = [sys.executable, "-m", "recsvc", "serve", "--port", str(port)]
    proc = start([*PINNED["server"], *command, "--workers", str(workers)], env, log)
    wait_for(proc, f"http://127.0.0.1:{port}/health/ready", log, timeout=600)
    deadline = time.monotonic() + 600
    while httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"port {port} not ready; see {log}")
        time.sleep(0.5)
    return proc


@contextmanager
def running(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        stop(proc)


# --- load ---------------------------------------------------------------------------------------


def wrk(
    port: int, connections: int, seconds: float, pause_ms: float = 0, cart_size: int = 0
) -> dict[str, float]:
    """One wrk run on random customers (`cart_size`: anonymous carts of that many random bought
    products instead); adds the server's CPU microseconds per request."""
    base = f"http://127.0.0.1:{port}"
    pid = SERVER_PIDS[port]
    cpu_before = tree_cpu_seconds(pid)
    script = (
        ("-s", str(CART_LUA), base, "--", str(PRODUCTS_FILE), str(cart_size))
        if cart_size
        else ("-s", str(LUA), base, "--", RECS_PATH, "1000000", f"{pause_ms:.1f}", "1")
    )
    result = subprocess.run(
        [
            *PINNED["client"],
            *("wrk", f"-c{connections}", "-t1", f"-d{seconds:g}s", "--timeout", "5s"),
            *script,
            f"Bearer {KEY}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return wrk_result(result, tree_cpu_seconds(pid) - cpu_before)


def wrk_result(result: subprocess.CompletedProcess[str], cpu_seconds: float) -> dict[str, float]:
    """The WRKJSON line `wrk_recommendations.lua` prints, with the server's CPU per request."""
    for line in result.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
            data["cpu_us"] = cpu_seconds / max(data["requests"], 1) * 1e6
            return data
    raise SystemExit(f"no WRKJSON line from wrk:\n{result.stdout}\n{result.stderr}")


SERVER_PIDS: dict[int, int] = {}


def show(name: str, r: dict[str, float]) -> str:
    return (
        f"  {name:34s} {r['rps']:8.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
        f"p99 {r['p99_us'] / 1000:6.2f} ms  cpu {r['cpu_us']:6.1f} us/req  errors {errors_of(r)}"
    )


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def write_cart_products(model: LoadedModel) -> None:
    """The version's products that somebody bought, one id per line, for wrk_carts.lua."""
    import numpy as np

    bought = np.flatnonzero(np.diff(model.item_buyers[0]))
    PRODUCTS_FILE.write_text("\n".join(model.item_id_list[i] for i in bought.tolist()) + "\n")


def in_process_paths(artifact: Path, samples: int = 3000) -> LoadedModel:
    """Median cost of `recommend()` per path, in this process (no HTTP); the version it loaded."""
    import msgspec
    import numpy as np

    from recsvc.service.recommend import Query, recommend
    from recsvc.version.artifacts import load_model

    model = load_model(artifact)
    plain = msgspec.structs.replace(model, candidates=None)
    rng = np.random.default_rng(7)
    known = [f"C{n:08d}" for n in rng.integers(1, 1_000_000 + 1, samples)]
    strangers = [f"NEW{n}" for n in range(samples)]
    small = int(np.argmin(np.bincount(model.item_category)))
    print("in-process recommend(), median over random customers:")
    for label, lists, customers, query in [
        ("candidate list, top 10", model, known, Query()),
        ("candidate list, in stock, 4 items", model, known, Query(in_stock=True, limit=4)),
        ("scoring the catalogue, top 10", plain, known, Query()),
        (
            f"smallest category ({model.categories[small]})",
            model,
            known,
            Query(categories=[model.categories[small]]),
        ),
        ("unknown customer, no features", model, strangers, Query()),
    ]:
        for customer in customers[:200]:
            recommend(lists, customer, query)
        times = []
        for customer in customers:
            started = time.perf_counter()
            recommend(lists, customer, query)
            times.append(time.perf_counter() - started)
        print(f"  {label:40s} {statistics.median(times) * 1e6:8.1f} us")
    return model


# --- live answers -------------------------------------------------------------------------------


async def _propagation(replicas: list[int], customers: list[str], per_replica: int) -> list[float]:
    """Per trial, seconds from the 202 until every polling connection serves the answer."""
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    pollers = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers=headers,
            limits=httpx.Limits(max_connections=1),
            timeout=5,
        )
        for port in replicas
        for _ in range(per_replica)
    ]
    intake = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{replicas[0]}", headers=headers, timeout=5
    )
    trials: list[float] = []
    try:
        for customer in customers:
            path = f"/v1/customers/{customer}/offers"
            before = (await pollers[0].get(path)).json()
            if before.get("nps_category") == "detractor":
                continue

            async def until_seen(client: httpx.AsyncClient) -> float:
                while True:
                    body = (await client.get(path)).json()  # noqa: B023
                    if body.get("nps_category") == "detractor":
                        return time.perf_counter()

            watchers = [asyncio.create_task(until_seen(client)) for client in pollers]
            await asyncio.sleep(0.05)  # every connection polling
            posted = await intake.post(
                "/v1/nps-responses",
                json={
                    "response_id": f"bench-{uuid.uuid4().hex}",
                    "customer_id": customer,
                    "score": 0,
                    "responded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "touchpoint": "relationship",
                },
            )
            accepted = time.perf_counter()
            if posted.status_code != 202:
                raise SystemExit(f"intake answered {posted.status_code}: {posted.text}")
            seen = await asyncio.wait_for(asyncio.gather(*watchers), timeout=30)
            trials.append(max(0.0, max(seen) - accepted))
    finally:
        for client in [*pollers, intake]:
            await client.aclose()
    return trials


def propagation(replicas: list[int], trials: int, per_replica: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    customers = [f"C{rng.randint(1, 1_000_000):08d}" for _ in range(trials * 2)]
    found = asyncio.run(_propagation(replicas, customers, per_replica))
    return found[:trials]


def spread(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return (
        f"{len(ms)} trials: median {statistics.median(ms):6.1f} ms, p99 {p99:6.1f} ms, "
        f"max {ms[-1]:6.1f} ms"
    )


# --- memory -------------------------------------------------------------------------------------


def workers_of(pid: int) -> list[int]:
    """The processes that serve (granian's workers are children of its main process)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        children: list[int] = []
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                children.extend(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
        if not children and current != pid:
            found.append(current)
        pending.extend(children)
    return sorted(found) or [pid]


def memory_mib(pid: int) -> tuple[float, float]:
    """RSS and PSS of one process, MiB."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss / 1024, pss / 1024


def settle_aof(url: str) -> None:
    """Rewrite Redis' AOF now and wait for it: a rewrite Redis starts by itself after a large
    publish would otherwise take a core in the middle of the measurements."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 600
        while True:
            info = client.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                break
            time.sleep(0.5)
        client.bgrewriteaof()
        time.sleep(0.5)
        while client.info("persistence")["aof_rewrite_in_progress"]:
            if time.monotonic() > deadline:
                raise SystemExit("Redis' AOF rewrite did not finish in 10 minutes")
            time.sleep(0.5)
    finally:
        client.close()


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per closed-loop run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--trials", type=int, default=30, help="live-answer trials per store")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and wrk to CPUs")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--cart-size", type=int, default=5, help="products per anonymous cart (0: no cart load)"
    )
    args = parser.parse_args()

    ensure_wrk()
    if not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        PINNED.update(server=["taskset", "-c", "0"], client=["taskset", "-c", "1"])
    if args.artifact == DEFAULT_ARTIFACT and not (args.artifact / "manifest.json").is_file():
        artifact_for(1_000_000)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    manifest = json.loads((args.artifact / "manifest.json").read_text())
    print(
        f"version of {manifest['n_customers']:,} customers, {manifest['n_items']:,} products; "
        f"{os.cpu_count()} cores; "
        + ("servers on CPU 0, wrk on CPU 1" if PINNED["server"] else "unpinned")
    )
    write_cart_products(in_process_paths(args.artifact))
    t0 = time.perf_counter()
    FileStore(WORK / "store").publish(args.artifact.resolve())
    file_url = f"file://{WORK / 'store'}"
    print(f"published to the file store in {time.perf_counter() - t0:.1f} s")
    c = args.connections

    with redis_server(WORK) as redis_base:
        redis_url = f"{redis_base}?prefix=bench"
        t0 = time.perf_counter()
        RedisStore(redis_url).publish(args.artifact.resolve())
        print(f"published to Redis (AOF everysec) in {time.perf_counter() - t0:.1f} s")
        settle_aof(redis_base)

        # 1. the bare app on each server; the faster one is the baseline.
        servers: dict[str, float] = {}
        for server in ("granian", "uvicorn"):
            port = free_port()
            with running(bare(server, port)) as proc:
                SERVER_PIDS[port] = proc.pid
                wrk(port, c, 2)
                runs = [wrk(port, c, args.duration) for _ in range(2)]
                servers[server] = max(r["rps"] for r in runs)
                print(show(f"bare app on {server}", medians(runs)))
        fastest = max(servers, key=lambda s: servers[s])
        print(f"fastest server for the bare app: {fastest}")

        # 2. the bare app (fastest server), our service on each store: alternating rounds.
        ports = {"bare": free_port(), "file": free_port(), "redis": free_port()}
        procs = [
            bare(fastest, ports["bare"]),
            ours(file_url, ports["file"], 1, WORK / "cache-file"),
            ours(redis_url, ports["redis"], 1, WORK / "cache-redis"),
        ]
        try:
            for name, proc in zip(ports, procs, strict=True):
                SERVER_PIDS[ports[name]] = proc.pid
                wrk(ports[name], c, 3)  # warm up: connections, caches, the model's pages
            carts = f"file, carts of {args.cart_size}"
            if args.cart_size:
                wrk(ports["file"], c, 3, cart_size=args.cart_size)
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
            for round_no in range(1, args.rounds + 1):
                for name, port in ports.items():
                    rounds[name].append(wrk(port, c, args.duration))
                    print(show(f"round {round_no}: {name}", rounds[name][-1]))
                    if name == "file" and args.cart_size:
                        # The same server and store, anonymous carts instead of known customers.
                        rounds.setdefault(carts, []).append(
                            wrk(port, c, args.duration, cart_size=args.cart_size)
                        )
                        print(show(f"round {round_no}: {carts}", rounds[carts][-1]))
            closed = {name: medians(runs) for name, runs in rounds.items()}
            offered = closed["file"]["rps"] / 2
            pause = 1000 * c / offered
            paced = {name: wrk(port, c, args.duration, pause) for name, port in ports.items()}
            for name, result in paced.items():
                print(show(f"paced ({offered:.0f} req/s offered): {name}", result))
            single = {name: wrk(port, 1, args.duration / 2) for name, port in ports.items()}
            if args.cart_size:
                single[carts] = wrk(ports["file"], 1, args.duration / 2, cart_size=args.cart_size)
            for name, result in single.items():
                print(show(f"one connection: {name}", result))
            memory = {1: [memory_mib(pid) for pid in workers_of(procs[1].pid)]}
        finally:
            for proc in procs:
                stop(proc)

        # 3. live answers: two replicas of two workers on Redis; one machine on the file store.
        replicas = [free_port(), free_port()]
        procs = [ours(redis_url, port, 2, WORK / "cache-redis") for port in replicas]
        try:
            time.sleep(2)  # every worker loaded, not only the one that answered /health/ready
            redis_live = propagation(replicas, args.trials, 8, seed=1)
        finally:
            for proc in procs:
                stop(proc)
        print(f"live answer on every worker of 2 replicas x 2 workers, Redis: {spread(redis_live)}")
        port = free_port()
        with running(ours(file_url, port, 2, WORK / "cache-file2")):
            time.sleep(2)
            file_live = propagation([port], args.trials, 8, seed=2)
        print(f"live answer on every worker of 1 machine x 2 workers, files: {spread(file_live)}")

    if not args.skip_memory:
        port = free_port()
        with running(ours(file_url, port, 4, WORK / "cache-file4")) as proc:
            time.sleep(3)
            SERVER_PIDS[port] = proc.pid
            wrk(port, c, 6)
            memory[4] = [memory_mib(pid) for pid in workers_of(proc.pid)]

    # The table.
    bare32, file32, redis32 = closed["bare"], closed["file"], closed["redis"]
    checks = [
        (
            f"ours (file) / bare {fastest} req/s",
            f"{file32['rps'] / bare32['rps']:.2f}x",
            ">= 0.60x",
            file32["rps"] >= 0.6 * bare32["rps"],
        ),
        (
            "ours (file) p99 / bare p99, closed loop",
            f"{file32['p99_us'] / bare32['p99_us']:.2f}x",
            "<= 1.5x",
            file32["p99_us"] <= 1.5 * bare32["p99_us"],
        ),
        (
            "ours (file) p99, paced at half capacity",
            f"{paced['file']['p99_us'] / 1000:.2f} ms",
            "< 10 ms",
            paced["file"]["p99_us"] < 10_000,
        ),
        (
            "ours (Redis) p99, paced at half capacity",
            f"{paced['redis']['p99_us'] / 1000:.2f} ms",
            "< 10 ms",
            paced["redis"]["p99_us"] < 10_000,
        ),
        (
            "Redis / file store req/s",
            f"{redis32['rps'] / file32['rps']:.2f}x",
            ">= 0.8x",
            redis32["rps"] >= 0.8 * file32["rps"],
        ),
        (
            "Redis / file store p99",
            f"{redis32['p99_us'] / file32['p99_us']:.2f}x",
            "<= 1.5x",
            redis32["p99_us"] <= 1.5 * file32["p99_us"],
        ),
        (
            "live answer on every worker, 2 replicas, Redis (max)",
            f"{max(redis_live) * 1000:.1f} ms",
            "<= 100 ms",
            max(redis_live) <= 0.1,
        ),
        (
            "live answer on every worker, file store (max)",
            f"{max(file_live) * 1000:.1f} ms",
            "<= 100 ms",
            max(file_live) <= 0.1,
        ),
    ]
    print()
    print(
        f"=== {manifest['n_customers']:,} customers, {manifest['n_items']:,} products, "
        f"1 worker, {c} connections (medians of {args.rounds} rounds) ==="
    )
    print(
        f"{'':20s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'paced p99':>10s} {'cpu us/req':>11s}"
    )
    for name, label in (
        ("bare", f"bare app, {fastest}"),
        ("file", "ours, file store"),
        ("redis", "ours, Redis"),
    ):
        r = closed[name]
        print(
            f"{label:20s} {r['rps']:8.0f} {r['p50_us'] / 1000:8.2f} {r['p99_us'] / 1000:8.2f} "
            f"{paced[name]['p99_us'] / 1000:10.2f} {r['cpu_us']:11.1f}"
        )
    print(f"bare app req/s by server: {', '.join(f'{k} {v:.0f}' for k, v in servers.items())}")
    print()
    for measure, value, target, met in checks:
        print(f"{measure:54s} {value:>10s}  {target:9s} {'met' if met else 'NOT MET'}")
    if carts in closed:
        cart32 = closed[carts]
        print(
            f"anonymous carts of {args.cart_size} random products (POST /v1/recommendations), file "
            f"store: {cart32['rps']:.0f} req/s, p50 {cart32['p50_us'] / 1000:.2f} ms, p99 "
            f"{cart32['p99_us'] / 1000:.2f} ms, cpu {cart32['cpu_us']:.1f} us/req: "
            f"{cart32['rps'] / file32['rps']:.2f}x the known customers' req/s, p99 "
            f"{cart32['p99_us'] / file32['p99_us']:.2f}x theirs; one connection: p50 "
            f"{single[carts]['p50_us'] / 1000:.2f} ms, p99 {single[carts]['p99_us'] / 1000:.2f} ms "
            f"(known customers: {single['file']['p50_us'] / 1000:.2f}, "
            f"{single['file']['p99_us'] / 1000:.2f} ms)"
        )
    if not args.skip_memory:
        print()
        print("memory per worker (MiB, RSS / PSS; the model's files are mapped and shared)")
        for n, rows in memory.items():
            cells = ", ".join(f"{rss:.0f} / {pss:.0f}" for rss, pss in rows)
            print(f"  {n} worker(s): {cells}")


if __name__ == "__main__":
    main()
