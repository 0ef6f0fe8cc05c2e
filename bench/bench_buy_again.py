"""Buy-again variants on the run's own hold-out: what each piece of the blend adds, and one piece
that was measured and left out (the customer's own reorder interval).

    uv run python bench/bench_buy_again.py --data var/demo/data
    uv run python bench/bench_buy_again.py --data var/retail/data

The shop's folder goes through the run's steps (validate, segments, features and the hold-out
split, the hold-out fit; deterministic mode), then through the evaluation's buy-again protocol:
its sample, halves, blended lists and NDCG code (`training.recommender.evaluate`). Each variant's
blend is tuned on half A over its own grid and reported on half B, as a ratio to the better of the
two own-history lists (by lines, and 0.9 per order back) with a 95% paired bootstrap interval:

- before: weight x timing {0, 1}, line counts (the blend as it was);
- recency weights: the same timings, decays 1.0 to 0.5;
- wider timings: timings 0, 0.25, 0.5, 1, decays 1.0 to 0.5;
- repeat rate (shipped): the evaluation's `BLEND_GRID`, the above with the products' repeat rate
  to the power 0 or 0.5;
- own interval: the shipped grid, the due factor from the customer's own median gap between
  purchases of the product where they bought it on two days or more, the product's otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from recsvc.version import scoring
from recsvc.version.scoring import BlendParams
from training.config import load_config
from training.recommender import evaluate as ev
from training.recommender.dataset import TrainingPurchases, purchase_gaps
from training.recommender.metrics import (
    bootstrap_interval,
    item_sets,
    ndcg_per_user,
    paired_ratio_interval,
)
from training.run import steps

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from bench_baselines import shop_data  # noqa: E402

WORK = ROOT / "var" / "bench" / "buy_again"
WEIGHTS = (0.25, 0.5, 0.75, 0.9, 1.0)


def grid(timings: Sequence[float], decays: Sequence[float]) -> list[BlendParams]:
    return [BlendParams(weight=0.0, timing=0.0)] + [
        BlendParams(weight=w, timing=t, decay=d) for d in decays for t in timings for w in WEIGHTS
    ]


def own_intervals(train_lines: pl.DataFrame, train: TrainingPurchases) -> np.ndarray:
    """Each purchase's median gap in days between the customer's purchase days of the product
    (nan below two days), aligned with `train.items`."""
    gaps = purchase_gaps(train_lines).group_by("u", "i").agg(pl.col("gap").median())
    owners = np.repeat(np.arange(train.indptr.size - 1), np.diff(train.indptr))
    aligned = pl.DataFrame({"u": owners.astype(np.int32), "i": train.items}).join(
        gaps, on=["u", "i"], how="left", maintain_order="left"
    )
    return aligned["gap"].cast(pl.Float64).fill_null(np.nan).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "demo" / "data")
    args = parser.parse_args()
    config = load_config(deterministic=True)
    k = config.k
    started = time.perf_counter()
    _, data = shop_data(args.data, WORK, config)
    held = data.holdout
    model = steps.fit_hold_out(data, config, False).arrays
    train = held.train
    sample = ev._Sample.draw(model, train, held.test, config.max_eval_users, config.seed)
    scored = ev._model_pass(model, sample.vectors, sample.bought, k)
    users, n = sample.users, sample.users.size
    half = np.random.default_rng(config.seed).permutation(n)
    halves = {"A": np.sort(half[: n // 2]), "B": np.sort(half[n // 2 :])}
    popularity = np.bincount(train.items, weights=train.counts, minlength=model.n_items)
    item_cycle = np.asarray(model.item_reorder_days, dtype=np.float64)[train.items]
    own = own_intervals(held.train_lines, train)
    cycles = {"item": item_cycle, "own": np.where(np.isfinite(own), own, item_cycle)}
    weights: dict[float, np.ndarray] = {}

    repeat_rate = train.repeat_rate(model.n_items)[train.items]

    def lists_of(rows: np.ndarray, cycle: np.ndarray) -> Callable[[BlendParams], np.ndarray]:
        spans = [train.row(int(users[r])) for r in rows]
        pool = ev._BuyAgainPool.of(scored, rows, sample.bought, spans)
        owner = users[rows][pool.row[pool.first_bought :]]
        days = held.test_from_day[owner].astype(np.float64) - train.last_day[pool.purchase]

        def lists(params: BlendParams) -> np.ndarray:
            if params.decay not in weights:
                weights[params.decay] = train.weights(params.decay)
            propensity = scoring.repeat_propensity(
                weights[params.decay][pool.purchase],
                days,
                cycle[pool.purchase],
                params.timing,
                repeat_rate=repeat_rate[pool.purchase],
                repeat=params.repeat,
            )
            return ev._blended_lists(pool, rows.size, propensity, params, k)

        return lists

    truth = {
        h: item_sets([sample.truth_all[r] for r in rows], model.n_items)
        for h, rows in halves.items()
    }
    by_lines = ev._own_history_lists(train, users[halves["B"]], train.counts, popularity, k)
    recent = ev._own_history_lists(
        train, users[halves["B"]], train.weights(ev.BASELINE_DECAY), popularity, k
    )
    baselines = {
        "own_most_frequent": ndcg_per_user(by_lines, truth["B"]),
        "recency_weighted_own_frequency": ndcg_per_user(recent, truth["B"]),
    }
    best = max(baselines, key=lambda m: baselines[m].mean())
    print(
        f"buy again, NDCG@{k}: tuned on {halves['A'].size:,} customers (A), reported on "
        f"{halves['B'].size:,} (B); {held.split.kind} split"
    )
    for method, values in baselines.items():
        low, high = bootstrap_interval(values)
        print(f"  {method:<34} B {values.mean():.4f} ({low:.4f}-{high:.4f})")
    variants = {
        "before (line counts, timing 0/1)": (grid((0.0, 1.0), (1.0,)), "item"),
        "recency weights (timing 0/1)": (grid((0.0, 1.0), ev.BLEND_DECAYS), "item"),
        "wider timings": (grid((0.0, 0.25, 0.5, 1.0), ev.BLEND_DECAYS), "item"),
        "repeat rate (shipped)": (list(ev.BLEND_GRID), "item"),
        "own interval (shipped grid)": (list(ev.BLEND_GRID), "own"),
    }
    for label, (settings, cycle) in variants.items():
        tuning = lists_of(halves["A"], cycles[cycle])
        scores = {p: float(ndcg_per_user(tuning(p), truth["A"]).mean()) for p in settings}
        tuned = max(settings, key=lambda p: scores[p])
        values = ndcg_per_user(lists_of(halves["B"], cycles[cycle])(tuned), truth["B"])
        ratio = values.mean() / baselines[best].mean()
        low, high = paired_ratio_interval(values, baselines[best])
        print(
            f"  {label:<34} A {scores[tuned]:.4f}  B {values.mean():.4f}  {ratio:.2f}x {best} "
            f"({low:.2f}-{high:.2f})  weight {tuned.weight}, timing {tuned.timing}, "
            f"decay {tuned.decay}, repeat {tuned.repeat}"
        )
    print(f"time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
