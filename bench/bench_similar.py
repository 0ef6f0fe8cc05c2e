"""Similar products (bought alike, then the item space) against popularity at predicting a
customer's next items from their last one.

    uv run python bench/bench_similar.py --data var/demo/data
    uv run python bench/bench_similar.py --data var/retail/data
    uv run python bench/bench_similar.py --data var/retail/data --skip-days 28
    uv run python bench/bench_similar.py --data var/retail/data --deterministic
    uv run python bench/bench_similar.py --data var/public/movielens-100k/data --last-orders 1

How: the last `--holdout-days` of the shop's orders are held out (`--skip-days N`: the ones before
the last N days, the same question at an earlier time of the shop's year; `--last-orders N`: each
customer's last N orders, for customers with more, the training job's own split when a window
holds too few customers). A real training run (`training run`, default settings;
`--deterministic`: in deterministic mode, so that a rerun chooses and scores alike) is fitted on
everything before the cut-off and published into a private store under var/bench/similar/. For
every customer who bought before and after the cut-off, their last product before it asks
`GET /v1/products/{id}/similar`'s service for `--k` products; the baseline is the strongest
popularity list (all-time or last-28-days counts before the cut-off, whichever scores
better), without the asked product. A hit is any product they bought after the cut-off. Printed: hit
rate and NDCG@k of each, and similar / popularity with a 95% paired bootstrap interval over
customers. Target (issue 15): at least 1.2x popularity. Also printed: item-to-item co-purchase
counts alone (plain, and recency-weighted with three half-lives; the endpoint serves 30 days), and
with `--variants` other rankings tried (`variant_rankers`). `--reuse` keeps the trained version.

    uv run python bench/bench_similar.py --serving 1000000

`--serving N`: the cost side instead, on bench_publish.py's cached N-customer artifact
(var/bench/publish/): the training time to build every product's neighbour list, then the in-process
latency of a product page answered from the list and computed live, for random products and the
50 best-sellers, and whether the two give the same pages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsvc.version.artifacts import LoadedModel

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench" / "similar"


def split(
    data: Path, out: Path, holdout_days: int, skip_days: int = 0, last_orders: int = 0
) -> tuple[dt.datetime, pl.DataFrame]:
    """The shop's files up to the cut-off in `out`, and the held-out order lines: the
    `holdout_days` before the shop's last `skip_days` (an earlier window: the same question
    asked at another time of the shop's year); with `last_orders`, each customer's last that many
    orders instead, for customers with more (the training job's own rule when a shop's last weeks
    hold too few customers: `training.recommender.holdout.last_orders`), and the cut-off is then
    the end of the training lines."""
    from training.recommender.holdout import tables_before

    orders = pl.read_parquet(data / "orders.parquet")
    latest = orders["ordered_at"].max()
    assert isinstance(latest, dt.datetime), "orders.parquet holds no order times"
    end = latest - dt.timedelta(days=skip_days)
    if skip_days:
        orders = orders.filter(pl.col("ordered_at") <= end)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if last_orders:
        return _split_last_orders(data, out, orders, last_orders)
    cutoff = end - dt.timedelta(days=holdout_days)
    write_tables(tables_before(read_tables(data, orders), cutoff), out)
    return cutoff, orders.filter(pl.col("ordered_at") >= cutoff)


def read_tables(data: Path, orders: pl.DataFrame) -> dict[str, pl.LazyFrame]:
    """The shop's tables by name, its orders as `split` trimmed them."""
    tables = {path.stem: pl.scan_parquet(path) for path in data.glob("*.parquet")}
    tables["orders"] = orders.lazy()
    return tables


def write_tables(tables: dict[str, pl.LazyFrame], out: Path) -> None:
    for name, frame in tables.items():
        frame.collect().write_parquet(out / f"{name}.parquet")


def _split_last_orders(
    data: Path, out: Path, orders: pl.DataFrame, k: int
) -> tuple[dt.datetime, pl.DataFrame]:
    """`split` by each customer's last `k` orders, as the training job holds them out when a time
    window holds too few customers (`holdout.last_orders`), the tables without them as it keeps
    them (`holdout.tables_without`: their customers' survey answers from the first on go too)."""
    from training.recommender.holdout import last_orders, tables_without

    lines = orders.select(
        pl.col("customer_id").alias("u"),
        "order_id",
        pl.col("ordered_at").alias("at"),
        (pl.col("status") == "returned").alias("returned"),
    )
    held_orders = last_orders(lines, k).rename({"u": "customer_id"})
    write_tables(tables_without(read_tables(data, orders), held_orders), out)
    kept = pl.read_parquet(out / "orders.parquet")
    held = orders.join(held_orders, on=["customer_id", "order_id"], how="semi")
    cutoff = kept["ordered_at"].max() + dt.timedelta(microseconds=1)  # type: ignore[operator]
    return cutoff, held  # type: ignore[return-value]


def held_out_version(
    data: Path,
    root: Path,
    holdout_days: int,
    *,
    reuse: bool,
    skip_days: int = 0,
    deterministic: bool = False,
    last_orders: int = 0,
) -> tuple[dt.datetime, pl.DataFrame, pl.DataFrame, LoadedModel]:
    """The shop split at its hold-out cut-off (under `root/<name>/train`; `split`): the cut-off,
    the order lines before and after it, and a real training run's version fitted on what came
    before (kept in `root/<name>/store`; `reuse`: an earlier run's; `deterministic`: the run in
    deterministic mode, one thread and no clock, so that its choices repeat; `last_orders`: each
    customer's last orders held out instead of a window, `split`)."""
    from recsvc.store.files import FileStore
    from training.config import load_config
    from training.run.pipeline import run_pipeline

    name = data.name if data.name != "data" else data.parent.name
    work = root / (f"{name}-skip{skip_days}" if skip_days else name)
    if last_orders:
        work = work.with_name(f"{work.name}-last{last_orders}")
    if deterministic:
        work = work.with_name(f"{work.name}-deterministic")
    cutoff, held = split(data, work / "train", holdout_days, skip_days, last_orders)
    window = (
        f" (each customer's last {last_orders} orders)"
        if last_orders
        else f" (the {holdout_days} days before the last {skip_days})"
        if skip_days
        else ""
    )
    print(f"data {data}; cut-off {cutoff:%Y-%m-%d}; {held.height:,} held-out order lines{window}")
    store_dir = work / "store"
    version = FileStore(store_dir).active_version() if reuse and store_dir.exists() else None
    if version is None:
        shutil.rmtree(store_dir, ignore_errors=True)
        started = time.perf_counter()
        record = run_pipeline(
            work / "train",
            store=f"file://{store_dir}",
            config=load_config(deterministic=deterministic),
            runs_dir=work / "runs",
            show_progress=False,
            force=True,
        )
        if record.version is None:
            sys.exit(f"the training run published nothing: {record.error}")
        print(f"trained {record.version} in {time.perf_counter() - started:.0f} s")
        version = record.version
    before = pl.read_parquet(work / "train" / "orders.parquet")
    return cutoff, before, held, FileStore(store_dir).open(version).loaded


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `held_out_from`: which shop, which window, how its version is trained."""
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "demo" / "data")
    parser.add_argument("--holdout-days", type=int, default=28)
    parser.add_argument(
        "--skip-days", type=int, default=0, help="hold out the window before the last N days"
    )
    parser.add_argument(
        "--last-orders",
        type=int,
        default=0,
        metavar="N",
        help="hold out each customer's last N orders instead of a window (the training job's rule "
        "when a window holds too few customers)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep the version an earlier run of this bench trained"
    )
    parser.add_argument(
        "--deterministic", action="store_true", help="train in deterministic mode (repeatable)"
    )


def held_out_from(
    args: argparse.Namespace, root: Path
) -> tuple[dt.datetime, pl.DataFrame, pl.DataFrame, LoadedModel]:
    """`held_out_version` as `add_split_arguments`' options ask, under `root`."""
    return held_out_version(
        args.data,
        root,
        args.holdout_days,
        reuse=args.reuse,
        skip_days=args.skip_days,
        deterministic=args.deterministic,
        last_orders=args.last_orders,
    )


def ndcg(ranked: list[str], relevant: set[str], k: int) -> float:
    gains = sum(1 / np.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1 / np.log2(i + 2) for i in range(min(len(relevant), k)))
    return float(gains / ideal) if ideal else 0.0


def cooccurrence_rankers(model: LoadedModel) -> dict[str, Callable[[int], np.ndarray]]:
    """Item-to-item scores from the version's purchase history: how many customers who bought the
    product also bought each other one, plain and with each customer's purchases weighted by
    recency (half-lives in days before the version's last purchase day)."""
    purchases = model.arrays.purchases
    shape = (purchases.indptr.size - 1, model.item_ids.size)
    ones = np.ones(purchases.items.size, dtype=np.float32)
    bought = sp.csr_matrix((ones, purchases.items, purchases.indptr), shape=shape)
    buyers = bought.T.tocsr()
    age = (model.manifest.trained_until_day - np.asarray(purchases.last_day)).astype(np.float64)

    def ranker(matrix: sp.csr_matrix) -> Callable[[int], np.ndarray]:
        totals = np.asarray(matrix.sum(axis=0)).ravel()

        def score(index: int) -> np.ndarray:
            who = buyers.indices[buyers.indptr[index] : buyers.indptr[index + 1]]
            # Ties (and products nobody co-bought) in order of (recent) popularity.
            return np.asarray(matrix[who].sum(axis=0)).ravel() + 1e-9 * totals

        return score

    rankers = {"co-purchases": ranker(bought)}
    for half_life in (14, 30, 90):
        weights = (0.5 ** (age / half_life)).astype(np.float32)
        weighted = sp.csr_matrix((weights, purchases.items, purchases.indptr), shape=shape)
        rankers[f"co-purchases, half-life {half_life} days"] = ranker(weighted)
    return rankers


def variant_rankers(model: LoadedModel) -> dict[str, Callable[[int], np.ndarray]]:
    """`--variants`: other item-to-item rankings, for the record of what was tried (none shipped):
    the served co-purchase share (30-day half-life) divided by the neighbour's popularity to a
    power, plus a share of recent popularity, EASE's row of the product, the cart fold-in of the
    product alone (`recsvc.version.carts`), and a rank fusion of that with the share."""
    from recsvc.version.carts import cart_vector, fused_scores
    from recsvc.version.neighbours import purchase_weights
    from recsvc.version.scoring import score_items
    from training.recommender import ease

    purchases = model.arrays.purchases
    n_items = model.item_ids.size
    shape = (purchases.indptr.size - 1, n_items)
    ones = np.ones(purchases.items.size, dtype=np.float32)
    buyers = sp.csr_matrix((ones, purchases.items, purchases.indptr), shape=shape).T.tocsr()
    weights = purchase_weights(purchases, model.manifest.trained_until_day)
    recent = sp.csr_matrix((weights, purchases.items, purchases.indptr), shape=shape)
    popularity = np.asarray(recent.sum(axis=0)).ravel()
    scaled = popularity / max(float(popularity.max()), 1e-12)

    def share(index: int) -> np.ndarray:
        who = buyers.indices[buyers.indptr[index] : buyers.indptr[index + 1]]
        together = np.asarray(recent[who].sum(axis=0)).ravel()
        return together / max(who.size, 1) + 1e-9 * scaled

    def fold_in(index: int) -> np.ndarray:
        vector = cart_vector(model.arrays, model.item_buyers, np.array([index], np.int32))
        return scaled if vector is None else score_items(model.arrays, vector)

    rankers: dict[str, Callable[[int], np.ndarray]] = {}

    def lifted(power: float) -> Callable[[int], np.ndarray]:
        return lambda i: share(i) / (popularity + 1.0) ** power

    def with_prior(prior: float) -> Callable[[int], np.ndarray]:
        return lambda i: share(i) + prior * scaled

    for power in (0.1, 0.3, 0.5):
        rankers[f"share / popularity^{power:g}"] = lifted(power)
    for prior in (0.05, 0.1, 0.2):
        rankers[f"share + {prior:g} x recent popularity"] = with_prior(prior)
    if n_items <= 20_000:
        x = sp.csr_matrix((ones, purchases.items, purchases.indptr), shape=shape)
        b_matrix = ease.ease_weights(ease.gram(x), 500.0)
        rankers["EASE row (lambda 500)"] = lambda i: b_matrix[i] + 1e-9 * scaled
    rankers["fold-in of the product alone"] = fold_in
    rankers["rank fusion: share + 0.5 x fold-in"] = lambda i: fused_scores(
        share(i), fold_in(i), np.array([i], np.int32), 0.5
    )
    return rankers


def top_k(model: LoadedModel, scores: np.ndarray, index: int, k: int) -> list[str]:
    scores = scores.astype(np.float64)
    scores[index] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [model.item_id_list[i] for i in top.tolist()]


def serving_costs(customers: int, requests: int, seed: int) -> None:
    """Time to build the lists, and a page's latency from them and live (see the module doc)."""
    import msgspec

    from recsvc.service.recommend import Query
    from recsvc.service.similar import similar_products
    from recsvc.version.artifacts import load_model
    from training.recommender.similar import similar_lists

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_publish import artifact_for

    model = load_model(artifact_for(customers))
    started = time.perf_counter()
    lists = similar_lists(
        model.arrays,
        model.manifest.trained_until_day,
        100,
        model.alike_params,
        show_progress=True,
    )
    built = time.perf_counter() - started
    n_items = model.item_ids.size
    print(f"{customers:,} customers, {n_items:,} products: lists of 100 built in {built:.1f} s")
    listed = msgspec.structs.replace(model, similar=lists)
    live = msgspec.structs.replace(model, similar=None)
    live.item_buyers, live.item_unit_vectors  # noqa: B018 - built once per version and worker
    listed.item_unit_vectors  # noqa: B018
    buyers = np.diff(live.item_buyers[0])
    rng = np.random.default_rng(seed)
    groups = {
        "random products": rng.choice(n_items, size=requests, replace=False),
        "50 best-sellers": np.argsort(-buyers, kind="stable")[:50],
    }
    query = Query(limit=10)
    for group, items in groups.items():
        ids = [model.item_id_list[i] for i in items.tolist()]
        same = 0
        timings: dict[str, list[float]] = {"list": [], "live": []}
        for product in ids:
            pages = {}
            for name, version in (("list", listed), ("live", live)):
                begin = time.perf_counter()
                pages[name] = similar_products(version, product, query)
                timings[name].append(time.perf_counter() - begin)
            same += pages["list"] == pages["live"]
        print(
            f"  {group:<16} ({len(ids)}, median {int(np.median(buyers[items])):,} buyers): "
            f"list median {np.median(timings['list']) * 1e3:.3f} ms, "
            f"live median {np.median(timings['live']) * 1e3:.2f} ms; same page {same}/{len(ids)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_split_arguments(parser)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--serving", type=int, metavar="CUSTOMERS", help="time the lists against live instead"
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument(
        "--variants", action="store_true", help="also score the other rankings tried (slower)"
    )
    args = parser.parse_args()
    if args.serving:
        serving_costs(args.serving, args.requests, args.seed)
        return

    from recsvc.service.recommend import Query
    from recsvc.service.similar import similar_products

    cutoff, before, held, model = held_out_from(args, WORK)
    others = cooccurrence_rankers(model)
    if args.variants:
        others |= variant_rankers(model)
    other_scores: dict[str, list[float]] = {name: [] for name in others}

    last = (
        before.sort("ordered_at", "line_id")
        .group_by("customer_id")
        .agg(pl.col("product_id").last().alias("last"))
    )
    after = held.group_by("customer_id").agg(pl.col("product_id").unique().alias("next"))
    pairs = last.join(after, on="customer_id").sort("customer_id")
    recent_start = cutoff - dt.timedelta(days=28)
    popular = {
        "all-time": before["product_id"].value_counts(sort=True)["product_id"].to_list(),
        "last 28 days": before.filter(pl.col("ordered_at") >= recent_start)["product_id"]
        .value_counts(sort=True)["product_id"]
        .to_list(),
    }
    k = args.k
    similar_scores: list[float] = []
    popular_scores: dict[str, list[float]] = {name: [] for name in popular}
    hits = {"similar": 0, **{name: 0 for name in popular}}
    timings = []
    for seed_item, nexts in pairs.select("last", "next").iter_rows():
        relevant = set(nexts)
        begin = time.perf_counter()
        if model.item_index(seed_item) is None:
            ranked: list[str] = []
        else:
            ranked = [
                item.product_id for item in similar_products(model, seed_item, Query(limit=k)).items
            ]
        timings.append(time.perf_counter() - begin)
        similar_scores.append(ndcg(ranked, relevant, k))
        hits["similar"] += bool(relevant & set(ranked))
        index = model.item_index(seed_item)
        for name, score in others.items():
            listed = [] if index is None else top_k(model, score(index), index, k)
            other_scores[name].append(ndcg(listed, relevant, k))
        for name, items in popular.items():
            listed = [item for item in items[: k + 1] if item != seed_item][:k]
            popular_scores[name].append(ndcg(listed, relevant, k))
            hits[name] += bool(relevant & set(listed))
    n = len(similar_scores)
    if n == 0:
        sys.exit("no customer bought both before and after the cut-off")
    best = max(popular_scores, key=lambda name: float(np.mean(popular_scores[name])))
    ours, theirs = np.asarray(similar_scores), np.asarray(popular_scores[best])
    rng = np.random.default_rng(args.seed)
    samples = rng.integers(0, n, size=(1000, n))
    ratios = ours[samples].mean(axis=1) / np.maximum(theirs[samples].mean(axis=1), 1e-12)
    low, high = np.percentile(ratios, [2.5, 97.5])
    print(f"{n:,} customers bought before and after the cut-off; k = {k}")
    print(
        f"the version's bought-alike settings (chosen on its hold-out): buyer power "
        f"{model.manifest.alike_buyer_power:g}, trend weight {model.manifest.alike_trend_weight:g}"
    )
    print(f"  {'ranker':<26} {'hit rate':>9} {'NDCG':>8}")
    print(f"  {'similar products':<26} {hits['similar'] / n:>9.3f} {ours.mean():>8.4f}")
    for name in popular:
        print(
            f"  {'popularity, ' + name:<26} {hits[name] / n:>9.3f} "
            f"{np.mean(popular_scores[name]):>8.4f}"
        )
    print("other item-to-item rankings:")
    for name, values in other_scores.items():
        mine = np.asarray(values)
        boot = mine[samples].mean(axis=1) / np.maximum(theirs[samples].mean(axis=1), 1e-12)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        print(
            f"  {name:<40} NDCG {mine.mean():.4f}  {mine.mean() / max(theirs.mean(), 1e-12):.2f}x "
            f"popularity ({lo:.2f}..{hi:.2f})"
        )
    ratio = ours.mean() / max(theirs.mean(), 1e-12)
    print(
        f"similar / popularity ({best}): {ratio:.2f}x, 95% interval {low:.2f}..{high:.2f} "
        "(target: at least 1.2x)"
    )
    print(f"similar products per request (in process): median {np.median(timings) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
