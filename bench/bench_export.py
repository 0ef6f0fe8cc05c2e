"""Time the profile-table writer and the segment export (target: at least 200k rows/s).

    uv run python bench/bench_export.py            # 1M customers, all formats
    uv run python bench/bench_export.py 100000 --formats csv

The customer table comes from `bench/bench_segments.py`'s output for the same size (run it first,
or this script runs it: generating 1M customers takes a few minutes once, then it is cached under
var/bench/). A segment holding every customer (`everyone`) is added, so the export is N members.

Measured, per format: the writer (`write_serving_tables`), then the export three ways:
- generator: `plan_export(...).chunks()` written to /dev/null in this process (default fields,
  read from the narrow export records; and once with `--fields`, read from the full records);
- HTTP: `GET /v1/segments/everyone/members` from a uvicorn server in a subprocess, read by httpx
  (every format with the default fields, then CSV with `--fields`);
- baseline: the same bytes, pre-built as a list of pieces, streamed by that server (what HTTP costs
  without any export work).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Stream

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "var" / "bench"
SEGMENT = "everyone"
EXTRA_FIELDS = "country,monetary_value,favourite_categories,last_delivery_late"
EVERYONE_TOML = f'[segments.{SEGMENT}]\ndescription = "Every customer."\nexpression = "customer_id is not None"\n'


def version_dir(customers: int, seed: int) -> tuple[Path, float]:
    """A directory with customer_ids.npy and the serving tables; returns it and the writer's seconds."""
    import numpy as np
    import polars as pl

    from recsvc.domain import customer_table as ct
    from recsvc.domain.segments.catalog import DEFAULT_SEGMENTS_PATH, parse_segments
    from training.customers.segments import assign_segments
    from training.publish.profiles import write_serving_tables

    table_path = CACHE / f"out-{customers}-seed{seed}" / "customers.parquet"
    if not table_path.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "bench_segments.py"), str(customers)], check=True
        )
    table = pl.read_parquet(table_path).drop(ct.SEGMENTS, ct.PRIMARY_SEGMENT)
    extras = [name for name in table.columns if name not in ct.COLUMNS]
    rules = parse_segments(
        [("defaults", DEFAULT_SEGMENTS_PATH.read_text()), ("bench", EVERYONE_TOML)],
        extra_columns=extras,
    )
    table = assign_segments(table.lazy(), rules).collect()
    directory = CACHE / f"export-{customers}-seed{seed}"
    directory.mkdir(parents=True, exist_ok=True)
    ids = np.sort(table["customer_id"].to_numpy().astype(str))
    np.save(directory / "customer_ids.npy", ids)
    started = time.perf_counter()
    write_serving_tables(table, ids, rules, directory)
    return directory, time.perf_counter() - started


def _model(directory: Path) -> SimpleNamespace:
    from recsvc.version.profiles import Profiles

    return SimpleNamespace(version=directory.name, profiles=Profiles.open(directory))


def time_generator(directory: Path, fmt: str, fields: str | None = None) -> tuple[int, int, float]:
    from recsvc.service.exports.plan import plan_export

    model = _model(directory)
    export = plan_export(model.profiles, model.version, SEGMENT, export_format=fmt, fields=fields)
    size = 0
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        for piece in export.chunks():
            sink.write(piece)
            size += len(piece)
    return export.rows, size, time.perf_counter() - started


def serve(directory: Path, port: int) -> None:
    """The server subprocess: the segment routes plus /baseline/{format} (pre-built pieces)."""
    import uvicorn

    from recsvc.api.errors import EXCEPTION_HANDLERS
    from recsvc.api.segments.controllers import SegmentController
    from recsvc.service.exports.plan import plan_export
    from recsvc.service.settings import Settings

    model = _model(directory)
    prebuilt: dict[str, list[bytes]] = {}

    @get("/baseline/{fmt:str}", sync_to_thread=False)
    def baseline(fmt: FromPath[str]) -> Stream:
        if fmt not in prebuilt:
            export = plan_export(model.profiles, model.version, SEGMENT, export_format=fmt)
            prebuilt[fmt] = list(export.chunks())
        return Stream(iter(prebuilt[fmt]))

    app = Litestar(
        route_handlers=[SegmentController, baseline],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        # What the segment routes read: the settings and a holder of the active version.
        state=State({"settings": Settings(), "holder": SimpleNamespace(current=model)}),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def fetch(url: str) -> tuple[int, float]:
    size = 0
    started = time.perf_counter()
    with httpx.stream("GET", url, timeout=600) as response:
        response.raise_for_status()
        for piece in response.iter_raw():
            size += len(piece)
    return size, time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("customers", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--formats", default="csv,ndjson,parquet")
    parser.add_argument(
        "--fields",
        default=EXTRA_FIELDS,
        help="also time a CSV export of these fields (read from the full records)",
    )
    parser.add_argument("--serve", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return

    directory, writer_seconds = version_dir(args.customers, args.seed)
    size = sum(p.stat().st_size for p in directory.iterdir()) / 1e6
    print(
        f"writer: {args.customers:,} customers in {writer_seconds:.1f}s "
        f"({args.customers / writer_seconds:,.0f} customers/s, {size:,.0f} MB on disk)"
    )
    formats = args.formats.split(",")
    for fmt in formats:
        rows, nbytes, seconds = time_generator(directory, fmt)
        print(
            f"generator {fmt:8} {rows:,} rows {nbytes / 1e6:7.1f} MB in {seconds:5.2f}s = "
            f"{rows / seconds:>10,.0f} rows/s"
        )

    if args.fields:
        rows, nbytes, seconds = time_generator(directory, "csv", args.fields)
        print(
            f"generator csv      {rows:,} rows {nbytes / 1e6:7.1f} MB in {seconds:5.2f}s = "
            f"{rows / seconds:>10,.0f} rows/s   (fields={args.fields}: full records)"
        )

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(directory), str(port)], cwd=ROOT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            if server.poll() is not None:
                raise SystemExit("the bench server exited")
            try:
                fetch(f"{base}/v1/segments")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        for fmt in formats:
            fetch(f"{base}/baseline/{fmt}")  # build the pre-built list before timing it
            nbytes, seconds = fetch(f"{base}/v1/segments/{SEGMENT}/members?format={fmt}")
            base_bytes, base_seconds = fetch(f"{base}/baseline/{fmt}")
            print(
                f"HTTP      {fmt:8} {args.customers:,} rows {nbytes / 1e6:7.1f} MB in {seconds:5.2f}s = "
                f"{args.customers / seconds:>10,.0f} rows/s   (baseline, same {base_bytes / 1e6:.1f} MB "
                f"pre-built: {base_seconds:.2f}s = {args.customers / base_seconds:,.0f} rows/s)"
            )
        if args.fields:
            query = f"format=csv&fields={args.fields}"
            nbytes, seconds = fetch(f"{base}/v1/segments/{SEGMENT}/members?{query}")
            print(
                f"HTTP      csv      {args.customers:,} rows {nbytes / 1e6:7.1f} MB in {seconds:5.2f}s = "
                f"{args.customers / seconds:>10,.0f} rows/s   (fields={args.fields}: full records)"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
