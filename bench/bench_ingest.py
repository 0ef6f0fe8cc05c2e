"""Times the demo-data generator and the validator, and prints rows/s and peak memory.

Each step runs in its own process so its peak resident memory is its own. The baseline is a bare
polars pass over the same files (read every table, write it back as Parquet), measured in the same
run: the validator's time divided by it says what validation costs beyond plain I/O.

    uv run python bench/bench_ingest.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(step: str, customers: int, data: Path, work: Path) -> None:
    """Run one step in this process and print its measurements as JSON."""
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    if step == "generate":
        from training.sources.generate import generate

        if data.exists():
            shutil.rmtree(data)
        generate(data, customers, seed=7, show_progress=False)
    elif step == "validate":
        from training.validate.dataset import validate_dataset

        validate_dataset(data, work / "validation", show_progress=False)
    elif step == "baseline":
        import polars as pl

        out = work / "baseline"
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(data.glob("*.parquet")):
            pl.scan_parquet(path).sink_parquet(out / path.name)
    seconds = time.perf_counter() - started
    import polars as pl

    rows = {
        p.stem: pl.scan_parquet(p).select(pl.len()).collect().item()
        for p in sorted(data.glob("*.parquet"))
    }
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": peak_mb}))


def _measure(step: str, customers: int, data: Path, work: Path) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            step,
            "--customers",
            str(customers),
            "--data",
            str(data),
            "--work",
            str(work),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="customer counts"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT / "var" / "bench" / "ingest", help="scratch folder"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.customers, args.data, args.work)
        return

    print(
        f"{'customers':>10} {'step':>9} {'seconds':>8} {'rows':>12} {'rows/s':>11} {'peak MB':>8} {'vs baseline':>11}"
    )
    for customers in args.sizes:
        data = args.root / f"c{customers}" / "data"
        work = args.root / f"c{customers}" / "work"
        results = {
            step: _measure(step, customers, data, work)
            for step in ("generate", "baseline", "validate")
        }
        total_rows = sum(results["generate"]["rows"].values())
        for step, r in results.items():
            ratio = r["seconds"] / results["baseline"]["seconds"]
            print(
                f"{customers:>10,} {step:>9} {r['seconds']:>8.1f} {total_rows:>12,} "
                f"{total_rows / r['seconds']:>11,.0f} {r['peak_mb']:>8,.0f} {ratio:>10.1f}x"
            )
        orders = results["generate"]["rows"].get("orders", 0)
        print(
            f"{'':>10} (order lines: {orders:,}; rows = all tables; baseline = bare polars read+write)"
        )


if __name__ == "__main__":
    main()
