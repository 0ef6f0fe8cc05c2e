"""Throughput of the live order intake, and what live orders cost the recommendations endpoint.

    uv run python bench/bench_order_intake.py
    uv run python bench/bench_order_intake.py --customers 50000 --duration 15 --stores file

The issue's targets (printed, not asserted): `POST /v1/orders` takes at least 5,000 order lines/s
into the file store and into Redis, with batches of 100 lines per request from 8 concurrent
clients; `GET /v1/customers/{id}/recommendations` with live orders present stays within 10% of its
speed without.

How:

1. demo data (`--customers`, cached under var/bench/orders/) is trained once with a short fit;
   each store gets a fresh copy of that version (a copy of the file store; a Redis store under a
   key prefix of its own on `--redis`, deleted afterwards);
2. `python -m recsvc serve --workers 2` (the product's server, granian, as a user starts it);
3. `wrk -c8 -t8` (bench/wrk_orders.lua) POSTs batches of 100 new lines (unique line ids, random
   customers among the first half, random products) for `--duration` seconds; afterwards the
   store must hold every line the server answered 202 for;
4. baseline, same run, same server settings: a bare Litestar app on granian with two workers whose
   one route decodes the same body into typed lines and answers 202, storing nothing (what HTTP
   and JSON cost without the intake's checks and the store's durable write);
5. then a day's orders: `--day-share` (default 5%) of the third quarter's customers each place an
   order of 1-3 lines (a request per order, as a storefront sends them);
6. recommendations: `wrk -c32` on the first half's customers (every one with many live lines: the
   worst case), on the third quarter's (a day's orders present) and on each half of the last
   quarter (no live orders; the second half is a control whose distance from the first shows the
   noise), one warm-up round then `--rounds` rounds, each in another order; medians of requests/s
   and of the server's CPU time per request (all its processes, from /proc), each against the
   customers without live orders;
7. the same path below HTTP in this process, on the same store (`recommendations_for`, live read
   included), per set: steadier than HTTP on a shared machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import msgspec
from litestar import Litestar, post

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recsvc.store import FileStore, RedisStore  # noqa: E402
from recsvc.store.base import Store  # noqa: E402

WORK = ROOT / "var" / "bench" / "orders"
ORDERS_LUA = Path(__file__).resolve().parent / "wrk_orders.lua"
RECS_LUA = Path(__file__).resolve().parent / "wrk_recommendations.lua"
RECS_PATH = "/v1/customers/C%08d/recommendations"
BARE_PATH = "/bench/bare-orders"
TARGET_LINES_PER_SECOND = 5_000

# --- the baseline app ---------------------------------------------------------------------------


class BareLine(msgspec.Struct):
    line_id: str
    order_id: str
    customer_id: str
    product_id: str
    quantity: int
    unit_price: float
    ordered_at: dt.datetime
    status: str


class BareResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[str]


@post(BARE_PATH, status_code=202)
async def bare_orders(data: list[BareLine]) -> BareResult:
    return BareResult(accepted=len(data), duplicates=0, rejected=[])


def bare_app() -> Litestar:
    return Litestar([bare_orders], debug=False)


# --- processes ----------------------------------------------------------------------------------


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {log}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {timeout:.0f} s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def service(store_url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSVC_")}
    env |= {"RECSVC_STORE": store_url, "RECSVC_LOG_LEVEL": "warning"}
    log = WORK / f"serve-{port}.log"
    proc = start(
        [sys.executable, "-m", "recsvc", "serve", "--port", str(port), "--workers", str(workers)],
        env,
        log,
    )
    wait_for(proc, f"http://127.0.0.1:{port}/health/ready", log)
    return proc


def bare_service(port: int, workers: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "bench"), env.get("PYTHONPATH")]))
    log = WORK / f"bare-{port}.log"
    granian = Path(sys.executable).parent / "granian"
    proc = start(
        [
            str(granian),
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            "bench_order_intake:bare_app",
        ],
        env,
        log,
    )
    wait_for(proc, f"http://127.0.0.1:{port}/", log)
    return proc


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants: the
    server's own cost, which the load generator sharing the machine does not inflate."""
    total, pending = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def wrk(args: list[str], lua: Path, base: str, script_args: list[str]) -> dict[str, float]:
    result = subprocess.run(
        ["wrk", *args, "--timeout", "10s", "-s", str(lua), base, "--", *script_args],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
            return data
    raise SystemExit(f"no WRKJSON line from wrk:\n{result.stdout}\n{result.stderr}")


def errors_of(result: dict[str, float]) -> int:
    return int(sum(v for k, v in result.items() if k.startswith("err_")))


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk with apt-get ...", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True, check=False)
    if not shutil.which("wrk"):
        raise SystemExit("this bench needs wrk (apt-get install wrk)")


# --- the version under test ---------------------------------------------------------------------


def trained(customers: int) -> tuple[Path, int, int]:
    """A file store holding one version trained on `customers` demo customers (cached), and the
    numbers of customers and products."""
    import polars as pl

    from training.config import load_config
    from training.run.pipeline import run_pipeline
    from training.sources.generate import generate

    base = WORK / f"shop-{customers}"
    store, data = base / "store", base / "data"
    if not store.exists() or FileStore(store).active_version() is None:
        shutil.rmtree(base, ignore_errors=True)
        print(f"generating and training {customers:,} demo customers (once) ...", file=sys.stderr)
        generate(data, customers, seed=11, show_progress=False)
        record = run_pipeline(
            data,
            store=f"file://{store}",
            config=load_config(epochs=5, components=16, max_eval_users=2000),
            runs_dir=base / "runs",
            show_progress=False,
            force=True,
        )
        if not record.published:
            raise SystemExit(f"training did not publish: {record.error}")
    products = pl.scan_parquet(data / "products.parquet").select(pl.len()).collect().item()
    return store, customers, int(products)


def fresh_store(kind: str, source: Path, redis_url: str) -> tuple[Store, str]:
    """A store of `kind` serving a copy of the trained version, and the URL the service opens."""
    if kind == "file":
        root = WORK / f"store-{uuid.uuid4().hex[:8]}"
        shutil.copytree(source, root)
        store: Store = FileStore(root)
        return store, f"file://{root}"
    prefix = f"bench-orders-{uuid.uuid4().hex[:8]}"
    cache = WORK / f"cache-{prefix}"
    redis_store = RedisStore(redis_url, prefix=prefix, cache_dir=cache)
    origin = FileStore(source)
    version = origin.active_version()
    assert version is not None
    redis_store.publish(source / "versions" / version)
    origin.close()
    return redis_store, f"{redis_url}?prefix={prefix}&cache_dir={cache}"


def post_a_day(base: str, customers: range, products: int, share: float, ordered_at: str) -> int:
    """One order of 1-3 lines for `--day-share` of `customers`, as a storefront sends them (a
    request per order); the number of lines."""
    rng = random.Random(7)
    buyers = rng.sample(list(customers), round(len(customers) * share))
    lines = 0
    with httpx.Client(base_url=base, timeout=10) as http:
        for n in buyers:
            order = [
                {
                    "line_id": f"day-{n}-{i}",
                    "order_id": f"day-{n}",
                    "customer_id": f"C{n:08d}",
                    "product_id": f"P{rng.randint(1, products):06d}",
                    "quantity": 1,
                    "unit_price": 20.0,
                    "ordered_at": ordered_at,
                    "status": "placed",
                }
                for i in range(rng.randint(1, 3))
            ]
            reply = http.post("/v1/orders", json=order)
            if reply.status_code != 202:
                raise SystemExit(f"a day's order was refused: {reply.status_code} {reply.text}")
            lines += len(order)
    return lines


def drop(store: Store) -> None:
    if isinstance(store, RedisStore):
        client = store._client
        keys = list(client.scan_iter(match=f"{store.prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
        shutil.rmtree(store.cache_dir or WORK / "none", ignore_errors=True)
    elif isinstance(store, FileStore):
        shutil.rmtree(store.root, ignore_errors=True)
    store.close()


# --- recommendations with and without live orders ---------------------------------------------

NONE = "no live orders"
CONTROL = "no live orders either (control: the noise)"


def over_http(
    server: subprocess.Popen[bytes], base: str, sets: dict[str, tuple[int, int]], rounds: int
) -> None:
    """wrk on each set of customers (first, count): a warm-up round, then `rounds` rounds, each in
    another order; medians of req/s and of the server's CPU per request, against `NONE`."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sets}
    names = list(sets)
    for n in range(rounds + 1):  # the first round warms up and is not kept
        # Each round in another order, so no set always follows the same one.
        for name in names[n % len(names) :] + names[: n % len(names)]:
            first, count = sets[name]
            cpu = tree_cpu_seconds(server.pid)
            got = wrk(
                ["-c32", "-t1", "-d5s"], RECS_LUA, base, [RECS_PATH, str(count), "0", str(first)]
            )
            got["cpu_us"] = (tree_cpu_seconds(server.pid) - cpu) / got["requests"] * 1e6
            if errors_of(got):
                print(f"      {errors_of(got)} errors in a recommendations run")
            if n:
                runs[name].append(got)
    base_rps = statistics.median(r["rps"] for r in runs[NONE])
    base_cpu = statistics.median(r["cpu_us"] for r in runs[NONE])
    print(
        f"      recommendations over HTTP, 32 connections, medians of {rounds} rounds (and the "
        "server's CPU per request, all its processes):"
    )
    for name, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        p99 = statistics.median(r["p99_us"] for r in results) / 1000
        cpu_us = statistics.median(r["cpu_us"] for r in results)
        print(
            f"        {name:<44} {rps:>6,.0f} req/s {rps / base_rps:6.1%}  p99 {p99:5.1f} ms  "
            f"CPU {cpu_us:5.0f} µs/request, speed {base_cpu / cpu_us:6.1%}"
        )


def in_process(store: Store, sets: dict[str, tuple[int, int]], draws: int = 20_000) -> None:
    """The storefront's path below HTTP (the live read, the customer's state, ranking, the reply
    object) in this process, on the same store: steadier than HTTP on a shared machine."""
    from recsvc.api.storefront.services import recommendations_for
    from recsvc.service.runtime import ModelHolder

    holder = ModelHolder(store)
    holder.refresh()
    model = holder.current
    assert model is not None
    rng = random.Random(3)
    timings: dict[str, list[float]] = {name: [] for name in sets}
    for n in range(4):  # the first round warms up and is not kept
        for name, (first, count) in sets.items():
            ids = [f"C{rng.randint(first, first + count - 1):08d}" for _ in range(draws)]
            start = time.perf_counter()
            for customer in ids:
                recommendations_for(
                    model,
                    customer,
                    holder.live(customer),
                    limit=10,
                    offset=0,
                    exclude_purchased=True,
                    exclude=None,
                    category=None,
                    in_stock=None,
                    given_features={},
                    sees_answers=True,
                )
            if n:
                timings[name].append((time.perf_counter() - start) / draws * 1e6)
    base = statistics.median(timings[NONE])
    print("      the same path in-process (medians of 3 rounds):")
    for name, values in timings.items():
        took = statistics.median(values)
        print(f"        {name:<44} {took:6.1f} µs/request, {took - base:+6.1f} µs")


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of intake")
    parser.add_argument("--batch", type=int, default=100, help="order lines per request")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--rounds", type=int, default=6, help="recommendation rounds (+1 warm-up)")
    parser.add_argument(
        "--day-share", type=float, default=0.05, help="share of customers ordering in a day"
    )
    parser.add_argument("--stores", default="file,redis")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    ensure_wrk()
    source, customers, products = trained(args.customers)
    half, quarter = customers // 2, customers // 4
    ordered_at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat(timespec="seconds")
    load = [f"-c{args.clients}", f"-t{args.clients}", f"-d{args.duration:g}s"]
    print(
        f"{customers:,} customers, {products:,} products; {args.clients} clients x batches of "
        f"{args.batch} lines for {args.duration:g} s; server: granian, {args.workers} workers"
    )

    port = _port()
    bare = bare_service(port, args.workers)
    try:
        result = wrk(
            load,
            ORDERS_LUA,
            f"http://127.0.0.1:{port}",
            [BARE_PATH, str(args.batch), str(half), str(products), "bare", ordered_at],
        )
    finally:
        stop(bare)
    bare_lines = result["accepted"] / (result["duration_us"] / 1e6)
    print(
        f"\nbaseline (bare app, decode only): {bare_lines:>9,.0f} lines/s  "
        f"p50 {result['p50_us'] / 1000:6.1f} ms  p99 {result['p99_us'] / 1000:6.1f} ms  "
        f"errors {errors_of(result)}"
    )

    for kind in args.stores.split(","):
        store, url = fresh_store(kind, source, args.redis)
        try:
            port = _port()
            server = service(url, port, args.workers)
            base = f"http://127.0.0.1:{port}"
            try:
                tag = f"run{uuid.uuid4().hex[:6]}"
                result = wrk(
                    load,
                    ORDERS_LUA,
                    base,
                    ["/v1/orders", str(args.batch), str(half), str(products), tag, ordered_at],
                )
                seconds = result["duration_us"] / 1e6
                accepted = int(result["accepted"])
                lines = accepted / seconds
                stored = sum(1 for _ in store.orders.iter_live())
                verdict = "meets" if lines >= TARGET_LINES_PER_SECOND else "MISSES"
                print(
                    f"{kind:>5} store intake:                  {lines:>9,.0f} lines/s  "
                    f"p50 {result['p50_us'] / 1000:6.1f} ms  p99 {result['p99_us'] / 1000:6.1f} ms"
                    f"  errors {errors_of(result)}  ({lines / bare_lines:.0%} of the baseline; "
                    f"{verdict} the {TARGET_LINES_PER_SECOND:,}/s target)"
                )
                print(
                    f"      answered 202 with {accepted:,} lines accepted "
                    f"({int(result['duplicates']):,} duplicates); the store holds {stored:,} "
                    f"({'every accepted line' if stored >= accepted else 'FEWER than accepted'})"
                )
                day = post_a_day(
                    base, range(half + 1, half + quarter + 1), products, args.day_share, ordered_at
                )
                print(
                    f"      a day's orders: {day:,} lines for {args.day_share:.0%} of customers "
                    f"C{half + 1:08d}..C{half + quarter:08d} (an order of 1-3 lines each)"
                )
                rest = customers - half - quarter
                sets = {
                    "many live lines per customer (first half)": (1, half),
                    f"a day's orders ({args.day_share:.0%} of customers)": (half + 1, quarter),
                    NONE: (half + quarter + 1, rest // 2),
                    CONTROL: (half + quarter + rest // 2 + 1, rest - rest // 2),
                }
                over_http(server, base, sets, args.rounds)
                in_process(store, sets)
            finally:
                stop(server)
        finally:
            drop(store)


if __name__ == "__main__":
    main()
