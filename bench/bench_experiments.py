"""What the experiments cost: the exposure log per offers request (in process and over HTTP), and
the nightly outcome step on a 1M-customer shop.

    uv run python bench/bench_experiments.py
    uv run python bench/bench_experiments.py --customers 20000 --outcome-customers 100000
    uv run python bench/bench_experiments.py --skip-http --exposure-repeat 5
    flags: --customers N (artifact, default 100,000) --artifact DIR --samples N --rounds N
           --duration S --connections N --no-pin --redis-url URL --skip-in-process --skip-http
           --outcome-customers N (default 1,000,000) --exposure-repeat K --skip-outcomes

The issue's target (printed, not asserted): the exposure log adds at most 10% to the offers
endpoint's time (on / off <= 1.10).

1. In process. A real artifact of `--customers` customers (`bench_publish.artifact_for`, cached
   under var/bench/publish/), published into a file store under var/bench/experiments/ and opened
   from it. Of `--samples` random customers, those whose offers include one in an experiment
   (every offer of the shipped catalog runs one) are timed through
   `offers_for(model, customer, LiveActivity(), catalog, sees_answers=False, exposures=...)`:
   - off: `exposures=None` (assignment still decided; nothing recorded);
   - file: an `ExposureRecorder` on the file store's log, its 100 ms flush thread running;
   - redis: the same on Redis (`--redis-url`, default 127.0.0.1:6379, a private key prefix whose
     key is deleted at the end);
   - no-exp catalog: the shipped catalog without its `[offers.*.experiment]` tables and
     `exposures=None` (what the HTTP "off" below serves: no hashing, holdouts see their offers).
   Each round runs the variants in turn (alternating order), each over all sampled customers, the
   recorder's final flush included in its time, so the flush thread's encoding and append cost
   (taking the GIL on the same core) is counted. µs/request = wall time / requests; medians over
   `--rounds` rounds.
2. Over HTTP. `python -m recsvc serve --workers 1` twice on the same file store: "on" with the
   shipped catalog, "off" with `RECSVC_OFFERS_FILE` pointing at a copy without the experiment
   tables (no product setting needed: no exposure line is produced; note that "off" also skips
   the assignment hash and shows the holdouts their offers). wrk (bench/wrk_recommendations.lua)
   on `/v1/customers/C%08d/offers` for random customers of the artifact, 32 connections; servers
   pinned to CPU 0 and wrk to CPU 1 when there are 2+ cores. Alternating rounds, medians:
   req/s, p50/p99, server CPU µs per request.
3. The nightly outcome step. Demo data of `--outcome-customers` customers
   (`training.sources.generate.generate`, cached under var/bench/experiments/) whose
   `_service/exposures.ndjson` holds the simulated exposure lines; `--exposure-repeat K` writes
   each line K times (copy k at `at` + k x 7 h 13 min: several requests per customer). The lines
   are appended into a fresh file store's `store.exposures` (in 50k-line appends, not timed);
   then reading the log from the store (the real path) into a frame and finding the assignments
   are timed on their own, and `run_experiments` end to end (it reads the log again, builds every
   experiment's outcome table in one pass over the orders and NPS answers, scanned lazily from
   the generated parquet files, analyses each and writes experiments.json + assignments); then
   the same with the compaction a run does (every line folded into the store's compacted
   assignments, the log emptied), and the next night's step from the compacted log alone.
   Printed: seconds per part, the log's size in bytes and lines, peak RSS of this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_order_intake import ensure_wrk, errors_of, start, stop, tree_cpu_seconds, wait_for  # noqa: E402
from bench_publish import artifact_for, free_port  # noqa: E402
from bench_service import wrk_result  # noqa: E402

from recsvc.domain.experiments import Compacted, Exposure  # noqa: E402
from recsvc.domain.live import LiveActivity  # noqa: E402
from recsvc.domain.offers import DEFAULT_OFFERS_PATH, OfferCatalog, load_offers  # noqa: E402
from recsvc.store import FileStore, RedisStore  # noqa: E402
from recsvc.store.exposures import ExposureLog  # noqa: E402

WORK = ROOT / "var" / "bench" / "experiments"
LUA = BENCH / "wrk_recommendations.lua"
OFFERS_PATH = "/v1/customers/C%08d/offers"
KEY = "bench-storefront-key-0123456789"
PINNED: dict[str, list[str]] = {"server": [], "client": []}
TARGET = 1.10


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def catalog_without_experiments(into: Path) -> Path:
    """The shipped catalog with its `[offers.<id>.experiment]` tables (and their keys) cut out."""
    kept: list[str] = []
    skipping = False
    for line in DEFAULT_OFFERS_PATH.read_text().splitlines():
        if line.startswith("["):
            skipping = bool(re.match(r"^\[offers\.[^\]]+\.experiment\]", line))
        if not skipping:
            kept.append(line)
    into.write_text("\n".join(kept) + "\n")
    catalog = load_offers(into)
    assert all(d.experiment is None for d in catalog.offers.values()), "experiments left"
    return into


class _NullLog:
    """An exposure log that keeps nothing (to count the lines a request would log)."""

    def append(self, lines: Sequence[Exposure]) -> None:
        pass

    def read(self) -> Iterator[Exposure]:
        return iter(())

    def compacted(self) -> Compacted:
        return Compacted()

    def compact(self, folded: Compacted) -> int:
        return 0

    def erase(self, customer_id: str) -> int:
        return 0


# --- 1. in process ------------------------------------------------------------------------------


def in_process(
    artifact: Path, samples: int, rounds: int, redis_url: str
) -> dict[str, tuple[float, float]]:
    from recsvc.api.storefront.services import offers_for
    from recsvc.service.experiments import ExposureRecorder
    from recsvc.version.opened import open_version

    store_dir = WORK / "store-in-process"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = FileStore(store_dir)
    store.publish(artifact.resolve())
    loaded = store.load_active()
    assert loaded is not None
    model = open_version(loaded)
    catalog = load_offers()
    plain = load_offers(catalog_without_experiments(WORK / "offers-no-experiments.toml"))
    live = LiveActivity()

    rng = np.random.default_rng(11)
    ids = np.load(artifact / "customer_ids.npy", mmap_mode="r")
    picked = sorted({str(ids[i]) for i in rng.integers(0, ids.size, samples)})
    probe = ExposureRecorder(_NullLog())
    earners: list[str] = []
    lines = 0
    for customer in picked:
        offers_for(model, customer, live, catalog, sees_answers=False, exposures=probe)
        found = probe.flush()
        if found:
            earners.append(customer)
            lines += found
    print(
        f"in process: {len(earners):,} of {len(picked):,} sampled customers earn an offer in an "
        f"experiment ({lines / max(len(earners), 1):.2f} exposure lines per request)"
    )
    if not earners:
        raise SystemExit("no sampled customer earns an offer in an experiment")

    prefix = f"bench-exp-{uuid.uuid4().hex[:8]}"
    redis_store = RedisStore(redis_url, prefix=prefix, cache_dir=WORK / "redis-cache")
    redis_key = f"{prefix}:{{live}}:exposures"
    client = redis.Redis.from_url(redis_url)
    logs: dict[str, ExposureLog] = {"file": store.exposures, "redis": redis_store.exposures}

    def timed(variant: str) -> tuple[float, float]:
        """Wall and CPU (all this process' threads) microseconds per request."""
        recorder: ExposureRecorder | None = None
        chosen: OfferCatalog = plain if variant == "no-exp catalog" else catalog
        if variant in logs:
            recorder = ExposureRecorder(logs[variant])
            recorder.start()
        started, cpu = time.perf_counter(), time.process_time()
        for customer in earners:
            offers_for(model, customer, live, chosen, sees_answers=False, exposures=recorder)
        if recorder is not None:
            recorder.close()  # the last lines' flush counts too
            assert recorder.dropped == 0
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        return wall / len(earners) * 1e6, cpu / len(earners) * 1e6

    variants = ["off", "file", "redis", "no-exp catalog"]
    per: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    try:
        for v in variants:  # warm up: pages of the model, the store's file, the connection
            timed(v)
        for round_no in range(1, rounds + 1):
            shift = round_no % len(variants)
            for v in variants[shift:] + variants[:shift]:  # each variant first in turn
                per[v].append(timed(v))
            cells = ", ".join(f"{v} {per[v][-1][0]:6.1f} / {per[v][-1][1]:6.1f}" for v in variants)
            print(f"  round {round_no}: us/request wall / cpu: {cells}")
        logged = client.llen(redis_key)
        print(
            f"  lines written: file log {store.exposures.path.stat().st_size:,} bytes; "
            f"Redis list {logged:,} lines"
        )
    finally:
        client.delete(redis_key)
        client.close()
        redis_store.close()
        store.close()
    return {
        v: (statistics.median(w for w, _ in per[v]), statistics.median(c for _, c in per[v]))
        for v in variants
    }


# --- 2. over HTTP -------------------------------------------------------------------------------


def serve(
    store_url: str, port: int, offers_file: Path | None, cache: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSVC_")}
    env |= {
        "RECSVC_STORE": store_url,
        "RECSVC_API_KEYS": json.dumps({KEY: ["recommend"]}),
        "RECSVC_LOG_LEVEL": "warning",
        "RECSVC_CACHE_DIR": str(cache),
    }
    if offers_file is not None:
        env["RECSVC_OFFERS_FILE"] = str(offers_file)
    log = WORK / f"serve-{port}.log"
    command = [sys.executable, "-m", "recsvc", "serve", "--port", str(port), "--workers", "1"]
    proc = start([*PINNED["server"], *command], env, log)
    wait_for(proc, f"http://127.0.0.1:{port}/health/ready", log, timeout=600)
    return proc


def wrk(port: int, pid: int, customers: int, connections: int, seconds: float) -> dict[str, float]:
    cpu_before = tree_cpu_seconds(pid)
    result = subprocess.run(
        [
            *PINNED["client"],
            *("wrk", f"-c{connections}", "-t1", f"-d{seconds:g}s", "--timeout", "5s"),
            *("-s", str(LUA), f"http://127.0.0.1:{port}", "--", OFFERS_PATH, str(customers)),
            *("0", "1", f"Bearer {KEY}"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return wrk_result(result, tree_cpu_seconds(pid) - cpu_before)


def show(name: str, r: dict[str, float]) -> str:
    return (
        f"  {name:28s} {r['rps']:8.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
        f"p99 {r['p99_us'] / 1000:6.2f} ms  cpu {r['cpu_us']:6.1f} us/req  errors {errors_of(r)}"
    )


def over_http(
    artifact: Path, rounds: int, seconds: float, connections: int
) -> dict[str, dict[str, float]]:
    ensure_wrk()
    store_dir = WORK / "store-http"
    shutil.rmtree(store_dir, ignore_errors=True)
    FileStore(store_dir).publish(artifact.resolve())
    customers = int(json.loads((artifact / "manifest.json").read_text())["n_customers"])
    no_exp = catalog_without_experiments(WORK / "offers-no-experiments.toml")
    url = f"file://{store_dir}"
    ports = {"on": free_port(), "off": free_port()}
    procs = {
        "on": serve(url, ports["on"], None, WORK / "cache-on"),
        "off": serve(url, ports["off"], no_exp, WORK / "cache-off"),
    }
    try:
        for name in ports:
            wrk(ports[name], procs[name].pid, customers, connections, 3)  # warm up
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
        for round_no in range(1, rounds + 1):
            order = list(ports) if round_no % 2 else list(ports)[::-1]
            for name in order:
                runs[name].append(
                    wrk(ports[name], procs[name].pid, customers, connections, seconds)
                )
                print(show(f"round {round_no}: logging {name}", runs[name][-1]))
    finally:
        for proc in procs.values():
            stop(proc)
    log = store_dir / "live" / "exposures.ndjson"
    if log.exists():
        size = log.stat().st_size
        with log.open("rb") as file:
            count = sum(1 for _ in file)
        print(f"  the 'on' server logged {count:,} lines ({size:,} bytes); 'off' logs none")
    return {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in runs.items()
    }


# --- 3. the nightly outcome step ----------------------------------------------------------------


def outcome_data(customers: int) -> Path:
    from training.sources.generate import generate

    data = WORK / f"data-{customers}"
    if (
        not (data / "orders.parquet").exists()
        or not (data / "_service" / "exposures.ndjson").exists()
    ):
        print(f"generating {customers:,} demo customers into {data} (once)", flush=True)
        generate(data, customers, seed=42, show_progress=True)
    return data


def fill_log(store: FileStore, source: Path, repeat: int) -> None:
    """The simulated lines into the store's log, each `repeat` times (copy k later by k x 7h13m)."""
    import msgspec

    from training.progress import Progress

    decoder = msgspec.json.Decoder(Exposure)
    with source.open("rb") as file:
        original = [decoder.decode(raw) for raw in file if raw.strip()]
    step = dt.timedelta(hours=7, minutes=13)
    progress = Progress("fill exposure log", len(original) * repeat, unit="lines")
    batch: list[Exposure] = []
    for k in range(repeat):
        for line in original:
            batch.append(line if k == 0 else msgspec.structs.replace(line, at=line.at + k * step))
            if len(batch) == 50_000:
                store.exposures.append(batch)
                progress.advance(len(batch))
                batch = []
    store.exposures.append(batch)
    progress.advance(len(batch))
    progress.finish()


def outcomes(customers: int, repeat: int) -> dict[str, float]:
    import polars as pl

    from recsvc.domain import columns as c
    from recsvc.domain.privacy import Suppression
    from training.experiments.nightly import run_experiments
    from training.experiments.outcomes import (
        assignments,
        exposure_frame,
    )

    data = outcome_data(customers)
    store_dir = WORK / f"store-outcomes-{customers}"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = FileStore(store_dir)
    fill_log(store, data / "_service" / "exposures.ndjson", repeat)
    size = store.exposures.path.stat().st_size
    with store.exposures.path.open("rb") as file:
        count = sum(1 for _ in file)
    print(f"exposure log: {count:,} lines, {size:,} bytes ({size / max(count, 1):.0f} bytes/line)")
    tables = {
        c.ORDERS: pl.scan_parquet(data / f"{c.ORDERS}.parquet"),
        c.NPS_RESPONSES: pl.scan_parquet(data / f"{c.NPS_RESPONSES}.parquet"),
    }
    as_of = max(
        tables[c.ORDERS].select(pl.col(c.ORDERED_AT).max()).collect().item(),
        tables[c.NPS_RESPONSES].select(pl.col(c.RESPONDED_AT).max()).collect().item(),
    )
    catalog = load_offers()
    seconds: dict[str, float] = {}

    def part(name: str, action: Callable[[], object]) -> object:
        started = time.perf_counter()
        result = action()
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        return result

    frame = part("read the log", lambda: exposure_frame(store.exposures.read()))
    assert isinstance(frame, pl.DataFrame)
    assigned = part("assignments", lambda: assignments(frame))
    assert isinstance(assigned, pl.DataFrame)
    experiments = assigned["experiment"].n_unique()
    out = Path(tempfile.mkdtemp(prefix="bench-experiments-", dir=WORK))
    print(f"  {experiments} experiments, {frame.height:,} lines -> {assigned.height:,} assignments")
    started = time.perf_counter()
    run = run_experiments(
        store.exposures, None, tables, as_of, catalog, out, Suppression(), show=False
    )
    seconds["run_experiments end to end"] = time.perf_counter() - started
    assert run.assigned == assigned.height
    # The night as the run does it: the same, then every line folded into the compacted
    # assignments and the log emptied; and the next night, from the folded assignments alone.
    started = time.perf_counter()
    run_experiments(
        store.exposures,
        None,
        tables,
        as_of,
        catalog,
        out,
        Suppression(),
        show=False,
        compact_before=dt.datetime.now(dt.UTC),
        erasures=Suppression,
    )
    seconds["... with the compaction"] = time.perf_counter() - started
    started = time.perf_counter()
    again = run_experiments(
        store.exposures, None, tables, as_of, catalog, out, Suppression(), show=False
    )
    seconds["the next night, from the compacted log"] = time.perf_counter() - started
    assert again.assigned == assigned.height
    shutil.rmtree(out, ignore_errors=True)
    store.close()
    seconds["log bytes"] = size
    seconds["log lines"] = count
    return seconds


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="artifact's customers")
    parser.add_argument("--artifact", type=Path, help="an artifact directory instead")
    parser.add_argument("--samples", type=int, default=20_000, help="in-process customers drawn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--outcome-customers", type=int, default=1_000_000)
    parser.add_argument("--exposure-repeat", type=int, default=1)
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-outcomes", action="store_true")
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    if not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        PINNED["server"] = ["taskset", "-c", "0"]
        PINNED["client"] = ["taskset", "-c", "1"]
    random.seed(7)
    report: list[str] = []
    if not (args.skip_in_process and args.skip_http):
        artifact = args.artifact or artifact_for(args.customers)
        manifest = json.loads((artifact / "manifest.json").read_text())
        print(
            f"version of {manifest['n_customers']:,} customers, {manifest['n_items']:,} "
            f"products; {os.cpu_count()} cores"
        )
        if not args.skip_in_process:
            med = in_process(artifact, args.samples, args.rounds, args.redis_url)
            report.append(
                f"in process, offers_for() over customers earning an experiment's offer "
                f"(medians of {args.rounds} rounds; us/request wall, and CPU of all this "
                "process' threads):"
            )
            for name, (wall, cpu) in med.items():
                report.append(
                    f"  {name:16s} wall {wall:7.1f} us ({wall / med['off'][0]:5.3f}x off)   "
                    f"cpu {cpu:7.1f} us ({cpu / med['off'][1]:5.3f}x off)"
                )
            for name in ("file", "redis"):
                wall = med[name][0] / med["off"][0]
                cpu = med[name][1] / med["off"][1]
                report.append(
                    f"  logging on ({name}) / off: wall {wall:.3f}x, cpu {cpu:.3f}x  target <= "
                    f"{TARGET:.2f}x  " + ("met" if max(wall, cpu) <= TARGET else "NOT MET")
                )
        if not args.skip_http:
            print(
                "HTTP: 'off' = RECSVC_OFFERS_FILE without [offers.*.experiment] tables (no exposure"
                " lines; also no assignment hash, and holdouts are shown their offers)"
            )
            med_http = over_http(artifact, args.rounds, args.duration, args.connections)
            report.append(
                f"HTTP, recsvc serve --workers 1, file store, wrk -c{args.connections}, random "
                f"customers (medians of {args.rounds} rounds of {args.duration:g} s"
                + (", server CPU 0, wrk CPU 1):" if PINNED["server"] else ", unpinned):")
            )
            for name in ("off", "on"):
                report.append(show(f"logging {name}", med_http[name]))
            on, off = med_http["on"], med_http["off"]
            time_ratio = off["rps"] / on["rps"]
            report.append(
                f"  time per request on / off (req/s off / on): {time_ratio:.3f}x  target <= "
                f"{TARGET:.2f}x  " + ("met" if time_ratio <= TARGET else "NOT MET")
            )
            report.append(f"  server CPU per request on / off: {on['cpu_us'] / off['cpu_us']:.3f}x")
            report.append(
                "  (req/s swings between rounds when other work shares the cores; the server's "
                "CPU per request is the steadier measure)"
            )
        report.append(f"peak RSS so far: {peak_rss_mib():,.0f} MiB")
    if not args.skip_outcomes:
        numbers = outcomes(args.outcome_customers, args.exposure_repeat)
        report.append(
            f"nightly outcome step, {args.outcome_customers:,} customers, exposure lines x"
            f"{args.exposure_repeat}: log {int(numbers.pop('log lines')):,} lines, "
            f"{int(numbers.pop('log bytes')):,} bytes"
        )
        for name, value in numbers.items():
            report.append(f"  {name:30s} {value:8.2f} s")
    report.append(f"peak RSS of this process: {peak_rss_mib():,.0f} MiB")
    print()
    print("\n".join(report))


if __name__ == "__main__":
    main()
