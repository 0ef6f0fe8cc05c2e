"""The product's model against plain LightFM, EASE, item-kNN and popularity on the product's own
hold-out ("new items": already-bought products excluded), NDCG@k with 95% bootstrap intervals.

    uv run python bench/bench_baselines.py --data var/demo/data
    uv run python bench/bench_baselines.py --data var/retail/data
    uv run python bench/bench_baselines.py --data var/public/complete-journey-min20/data

(public sets: `bench/public_data.py` downloads and converts them first.)

How: the shop's folder goes through the training run's own steps (validate, segments, features:
`training.recommender.holdout`'s split, the last `holdout_days` or each customer's last orders),
with the configured settings in deterministic mode (one LightFM thread, seed 42). Then:

- model: the run's settings search (`training.run.steps.search_settings`, as a run without an
  active version: its table is printed), then `fit_hold_out` and `evaluate_hold_out`, the run's
  hold-out fit and evaluation with the chosen settings, whose report is printed as the run prints
  it;
- every method is scored on the evaluation's customers (`evaluate._Sample.draw`, same seed and
  `max_eval_users`), its lists through `evaluate._ranked_lists` (bought products excluded) and
  `metrics.ndcg_per_user` against the held-out products they had not bought before;
- plain LightFM: WARP, 32 components, 20 epochs, learning rate 0.05, identity features only,
  unweighted binary purchases of the training lines, one thread, seed 42;
- EASE (Steck 2019): B = I - P diag(1/diag(P)), P = (X'X + lambda I)^-1 on the binary
  customer x product matrix of the training purchases; lambda from `--ease-grid` by NDCG@k on a
  validation split carved from the training lines only (their last `holdout_days` days held out,
  customers on both sides), then refitted on all training lines. Skipped when the catalogue has
  more than `--max-dense-items` products (the product's own EASE code, `training.recommender.ease`:
  X'X and one working matrix, float32, 20,000 products are 3.2 GB);
- item-kNN: cosine similarity of products' binary buyer vectors, each product's `--neighbours`
  best neighbours kept, score = sum of the similarities to the customer's products (same budget);
- popularity: the evaluation's (purchases counted over all training lines), and the customers
  who bought each product in the last 28 days of training.

Own-frequency (by lines, and recency-weighted: 0.9 per order back) is a buy-again baseline: the
new-items table cannot score it (every product it ranks is excluded), so it is printed from the
evaluation's own "buy again" protocol beside the model and the blend, with the blend's tuned
setting and its ratio to the better own-history list (95% paired interval). Ratios to plain
LightFM come with a 95% paired bootstrap interval (the same customers resampled for both,
`metrics`' rounds and seed).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsvc.domain.privacy import Suppression
from recsvc.version.scoring import Purchases
from training.config import TrainingConfig, load_config
from training.recommender import dataset as ds
from training.recommender import ease
from training.recommender import evaluate as ev
from training.recommender.holdout import TrainingData
from training.recommender.metrics import (
    bootstrap_interval,
    item_sets,
    ndcg_per_user,
    paired_ratio_interval,
)
from training.recommender.search import format_search
from training.run import steps

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench" / "baselines"
Scorer = Callable[[np.ndarray], np.ndarray]  # sample rows -> (rows, items) scores


def binary(purchases: Purchases, n_items: int) -> sp.csr_matrix:
    """Customer x product, 1 where the customer bought the product."""
    ones = np.ones(purchases.items.size, dtype=np.float64)
    n_users = purchases.indptr.size - 1
    return sp.csr_matrix((ones, purchases.items, purchases.indptr), shape=(n_users, n_items))


def ease_weights(x: sp.csr_matrix, lam: float) -> np.ndarray:
    return ease.ease_weights(ease.gram(x), lam)


def knn_weights(x: sp.csr_matrix, neighbours: int) -> np.ndarray:
    co = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(co).copy())
    norms[norms == 0] = 1.0
    sim = co / norms[:, None] / norms[None, :]
    sim[np.diag_indices_from(sim)] = 0.0
    if neighbours < sim.shape[0] - 1:
        # Keep each product's best `neighbours` (row i: product i's neighbours).
        drop = np.argpartition(-sim, neighbours, axis=1)[:, neighbours:]
        np.put_along_axis(sim, drop, 0.0, axis=1)
    # score(customer, j) = sum over their products i of sim(i, j): rows are the source products.
    return sim


def plain_lightfm(x: sp.csr_matrix, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from lightfm import LightFM

    model = LightFM(
        no_components=32, loss="warp", learning_rate=0.05, random_state=np.random.RandomState(seed)
    )
    coo = x.tocoo()
    data = sp.coo_matrix(
        (
            np.ones(coo.nnz, dtype=np.float32),
            (np.array(coo.row, dtype=np.int32), np.array(coo.col, dtype=np.int32)),
        ),
        shape=coo.shape,
    )
    model.fit(data, epochs=20, num_threads=1)
    return (
        np.asarray(model.user_embeddings, dtype=np.float64),
        np.asarray(model.item_embeddings, dtype=np.float64),
        np.asarray(model.item_biases, dtype=np.float64),
    )


def per_user(
    scorer: Scorer, n: int, k: int, bought: list[np.ndarray], truth: sp.csr_matrix
) -> np.ndarray:
    return ndcg_per_user(ev._ranked_lists(n, k, scorer, bought), truth)


def ratio_interval(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float, float]:
    """Ratio of mean NDCGs and its 95% paired bootstrap interval (same customers resampled)."""
    low, high = paired_ratio_interval(ours, theirs)
    return float(ours.mean() / max(theirs.mean(), 1e-12)), low, high


def shop_data(data_dir: Path, root: Path, config: TrainingConfig) -> tuple[Path, TrainingData]:
    """The run's own steps up to its hold-out split (validate, segments, features) on a shop's
    folder, in a fresh work folder under `root` named for the shop: (work folder, the data)."""
    name = data_dir.name if data_dir.name != "data" else data_dir.parent.name
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    (work / "artifact").mkdir(parents=True)
    clean = steps.validate(data_dir, work / "validation", 0.05, Suppression(), False)
    segments = steps.segment(clean.tables, [], work / "artifact")
    return work, steps.features(clean.tables, segments, config)


def ease_validation(
    lines_train: pl.DataFrame,
    n_users: int,
    n_items: int,
    days: int,
    grid: list[float],
    k: int,
    max_users: int,
    seed: int,
) -> tuple[float, dict[float, float]]:
    """lambda with the best NDCG@k on the last `days` of the training lines (never the test)."""
    last = int(lines_train["day"].max() or 0)  # type: ignore[arg-type]
    cut = last - days + 1
    fit_p = ds.purchases(lines_train.filter(pl.col("day") < cut), n_users)
    val_p = ds.purchases(lines_train.filter(pl.col("day") >= cut), n_users)
    users = ev.sample_users(fit_p, val_p, max_users, seed)
    bought = [fit_p.items[fit_p.row(int(u))] for u in users]
    truth = item_sets(
        [
            np.setdiff1d(val_p.items[val_p.row(int(u))], b)
            for u, b in zip(users, bought, strict=True)
        ],
        n_items,
    )
    x = binary(fit_p, n_items)
    xs = x[users]
    scores: dict[float, float] = {}
    for lam in grid:
        b = ease_weights(x, lam)

        def score(rows: np.ndarray, b: np.ndarray = b) -> np.ndarray:
            return np.asarray(xs[rows] @ b)

        values = per_user(score, users.size, k, bought, truth)
        scores[lam] = float(values.mean()) if values.size else math.nan
    best = max(grid, key=lambda lam: scores[lam] if math.isfinite(scores[lam]) else -1.0)
    return best, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "demo" / "data")
    parser.add_argument("--ease-grid", type=float, nargs="+", default=[10, 100, 500, 1000, 5000])
    parser.add_argument("--max-dense-items", type=int, default=20_000)
    parser.add_argument("--neighbours", type=int, default=100)
    args = parser.parse_args()

    config = load_config(deterministic=True)
    k = config.k
    timings: dict[str, float] = {}

    started = time.perf_counter()
    _, data = shop_data(args.data, WORK, config)
    timings["data and split"] = time.perf_counter() - started
    held = data.holdout
    n_items = len(data.items.ids)
    n_users = len(data.users.ids)

    started = time.perf_counter()
    # The product's own settings search, as a run without an active version does it.
    searched = steps.search_settings(data, None, config, False)
    config = searched.config
    if searched.record is not None:
        print(format_search(searched.record))
    timings["search"] = time.perf_counter() - started

    started = time.perf_counter()
    fitted = steps.fit_hold_out(data, config, False)
    report = steps.evaluate_hold_out(fitted, data, config, False).report
    timings["model (fit + evaluation)"] = time.perf_counter() - started
    print(ev.format_evaluation(report))

    sample = ev._Sample.draw(
        fitted.arrays, held.train, held.test, config.max_eval_users, config.seed
    )
    n, bought, truth = sample.users.size, sample.bought, sample.truth_new_matrix
    users = sample.users
    results: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}

    started = time.perf_counter()
    model_top = ev._model_pass(fitted.arrays, sample.vectors, bought, k).top
    results["model (product's hold-out fit)"] = ndcg_per_user(model_top, truth)
    timings["model (fit + evaluation)"] += time.perf_counter() - started
    check = results["model (product's hold-out fit)"].mean()
    assert abs(check - report.new_items["model"].ndcg) < 1e-9, (check, report.new_items)

    x = binary(held.train, n_items)
    xs = x[users]

    started = time.perf_counter()
    uv, iv, ib = plain_lightfm(x, config.seed)
    results["plain LightFM"] = per_user(
        lambda rows: uv[users[rows]] @ iv.T + ib, n, k, bought, truth
    )
    timings["plain LightFM"] = time.perf_counter() - started

    if n_items > args.max_dense_items:
        gb = ease.dense_bytes(n_items) / 1e9
        notes["EASE"] = notes["item-kNN"] = (
            f"skipped: {n_items:,} products > --max-dense-items {args.max_dense_items:,} "
            f"(EASE's two item x item float32 matrices: {gb:.1f} GB)"
        )
    else:
        started = time.perf_counter()
        lam, grid = ease_validation(
            held.train_lines,
            n_users,
            n_items,
            config.holdout_days,
            args.ease_grid,
            k,
            config.max_eval_users,
            config.seed,
        )
        b = ease_weights(x, lam)
        results["EASE"] = per_user(lambda rows: xs[rows] @ b, n, k, bought, truth)
        timings["EASE"] = time.perf_counter() - started
        tried = ", ".join(f"{g:g}: {v:.4f}" for g, v in grid.items())
        notes["EASE"] = f"lambda {lam:g} (validation NDCG@{k}: {tried})"

        started = time.perf_counter()
        sim = knn_weights(x, args.neighbours)
        results["item-kNN"] = per_user(lambda rows: xs[rows] @ sim, n, k, bought, truth)
        timings["item-kNN"] = time.perf_counter() - started
        kept = "all" if args.neighbours >= n_items - 1 else str(args.neighbours)
        notes["item-kNN"] = f"cosine, {kept} neighbours per product"

    started = time.perf_counter()
    counts = np.bincount(held.train.items, weights=held.train.counts, minlength=n_items)
    results["popularity, all training"] = per_user(
        lambda rows: np.broadcast_to(counts, (rows.size, n_items)), n, k, bought, truth
    )
    notes["popularity, all training"] = "the evaluation's: purchases over all training lines"
    last_train = int(held.train_lines["day"].max() or 0)  # type: ignore[arg-type]
    recent_lines = held.train_lines.filter(pl.col("day") > last_train - 28)
    recent = ds.purchases(recent_lines, n_users)
    buyers = np.bincount(recent.items, minlength=n_items) + counts * 1e-9
    results["popularity, last 28 days"] = per_user(
        lambda rows: np.broadcast_to(buyers, (rows.size, n_items)), n, k, bought, truth
    )
    notes["popularity, last 28 days"] = "customers who bought it in training's last 28 days"
    timings["popularity (both)"] = time.perf_counter() - started

    base = results["plain LightFM"]
    print(
        f"\nnew items, NDCG@{k} on {base.size:,} customers ({ev.describe_split(report)}); "
        f"{n_users:,} customers, {n_items:,} products"
    )
    print(f"{'method':<32} {'NDCG@10':>8} {'95% interval':>15} {'x plain LightFM':>24}  notes")
    for method, values in results.items():
        low, high = bootstrap_interval(values)
        r, rl, rh = ratio_interval(values, base)
        print(
            f"{method:<32} {values.mean():>8.4f} {low:>7.4f}-{high:.4f} "
            f"{r:>8.2f}x ({rl:.2f}-{rh:.2f})  {notes.get(method, '')}"
        )
    for method in ("EASE", "item-kNN"):
        if method not in results:
            print(f"{method:<32} {'-':>8}  {notes[method]}")
    print(
        "own-frequency: a buy-again baseline (everything it ranks is excluded here); "
        "the evaluation's buy-again protocol, bought products allowed, on its report half:"
    )
    for method, m in report.buy_again.items():
        print(f"  {method:<30} {m.ndcg:>8.4f} {m.ndcg_low or 0:>7.4f}-{m.ndcg_high or 0:.4f}")
    blend, lift = report.blend, report.blend_lift
    print(
        f"  blend: weight {blend.weight}, timing {blend.timing}, decay {blend.decay}, "
        f"repeat {blend.repeat}",
        end="",
    )
    if lift is not None:
        print(
            f"; {lift.ratio:.2f}x {lift.baseline} ({lift.low:.2f}-{lift.high:.2f}, paired)", end=""
        )
    print()
    print("time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
