"""Anonymous carts (`POST /v1/recommendations`) against the known-customer path and popularity, at
predicting what the same people bought next.

    uv run python bench/bench_cart.py --data var/demo/data
    uv run python bench/bench_cart.py --data var/retail/data --reuse
    uv run python bench/bench_cart.py --data var/retail/data --skip-days 28 --reuse
    uv run python bench/bench_cart.py --data var/retail/data --deterministic --reuse

How: the last `--holdout-days` of the shop's orders (`--skip-days N`: the ones before the last N
days) are held out and a real training run (default settings, `--deterministic` as in bench_similar)
is fitted on everything before the cut-off (bench_similar.py's split, its own store under
var/bench/cart/). For every customer who bought before and after the cut-off:

- the known-customer path: `recommend()` for their id (what `GET /v1/customers/{id}/
  recommendations` serves), their past purchases left out;
- the cart path: their distinct past products (the latest `--cart-size`) as an anonymous cart,
  through the cart service (what `POST /v1/recommendations` serves), the cart left out;
- the cart at each bought-alike weight the training run chooses between (`recsvc.version.carts`;
  the page above is at the version's own choice);
- popularity: the more accurate of all-time and last-28-days counts before the cut-off, the cart
  left out (the strongest simple answer to a cart without a model).

A hit is any product they bought after the cut-off. Printed: NDCG@k of each, the cart path against
the known path and against popularity with 95% paired bootstrap intervals over customers (and the
known path against popularity), and the in-process time per request of both paths. Targets
(issue 15): the cart path at least 0.85x the known path and at least 1.5x popularity.

    uv run python bench/bench_cart.py --serving 1000000

`--serving N`: the cost side instead, on bench_publish.py's cached N-customer artifact
(var/bench/publish/): the in-process latency (one BLAS thread) of a cart of 1 to 200 products,
random bought ones and the best-sellers, against a known customer's page in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_similar import add_split_arguments, held_out_from, ndcg  # noqa: E402

from recsvc.version.artifacts import LoadedModel, find_each_sorted  # noqa: E402
from recsvc.version.carts import (  # noqa: E402
    cart_buyers,
    cart_vector,
    fused_scores,
    listed_alike_sums,
)
from recsvc.version.scoring import score_items  # noqa: E402
from training.recommender.carts import ALIKE_WEIGHTS  # noqa: E402

WORK = ROOT / "var" / "bench" / "cart"


def interval(ours: np.ndarray, theirs: np.ndarray, seed: int) -> tuple[float, float, float]:
    """Mean ratio and its 95% paired bootstrap interval over customers."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, ours.size, size=(1000, ours.size))
    ratios = ours[samples].mean(axis=1) / np.maximum(theirs[samples].mean(axis=1), 1e-12)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(ours.mean() / max(theirs.mean(), 1e-12)), float(low), float(high)


def fused_pages(
    model: LoadedModel, cart_ids: list[str], weights: dict[str, float], k: int
) -> dict[str, list[str]]:
    """The cart's first k at each bought-alike weight (the service's pieces, no filters): what the
    training run's choice chooses between."""
    positions = find_each_sorted(model.item_ids, cart_ids)
    cart = np.unique(positions[positions >= 0]).astype(np.int32)
    vector = cart_vector(model.arrays, model.item_buyers, cart)
    if vector is None or model.similar is None:
        return {name: [] for name in weights}
    by_model = score_items(model.arrays, vector)
    alike = listed_alike_sums(model.similar, cart, model.item_ids.size)
    pages = {}
    for name, weight in weights.items():
        fused = fused_scores(by_model, alike, cart, weight)
        fused[cart] = -np.inf
        top = np.argsort(-fused, kind="stable")[:k]
        pages[name] = [model.item_id_list[i] for i in top.tolist()]
    return pages


# Cart sizes timed by `--serving`: one product to the API's limit (`recsvc.api.params`).
SERVING_SIZES = (1, 5, 10, 50, 200)


def serving_costs(customers: int, requests: int, seed: int) -> None:
    """The cost side (see the module's docstring): per-request latency of a cart, by its size and
    the popularity of its products, against a known customer's page, in the same run."""
    from bench_publish import artifact_for

    from recsvc.service.cart import cart_recommendations
    from recsvc.service.recommend import Query, recommend
    from recsvc.version.artifacts import load_model

    model = load_model(artifact_for(customers))
    threadpool_limits(limits=1, user_api="blas")
    started = time.perf_counter()
    model.item_buyers  # noqa: B018 - built once per version and worker
    print(
        f"{customers:,} customers, {model.item_ids.size:,} products; item-to-buyers index "
        f"built in {time.perf_counter() - started:.1f} s"
    )
    rng = np.random.default_rng(seed)
    buyers = np.diff(model.item_buyers[0])
    bought = np.flatnonzero(buyers)
    best_sellers = np.argsort(-buyers, kind="stable")[: max(SERVING_SIZES)]
    query = Query(limit=10)

    def timed(call: Callable[[], object]) -> float:
        begin = time.perf_counter()
        call()
        return time.perf_counter() - begin

    known = []
    for row in rng.choice(model.customer_ids.size, size=requests, replace=False).tolist():
        customer = str(model.customer_ids[row])
        known.append(timed(functools.partial(recommend, model, customer, query)))
    print(
        f"  known customer's page: median {np.median(known) * 1e3:.3f} ms, "
        f"p99 {np.percentile(known, 99) * 1e3:.3f} ms ({requests} random customers)"
    )
    print(f"  {'cart':<34} {'median ms':>10} {'p99 ms':>8} {'buyers read':>12}")
    for size in SERVING_SIZES:
        groups = {
            f"{size} random bought products": [
                rng.choice(bought, size=size, replace=False) for _ in range(requests)
            ],
            f"the {size} best-sellers": [best_sellers[:size]] * min(requests, 50),
        }
        for name, carts in groups.items():
            spent, read = [], []
            for cart in carts:
                products = [model.item_id_list[i] for i in cart.tolist()]
                spent.append(timed(functools.partial(cart_recommendations, model, products, query)))
                read.append(cart_buyers(model.item_buyers, np.sort(cart)).size)
            print(
                f"  {name:<34} {np.median(spent) * 1e3:>10.3f} "
                f"{np.percentile(spent, 99) * 1e3:>8.3f} {int(np.median(read)):>12,}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_split_arguments(parser)
    parser.add_argument("--cart-size", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--serving", type=int, metavar="CUSTOMERS", help="time carts on a cached artifact instead"
    )
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if args.serving:
        serving_costs(args.serving, args.requests, args.seed)
        return

    from recsvc.service.cart import cart_recommendations
    from recsvc.service.recommend import Query, recommend

    cutoff, before, held, model = held_out_from(args, WORK)
    # Timed as a server worker scores: one BLAS thread (`recsvc.api.app.create_served_app`).
    threadpool_limits(limits=1, user_api="blas")
    history = (
        before.sort("ordered_at", "line_id")
        .group_by("customer_id")
        .agg(pl.col("product_id").unique(maintain_order=True).alias("bought"))
    )
    after = held.group_by("customer_id").agg(pl.col("product_id").unique().alias("next"))
    people = history.join(after, on="customer_id").sort("customer_id")
    recent = before.filter(pl.col("ordered_at") >= cutoff - dt.timedelta(days=28))
    popular = {
        "all-time": before["product_id"].value_counts(sort=True)["product_id"].to_list(),
        "last 28 days": recent["product_id"].value_counts(sort=True)["product_id"].to_list(),
    }
    k = args.k
    weights = {f"cart, bought-alike weight {w:g}": w for w in ALIKE_WEIGHTS}
    scores: dict[str, list[float]] = {"known customer": [], "cart": []}
    scores |= {name: [] for name in weights}
    scores |= {f"popularity, {name}": [] for name in popular}
    timings: dict[str, list[float]] = {"known customer": [], "cart": []}
    model.item_buyers  # noqa: B018 - built once per version and worker, before the timings
    for customer, bought, nexts in people.select("customer_id", "bought", "next").iter_rows():
        relevant = set(nexts)
        cart = bought[-args.cart_size :]
        started = time.perf_counter()
        known = recommend(model, customer, Query(limit=k)).items
        timings["known customer"].append(time.perf_counter() - started)
        started = time.perf_counter()
        carted = cart_recommendations(model, cart, Query(limit=k)).items
        timings["cart"].append(time.perf_counter() - started)
        scores["known customer"].append(ndcg([i.product_id for i in known], relevant, k))
        scores["cart"].append(ndcg([i.product_id for i in carted], relevant, k))
        in_cart = set(cart)
        for name, ranked in fused_pages(model, cart, weights, k).items():
            scores[name].append(ndcg(ranked, relevant, k))
        for name, items in popular.items():
            listed = [item for item in items[: k + len(in_cart)] if item not in in_cart][:k]
            scores[f"popularity, {name}"].append(ndcg(listed, relevant, k))
    n = len(scores["cart"])
    if n == 0:
        sys.exit("no customer bought both before and after the cut-off")
    arrays = {name: np.asarray(values) for name, values in scores.items()}
    best = max(
        (name for name in arrays if name.startswith("popularity")), key=lambda x: arrays[x].mean()
    )
    print(
        f"{n:,} customers bought before and after the cut-off; k = {k}; carts of their last "
        f"{args.cart_size} distinct products at most"
    )
    print(
        f"the version's bought-alike weight for carts (chosen on its hold-out): "
        f"{model.manifest.cart_alike_weight:g}"
    )
    for name, values in arrays.items():
        print(f"  {name:<28} NDCG@{k} {values.mean():.4f}")
    for label, baseline, target in (
        ("cart / known customer", "known customer", 0.85),
        (f"cart / {best}", best, 1.5),
    ):
        ratio, low, high = interval(arrays["cart"], arrays[baseline], args.seed)
        verdict = "met" if ratio >= target else "NOT MET"
        print(
            f"{label:<40} {ratio:.2f}x (95% interval {low:.2f}..{high:.2f}); "
            f"target >= {target}x: {verdict}"
        )
    # What the model gives a known customer against the same list: how far the cart's target sits
    # from what the shop allows.
    ratio, low, high = interval(arrays["known customer"], arrays[best], args.seed)
    print(f"{'known customer / ' + best:<40} {ratio:.2f}x (95% interval {low:.2f}..{high:.2f})")
    for name, spent in timings.items():
        print(f"{name} per request, in process: median {statistics.median(spent) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
