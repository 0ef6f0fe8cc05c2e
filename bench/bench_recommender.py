"""Times a whole training run, then online and batch scoring with the published artifact.

    uv run python bench/bench_recommender.py --customers 1000000

Prints: each step of the run (validate, segments, features, fits with per-epoch time, evaluation,
artifact), the share of the run spent outside the LightFM fits (target: under 30% of fit time),
single-customer top-10 latency over the full catalogue (target: under 2 ms), and batch top-10 for
every customer (target: 1M x 50k under 10 minutes). The baseline for online scoring is the bare
matrix-vector product over the item vectors, measured in the same run.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from recsvc.store import open_store
from recsvc.version.scoring import batch_top_k, known_customer_vector, score_items, top_k
from training.config import load_config
from training.recommender.search import describe_search
from training.run.pipeline import run_pipeline
from training.sources.generate import generate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, help="override the configured epochs")
    parser.add_argument("--root", type=Path, default=ROOT / "var" / "bench" / "recommender")
    parser.add_argument(
        "--batch-customers", type=int, help="score only this many customers in the batch step"
    )
    args = parser.parse_args()

    data = args.root / f"data-{args.customers}"
    if not (data / "orders.parquet").exists():
        print(f"generating {args.customers:,} customers into {data}")
        generate(data, args.customers, seed=7, show_progress=False)
    store_dir = args.root / f"store-{args.customers}"
    shutil.rmtree(store_dir, ignore_errors=True)
    config = load_config(epochs=args.epochs)
    started = time.perf_counter()
    record = run_pipeline(
        data, store=f"file://{store_dir}", config=config, runs_dir=args.root / "runs", force=True
    )
    total = time.perf_counter() - started
    fit_seconds = sum(v for k, v in record.steps.items() if k.startswith("fit"))
    search_seconds = record.steps.get("search", 0.0)
    other = total - fit_seconds - search_seconds
    # The search chooses the epochs (early stopping); without one, the configured ones.
    epochs = config.epochs
    if record.search is not None:
        epochs = next(t.epochs for t in record.search.trials if t.name == record.search.chosen)
        print(describe_search(record.search))
    print(f"\ntraining run on {args.customers:,} customers: {total:.1f}s")
    for step, seconds in record.steps.items():
        print(f"  {step:<18} {seconds:>8.1f}s")
    per_epoch = fit_seconds / (max(epochs, 1) * (2 if config.refit_on_all_data else 1))
    print(
        f"  LightFM fits {fit_seconds:.1f}s ({per_epoch:.1f}s per epoch, {epochs} epochs per fit)"
    )
    print(f"  search {search_seconds:.1f}s")
    print(
        f"  outside the fits and the search: {other:.1f}s = {other / fit_seconds:.0%} of fit time "
        "(target < 30%)"
    )

    store = open_store(f"file://{store_dir}")
    model = store.load_active()
    assert model is not None
    arrays = model.arrays
    rng = np.random.default_rng(0)
    customers = rng.integers(0, arrays.n_customers, size=2_000)
    baseline, full = [], []
    for customer in customers:
        t0 = time.perf_counter()
        vector, _ = known_customer_vector(arrays, int(customer))
        scores = score_items(arrays, vector)
        t1 = time.perf_counter()
        bought = arrays.purchases.items[arrays.purchases.row(int(customer))]
        top_k(scores, 10, excluded=bought)
        t2 = time.perf_counter()
        baseline.append(t1 - t0)
        full.append(t2 - t0)
    b, f = np.array(baseline) * 1e3, np.array(full) * 1e3
    print(
        f"\nonline top-10 over {arrays.n_items:,} items: median {np.median(f):.3f} ms, p99 {np.percentile(f, 99):.3f} ms "
        f"(bare scoring {np.median(b):.3f} ms; ratio {np.median(f) / np.median(b):.2f}x; target < 2 ms)"
    )

    n = args.batch_customers or arrays.n_customers
    t0 = time.perf_counter()
    block = 4_096
    for start in range(0, n, block):
        batch_top_k(arrays, np.arange(start, min(start + block, n)), 10)
    seconds = time.perf_counter() - t0
    projected = seconds * arrays.n_customers / n
    print(
        f"batch top-10 for {n:,} customers x {arrays.n_items:,} items: {seconds:.1f}s "
        f"({n / seconds:,.0f} customers/s; all {arrays.n_customers:,}: {projected:.0f}s; target < 600s)"
    )
    del model


if __name__ == "__main__":
    main()
