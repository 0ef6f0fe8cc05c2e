"""Time the segmentation step (customer table + segment lists + NPS report) on demo data.

    uv run python bench/bench_segments.py                  # 100k customers
    uv run python bench/bench_segments.py 100000 1000000   # both sizes

Demo data is generated and validated once per size and seed, cached under var/bench/ (delete a
folder to rebuild it). Each size runs in
its own subprocess, so the peak memory printed (ru_maxrss) is that size's alone. Only the
segmentation step is timed, not generation or validation. Target: 1M customers / ~10M order lines
in under 60 s on 2 cores with a peak under 4 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "var" / "bench"


def clean_tables_dir(customers: int, seed: int) -> Path:
    """Generate and validate demo data once per size and seed; return the folder of clean parquet."""
    from training.sources.generate import generate
    from training.validate.dataset import validate_dataset

    base = CACHE / f"demo-{customers}-seed{seed}"
    raw, clean = base / "raw", base / "clean"  # validate_dataset writes <base>/clean
    if not (clean / "orders.parquet").exists():
        started = time.perf_counter()
        if not (raw / "orders.parquet").exists():
            generate(raw, customers, seed)
        validate_dataset(raw, base)
        print(
            f"prepared {customers:,} customers in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
    return clean


def child(data_dir: Path, out_dir: Path) -> None:
    """Run the timed step in this process and print one JSON line of measurements."""
    from training.run.segmentation import run_segmentation
    from training.validate.dataset import read_clean_tables

    started = time.perf_counter()
    result = run_segmentation(read_clean_tables(data_dir), out_dir, show_progress=False)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "customers": result.customers,
                "order_lines": result.order_lines,
                "seconds": seconds,
                "peak_mib": peak_kib / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000], help="customers per run")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", nargs=2, metavar=("DATA_DIR", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    for customers in args.sizes:
        data_dir = clean_tables_dir(customers, args.seed)
        out_dir = CACHE / f"out-{customers}-seed{args.seed}"
        completed = subprocess.run(
            [sys.executable, __file__, "--child", str(data_dir), str(out_dir)],
            check=True,
            capture_output=True,
            text=True,
        )
        m = json.loads(completed.stdout.strip().splitlines()[-1])
        print(
            f"segments: {m['customers']:,} customers, {m['order_lines']:,} order lines in "
            f"{m['seconds']:.1f}s = {m['order_lines'] / m['seconds']:,.0f} order lines/s "
            f"({m['customers'] / m['seconds']:,.0f} customers/s), peak memory {m['peak_mib']:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
