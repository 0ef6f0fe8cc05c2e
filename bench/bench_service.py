"""Throughput, latency and memory of the recommendations endpoint, against a bare endpoint in the
same server.

    uv run python bench/bench_service.py
    uv run python bench/bench_service.py --artifact DIR --duration 12

The issue's targets (printed, not asserted): with 1M customers and 50k products loaded and one
worker process, `GET /v1/customers/{id}/recommendations` sustains at least 60% of the requests per
second of a bare Litestar endpoint returning a similar 10-item JSON body (same run, same server),
p99 under 10 ms at 32 connections, median under 1 ms with one connection; several workers share the
memory-mapped model instead of each holding a private copy (resident memory per worker with 1 and 4
workers).

How:

1. the artifact (default `var/bench/publish/artifact-1000000`, built by bench_publish.py; given
   the training job's candidate lists if it was built before versions carried them) is
   published into a fresh file store under var/bench/service/;
2. `python -m uvicorn bench_service:bench_app --factory --app-dir bench` runs the real service
   (`create_app()`) plus one extra route, `GET /bench/bare/{customer_id}`, that returns a
   constant 10-item body shaped like the recommendations response, without touching the model;
3. `wrk` on loopback (bench/wrk_recommendations.lua: a random customer C00000001..C01000000 per
   request, on both endpoints) for requests/s and p50/p99 at 32 connections, then one connection,
   alternating bare and recommendations for 3 rounds (medians reported: the machine is shared);
   then the 32 connections again, paced (each waits after an answer) to offer half of what the
   endpoint sustained: in a closed loop every endpoint's latency is at least connections /
   throughput (32 / 6,000 req/s = 5.3 ms for the bare one here), so the paced p99 is the
   service's own latency at 32 concurrent connections;
4. resident memory (RSS, PSS, and how much of it is the model's mapped files) of every worker with
   `--workers 1` and `--workers 4`, after warming them up.

Without `wrk` (and no `apt-get install wrk`), an asyncio + httpx load generator stands in; the
output says so (its numbers are bounded by the client, which shares the machine's cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from litestar import Litestar, get

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recsvc.api.app import create_app  # noqa: E402
from recsvc.api.storefront.schemas import RecommendationResponse, RecommendedItem  # noqa: E402
from training.config import TrainingConfig  # noqa: E402

WORK = ROOT / "var" / "bench" / "service"
DEFAULT_ARTIFACT = ROOT / "var" / "bench" / "publish" / "artifact-1000000"
LUA = Path(__file__).resolve().parent / "wrk_recommendations.lua"
RECS_PATH = "/v1/customers/C%08d/recommendations"
BARE_PATH = "/bench/bare/C%08d"
CUSTOMERS = 1_000_000

# --- the app under test -----------------------------------------------------------------------

_BARE_ITEMS = [
    RecommendedItem(
        product_id=f"P{n:06d}", score=1.0 - n / 100, category="home_garden", reason="popular"
    )
    for n in range(1, 11)
]


@get("/bench/bare/{customer_id:str}", sync_to_thread=False, include_in_schema=False)
def bare(customer_id: str) -> RecommendationResponse:
    """The baseline: same response type and size as a recommendation, no model, no guard."""
    return RecommendationResponse(
        customer_id=customer_id,
        model_version="bench",
        segment="loyal_promoters",
        cold_start=False,
        items=_BARE_ITEMS,
    )


def bench_app() -> Litestar:
    """The real service (settings from RECSVC_* variables) plus the bare baseline route."""
    app = create_app()
    app.register(bare)
    return app


def ensure_candidates(artifact: Path, n: int) -> None:
    """Give an artifact built before versions carried candidate lists its lists (timed), with the
    training job's own code, so the bench serves what a current nightly run publishes."""
    from training.recommender.candidates import add_to_artifact

    t0 = time.perf_counter()
    if add_to_artifact(artifact, n):
        print(f"added {n}-item candidate lists to {artifact}: {time.perf_counter() - t0:.1f} s")


def in_process_paths(artifact: Path, samples: int = 3000) -> None:
    """Median cost of `recommend()` per path, in this process (no HTTP)."""
    import msgspec
    import numpy as np

    from recsvc.service.recommend import Query, recommend
    from recsvc.version.artifacts import load_model

    model = load_model(artifact)
    plain = msgspec.structs.replace(model, candidates=None)
    rng = np.random.default_rng(7)
    known = [f"C{n:08d}" for n in rng.integers(1, CUSTOMERS + 1, samples)]
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


# --- server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Command prefixes that pin the server and the load generator to CPUs (`--pin`); empty: unpinned.
PINNED: dict[str, list[str]] = {"server": [], "client": []}


def start_server(store_root: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "RECSVC_STORE": f"file://{store_root}",
            "RECSVC_RELOAD_SECONDS": "5",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        }
    )
    for name in ("RECSVC_API_KEYS", "RECSVC_HOST"):  # development mode on loopback: no keys
        env.pop(name, None)
    log = (WORK / f"uvicorn-{workers}w.log").open("wb")
    return subprocess.Popen(
        [
            *PINNED["server"],
            sys.executable,
            "-m",
            "uvicorn",
            "bench_service:bench_app",
            "--factory",
            "--app-dir",
            str(Path(__file__).resolve().parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ready(proc: subprocess.Popen[bytes], base: str, timeout: float = 180.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode}; see {WORK}/uvicorn-*.log")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{base}/health/ready not 200 after {timeout:.0f} s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def worker_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The processes serving requests: uvicorn's spawned children, or uvicorn itself (1 worker)."""
    children: list[int] = []
    for task in Path(f"/proc/{proc.pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children.extend(int(pid) for pid in text)
    workers = []
    for pid in children:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(pid)
    return sorted(workers) or [proc.pid]


# --- memory -----------------------------------------------------------------------------------


def memory_of(pid: int, model_dir: Path) -> dict[str, int]:
    """KiB: RSS, PSS, anonymous RSS, and RSS/PSS of the mappings of the model's files."""
    out = {"rss": 0, "pss": -1, "anon": 0, "model_rss": 0, "model_pss": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss"] = int(line.split()[1])
        elif line.startswith("RssAnon:"):
            out["anon"] = int(line.split()[1])
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1])
        in_model = False
        prefix = str(model_dir.resolve())
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            fields = line.split()
            if not fields:
                continue
            if not fields[0].endswith(":"):  # a mapping header: address perms offset dev inode path
                in_model = len(fields) >= 6 and fields[5].startswith(prefix)
            elif in_model and fields[0] == "Rss:":
                out["model_rss"] += int(fields[1])
            elif in_model and fields[0] == "Pss:":
                out["model_pss"] += int(fields[1])
    except OSError:
        pass
    return out


def mib(kib: int) -> str:
    return f"{kib / 1024:8.1f}" if kib >= 0 else "     n/a"


# --- load generators --------------------------------------------------------------------------


def run_wrk(
    base: str, template: str, connections: int, threads: int, seconds: float, pause_ms: float = 0
) -> dict[str, float]:
    cmd = [
        *PINNED["client"],
        "wrk",
        f"-c{connections}",
        f"-t{threads}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        base,
        "--",
        template,
        str(CUSTOMERS),
        f"{pause_ms:.0f}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    for line in result.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
            return data
    raise SystemExit(f"no WRKJSON line from wrk:\n{result.stdout}\n{result.stderr}")


async def _httpx_load(
    base: str, template: str, connections: int, seconds: float, pause_ms: float = 0
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=5) as client:
        deadline = time.perf_counter() + seconds

        async def one_connection() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                path = template % random.randint(1, CUSTOMERS)
                t0 = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - t0) * 1e6)
                if response.status_code != 200:
                    errors += 1
                if pause_ms:
                    await asyncio.sleep(pause_ms / 1000)

        start = time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_us": cuts[49],
        "p90_us": cuts[89],
        "p99_us": cuts[98],
        "max_us": max(latencies),
        "err_status": errors,
    }


def load(
    tool: str,
    base: str,
    template: str,
    connections: int,
    seconds: float,
    threads: int = 1,
    pause_ms: float = 0,
) -> dict[str, float]:
    """Closed loop (each connection sends its next request as soon as it has an answer), or with
    `pause_ms` between an answer and the next request: an offered load below capacity, where
    latency is the service's own rather than the queue of 32 connections."""
    if tool == "wrk":
        return run_wrk(base, template, connections, threads, seconds, pause_ms)
    return asyncio.run(_httpx_load(base, template, connections, seconds, pause_ms))


def ensure_wrk() -> str:
    if shutil.which("wrk"):
        return "wrk"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk with apt-get ...", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "wrk"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if shutil.which("wrk"):
            return "wrk"
    print("NOTE: wrk not available; using the asyncio + httpx load generator", file=sys.stderr)
    return "httpx"


def ms(us: float) -> str:
    return f"{us / 1000:7.3f}"


def errors_of(result: dict[str, float]) -> int:
    return int(sum(v for k, v in result.items() if k.startswith("err_")))


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per 32-conn run")
    parser.add_argument("--single-duration", type=float, default=5.0, help="seconds, 1 conn")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/recs rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--candidates",
        type=int,
        default=TrainingConfig().serving_candidates,
        help="length of the candidate lists to add to an artifact that has none (0: leave it)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the server on CPU 0 and wrk on CPU 1 (taskset), so they do not preempt each other",
    )
    args = parser.parse_args()

    from recsvc.store import FileStore

    if args.pin:
        if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
            raise SystemExit("--pin needs two CPUs and taskset")
        PINNED.update(server=["taskset", "-c", "0"], client=["taskset", "-c", "1"])

    tool = ensure_wrk()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.candidates:
        ensure_candidates(args.artifact, args.candidates)
    in_process_paths(args.artifact)
    store_root = WORK / "store"
    shutil.rmtree(store_root, ignore_errors=True)
    t0 = time.perf_counter()
    version = FileStore(store_root).publish(args.artifact.resolve())
    model_dir = store_root / "versions" / version
    mapped = (
        sum(p.stat().st_size for p in model_dir.iterdir() if p.suffix in (".npy", ".bin")) // 1024
    )
    manifest = json.loads((model_dir / "manifest.json").read_text())
    print(
        f"published {version} from {args.artifact} in {time.perf_counter() - t0:.1f} s; "
        f"{manifest['n_customers']} customers, {manifest['n_items']} products; "
        f"mapped files (.npy, .bin) {mapped / 1024:.1f} MiB"
    )
    sharing = "server on CPU 0, wrk on CPU 1" if args.pin else "client and server share them"
    print(f"load generator: {tool}; {os.cpu_count()} cores; {sharing}")

    results: dict[str, dict[str, float]] = {}
    memory: dict[int, list[dict[str, int]]] = {}

    # One worker: throughput, latency, memory.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(store_root, port, 1)
    try:
        print(f"1 worker ready in {wait_ready(proc, base):.1f} s; warming up ...")
        sample = httpx.get(f"{base}{RECS_PATH % 123_456}", timeout=5)
        bare_sample = httpx.get(f"{base}{BARE_PATH % 123_456}", timeout=5)
        print(
            f"  recommendations body {len(sample.content)} B ({sample.status_code}), "
            f"bare body {len(bare_sample.content)} B ({bare_sample.status_code})"
        )
        load(tool, base, RECS_PATH, args.connections, 3, args.threads)
        load(tool, base, BARE_PATH, args.connections, 2, args.threads)
        c = args.connections
        # Bare and recommendations alternate, round after round, so that noise from the shared
        # machine falls on both; each measure is the median over the rounds.
        rounds: dict[str, list[dict[str, float]]] = {}
        for round_no in range(1, args.rounds + 1):
            for name, template, conns, seconds in [
                (f"bare, {c} conn", BARE_PATH, c, args.duration),
                (f"recommendations, {c} conn", RECS_PATH, c, args.duration),
                ("bare, 1 conn", BARE_PATH, 1, args.single_duration),
                ("recommendations, 1 conn", RECS_PATH, 1, args.single_duration),
            ]:
                r = load(tool, base, template, conns, seconds, args.threads)
                rounds.setdefault(name, []).append(r)
                print(
                    f"  round {round_no}: {name:26s} {r['rps']:9.0f} req/s  p50 {ms(r['p50_us'])} ms"
                    f"  p99 {ms(r['p99_us'])} ms  errors {errors_of(r)}"
                )
        for name, runs in rounds.items():
            results[name] = {
                key: statistics.median(run.get(key, 0) for run in runs) for key in runs[0]
            }
        ratios = [
            recs["rps"] / bare["rps"]
            for bare, recs in zip(
                rounds[f"bare, {c} conn"], rounds[f"recommendations, {c} conn"], strict=True
            )
        ]
        # Paced: the same 32 connections offering about half of what the endpoint sustains.
        offered = 0.5 * results[f"recommendations, {c} conn"]["rps"]
        pause = 1000 * c / offered
        for name, template in [
            (f"bare, {c} conn paced", BARE_PATH),
            (f"recommendations, {c} conn paced", RECS_PATH),
        ]:
            results[name] = load(tool, base, template, c, args.duration, args.threads, pause)
            r = results[name]
            print(
                f"  {name:28s} {r['rps']:9.0f} req/s  p50 {ms(r['p50_us'])} ms  "
                f"p99 {ms(r['p99_us'])} ms  errors {errors_of(r)}  ({pause:.1f} ms pauses)"
            )
        memory[1] = [memory_of(pid, model_dir) for pid in worker_pids(proc)]
    finally:
        stop_server(proc)

    # Four workers: memory only (2 cores: their throughput says nothing here).
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(store_root, port, 4)
    try:
        ready = wait_ready(proc, base)
        time.sleep(3)  # /health/ready answered by one worker; give the others time to load
        print(f"4 workers ready in {ready:.1f} s; warming up ...")
        load(tool, base, RECS_PATH, args.connections, 8, args.threads)
        memory[4] = [memory_of(pid, model_dir) for pid in worker_pids(proc)]
    finally:
        stop_server(proc)

    # The table.
    bare32 = results[f"bare, {args.connections} conn"]
    recs32 = results[f"recommendations, {args.connections} conn"]
    recs1 = results["recommendations, 1 conn"]
    ratio = statistics.median(ratios)
    print()
    print(f"=== targets ({tool}, 1 worker, {version}) ===")
    print(f"{'measure':52s} {'value':>12s}  target")
    print(f"{'bare endpoint req/s, ' + str(args.connections) + ' conn':52s} {bare32['rps']:12.0f}")
    print(
        f"{'recommendations req/s, ' + str(args.connections) + ' conn':52s} {recs32['rps']:12.0f}"
    )
    print(
        f"{'ratio recommendations / bare (median of rounds)':52s} {ratio:12.1%}  >= 60%  "
        f"{ratio >= 0.6}  (rounds: {', '.join(f'{r:.0%}' for r in ratios)})"
    )
    print(
        f"{'recommendations p99, ' + str(args.connections) + ' conn (ms)':52s} "
        f"{recs32['p99_us'] / 1000:12.3f}  < 10 ms  {recs32['p99_us'] < 10_000}"
    )
    print(
        f"{'recommendations p50, 1 conn (ms)':52s} {recs1['p50_us'] / 1000:12.3f}  < 1 ms   "
        f"{recs1['p50_us'] < 1000}"
    )
    paced = results[f"recommendations, {args.connections} conn paced"]
    print(
        f"{'recommendations p99, ' + str(args.connections) + ' conn paced (ms)':52s} "
        f"{paced['p99_us'] / 1000:12.3f}  < 10 ms  {paced['p99_us'] < 10_000}"
        f"  (at {paced['rps']:.0f} req/s offered by {args.connections} connections)"
    )
    print(
        f"{'bare p99, ' + str(args.connections) + ' conn closed loop / paced (ms)':52s} "
        f"{bare32['p99_us'] / 1000:6.3f} / "
        f"{results[f'bare, {args.connections} conn paced']['p99_us'] / 1000:.3f}"
        "  (closed loop: latency >= connections / throughput, for any endpoint)"
    )
    print()
    print(f"=== memory per worker (MiB), model's mapped files {mapped / 1024:.1f} MiB ===")
    print(
        f"{'workers':>7s} {'pid':>8s} {'RSS':>8s} {'PSS':>8s} {'anon':>8s} {'model RSS':>9s} "
        f"{'model PSS':>9s}"
    )
    for n, rows in memory.items():
        for i, row in enumerate(rows, 1):
            print(
                f"{n:7d} {'#' + str(i):>8s} {mib(row['rss'])} {mib(row['pss'])} {mib(row['anon'])} "
                f"{mib(row['model_rss']):>9s} {mib(row['model_pss']):>9s}"
            )
        total = {k: sum(r[k] for r in rows) for k in rows[0]}
        print(
            f"{n:7d} {'total':>8s} {mib(total['rss'])} {mib(total['pss'])} {mib(total['anon'])} "
            f"{mib(total['model_rss']):>9s} {mib(total['model_pss']):>9s}"
        )


if __name__ == "__main__":
    main()
