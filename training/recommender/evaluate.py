"""Honest evaluation on a hold-out: the model against simple baselines, per NPS category.

Two questions, two protocols, both at k (default 10), on a deterministic sample of customers who
bought both in the training lines and in the held-out ones (the last weeks, or each customer's
last orders: `training.recommender.holdout`):

- "new to you" (the storefront default, already-bought products excluded): the model against
  global popularity (all training purchases), the recent best-sellers (buyers in the last 28 days
  before the cut-off) and "most popular in the customer's primary segment"; truth = hold-out
  products the customer had not bought before. The model's lift is over the better popularity.
- "buy again allowed": the model, the customer's own most frequent purchases (by lines, and
  recency-weighted: 0.9 per order back), popularity, and the model blended with repeat propensity;
  truth = every hold-out product. The blend (weight, timing, decay) is tuned on one half of the
  sample and every number of this protocol is reported on the other half, with the blend's ratio
  to the better own-history list and its paired interval.

Scores come from `recsvc.version.scoring`, the code the service runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import polars as pl
import scipy.sparse as sp

from recsvc.version import scoring as scoring
from recsvc.version.neighbours import recent_buyers
from recsvc.version.scoring import BlendParams, ModelArrays, Purchases
from training.recommender.carts import CartFusion, tune_cart_fusion
from training.recommender.dataset import TrainingPurchases
from training.recommender.holdout import HoldOutSplit
from training.recommender.metrics import (
    RankingMetrics,
    item_sets,
    mean_auc,
    ndcg_per_user,
    paired_ratio_interval,
    ranking_metrics,
)
from training.recommender.similar import AlikeChoice, chosen_params, tune_alike

# The blend settings tried on the tuning half, simplest first (ties go to the earlier): the model
# alone, then every weight, timing, decay and repeat-rate power. Timings below 1 widen the "due"
# bump (0.25 and 0.5 ranked best on the demo shop's consumables); decays below 1 weigh recent
# orders more; a repeat power of 0.5 (1 ranked lower on both grocery sets) lets products their
# buyers rarely buy twice sink (docs/recommender.md, "Buy again").
BLEND_DECAYS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
BLEND_GRID: tuple[BlendParams, ...] = (
    BlendParams(weight=0.0, timing=0.0),
    *(
        BlendParams(weight=w, timing=t, decay=d, repeat=r)
        for r in (0.0, 0.5)
        for d in BLEND_DECAYS
        for t in (0.0, 0.25, 0.5, 1.0)
        for w in (0.25, 0.5, 0.75, 0.9, 1.0)
    ),
)
# The recency-weighted own-frequency baseline: each order that bought the product weighs 0.9 per
# order back (the latest 1), a fixed rule, not tuned.
BASELINE_DECAY = 0.9
AUC_USERS = 2_000
BLOCK = 256


class BlendLift(msgspec.Struct, frozen=True):
    """The blend's buy-again NDCG over the better of the customer's own-history lists (by lines or
    recency-weighted, whichever scored higher) on the report half, with the 95% paired bootstrap
    interval of that ratio (the same customers resampled for both)."""

    baseline: str  # own_most_frequent or recency_weighted_own_frequency
    ratio: float
    low: float
    high: float


class EvaluationReport(msgspec.Struct, frozen=True):
    k: int
    cutoff_day: int
    holdout_days: int
    eval_users: int
    new_items: dict[str, RankingMetrics]  # method -> metrics, already-bought excluded
    buy_again: dict[str, RankingMetrics]  # method -> metrics, already-bought allowed
    by_nps_category: dict[str, RankingMetrics]  # model, new-items protocol
    blend: BlendParams
    # model NDCG / the better popularity baseline's (all-time or recent), new-items protocol
    lift_over_popularity: float
    # Which split it was measured on and how many customers it held; reports from before the
    # last-orders split have none (they were all time-based).
    split: HoldOutSplit | None = None
    # The tuned blend against the better own-history list, buy-again protocol (none in reports
    # from before it).
    blend_lift: BlendLift | None = None
    # The bought-alike weight of anonymous carts chosen on this hold-out (none in reports from
    # before it).
    cart: CartFusion | None = None
    # Product pages' bought-alike settings chosen on this hold-out (none in reports from before
    # them).
    alike: AlikeChoice | None = None

    @property
    def ndcg(self) -> float:
        return self.new_items["model"].ndcg


def _exclude(block: np.ndarray, users: np.ndarray, excluded: list[np.ndarray]) -> None:
    """Mark each user's `excluded` items -inf in their row of `block` (row j is `users[j]`)."""
    lengths = np.array([excluded[u].size for u in users])
    if lengths.sum():
        rows = np.repeat(np.arange(users.size), lengths)
        block[rows, np.concatenate([excluded[u] for u in users])] = -np.inf


def _ranked_lists(
    n_users: int, k: int, score_rows: Callable[[np.ndarray], np.ndarray], excluded: list[np.ndarray]
) -> np.ndarray:
    """Top-k per user (best first, ties by item index), scoring users in blocks; -1 pads lists
    shorter than k, in `recsvc.version.scoring.top_rows`' order (the service's order)."""
    top = np.full((n_users, k), -1, dtype=np.int64)
    for start in range(0, n_users, BLOCK):
        users = np.arange(start, min(start + BLOCK, n_users))
        block = np.array(score_rows(users), dtype=np.float64)
        _exclude(block, users, excluded)
        best, _ = scoring.top_rows(block, k)
        top[users, : best.shape[1]] = best
    return top


def sample_users(train: Purchases, test: Purchases, max_users: int, seed: int) -> np.ndarray:
    """A deterministic sample of the customers who bought both before and after the cut-off."""
    candidates = np.flatnonzero((np.diff(train.indptr) > 0) & (np.diff(test.indptr) > 0))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(max_users, candidates.size), replace=False))


def new_items_ndcg_per_user(
    item_vectors: np.ndarray,
    item_biases: np.ndarray,
    user_vectors: np.ndarray,
    bought: list[np.ndarray],
    truth: list[np.ndarray],
    k: int,
) -> np.ndarray:
    """Each evaluable user's NDCG@k of the "new to you" list (what the gate compares, paired)."""
    n_items = item_vectors.shape[0]
    truth_new = [np.setdiff1d(t, b) for t, b in zip(truth, bought, strict=True)]

    def scores(rows: np.ndarray) -> np.ndarray:
        return user_vectors[rows] @ item_vectors.T + item_biases

    return ndcg_per_user(
        _ranked_lists(len(truth), k, scores, bought), item_sets(truth_new, n_items)
    )


class _ModelPass(msgspec.Struct, frozen=True):
    """What one scoring pass over the sample keeps, enough for every list the model takes part in:
    each customer's k best never-bought items (and scores), the mean and spread of their scores
    (the blend standardises with them) and the scores of what they bought."""

    top: np.ndarray  # (users, k) item indices, -1 padded
    top_scores: np.ndarray  # (users, k)
    mean: np.ndarray  # (users,)
    spread: np.ndarray  # (users,)
    bought_scores: list[np.ndarray]


def _model_pass(
    model: ModelArrays, vectors: np.ndarray, bought: list[np.ndarray], k: int
) -> _ModelPass:
    n = vectors.shape[0]
    top = np.full((n, k), -1, dtype=np.int64)
    top_scores = np.full((n, k), -np.inf)
    mean, spread = np.empty(n), np.empty(n)
    bought_scores: list[np.ndarray] = []
    for start in range(0, n, BLOCK):
        rows = np.arange(start, min(start + BLOCK, n))
        block = scoring.score_block(model, vectors[rows])
        mean[rows] = block.mean(axis=1, dtype=np.float64)
        spread[rows] = block.std(axis=1, dtype=np.float64)
        bought_scores.extend(block[j, bought[r]].astype(np.float64) for j, r in enumerate(rows))
        _exclude(block, rows, bought)
        items, best = scoring.top_rows(block, k)
        top[rows, : items.shape[1]] = items
        top_scores[rows, : best.shape[1]] = best
    spread[spread == 0] = 1.0
    return _ModelPass(top, top_scores, mean, spread, bought_scores)


class _BuyAgainPool(msgspec.Struct, frozen=True):
    """Every item that can reach a customer's buy-again top k, for a set of sample rows, flat: each
    row's k best never-bought items, then everything the customer bought (`bought` of the row),
    with the model's standardised score of each. `purchase` holds, for the bought part, the
    purchase's index into the training `Purchases`."""

    row: np.ndarray  # local row (0..rows-1) of each candidate
    items: np.ndarray
    raw: np.ndarray  # the model's score
    standardised: np.ndarray  # (raw - the row's mean) / its spread
    first_bought: int  # candidates from here on were bought
    purchase: np.ndarray  # the bought ones' purchase indices

    @classmethod
    def of(
        cls,
        scored: _ModelPass,
        rows: np.ndarray,
        bought: list[np.ndarray],
        spans: list[slice],
    ) -> _BuyAgainPool:
        """`spans`: each row's purchases in the training `Purchases` (`bought` of the row)."""
        found = scored.top[rows] >= 0
        top_row = np.nonzero(found)[0]
        lengths = np.array([bought[r].size for r in rows], dtype=np.int64)
        bought_row = np.repeat(np.arange(rows.size), lengths)
        row = np.concatenate([top_row, bought_row])
        items = np.concatenate([scored.top[rows][found], *(bought[r] for r in rows)])
        raw = np.concatenate(
            [scored.top_scores[rows][found], *(scored.bought_scores[r] for r in rows)]
        )
        standardised = (raw - scored.mean[rows][row]) / scored.spread[rows][row]
        purchase = np.concatenate(
            [np.arange(s.start, s.stop) for s in spans] or [np.empty(0, dtype=np.int64)]
        )
        return cls(row, items.astype(np.int64), raw, standardised, top_row.size, purchase)


def _blended_lists(
    pool: _BuyAgainPool, rows: int, propensity: np.ndarray, params: BlendParams, k: int
) -> np.ndarray:
    """Top-k of `rows` rows with already-bought items allowed, scored as
    `recsvc.version.scoring.blend` scores them (`propensity`: of the pool's bought candidates).

    Exact without rescoring: the blend moves every never-bought item by one increasing affine map,
    so their order (and so their best k) is the model's; only the bought items move on their own.
    The best k of the blend are the best k of those two small sets together.
    """
    w = params.weight
    if w != 0.0:
        z = pool.standardised
        final = (1.0 - w) * z + (1e-3 * z if w == 1.0 else 0.0)
        final[pool.first_bought :] += w * propensity
    else:
        final = pool.raw
    return _top_per_row(pool.row, pool.items, final, rows, k)


def _top_per_row(
    row: np.ndarray, items: np.ndarray, scores: np.ndarray, rows: int, k: int
) -> np.ndarray:
    """Each row's k best (row, item, score) candidates, best first, ties by the lower item
    (`recsvc.version.scoring.top_rows`' order); -1 pads a row with fewer."""
    order = np.lexsort((items, -scores, row))
    row, items = row[order], items[order]
    rank = np.arange(row.size) - np.searchsorted(row, row)
    kept = rank < k
    out = np.full((rows, k), -1, dtype=np.int64)
    out[row[kept], rank[kept]] = items[kept]
    return out


def evaluate(
    model: ModelArrays,
    train: TrainingPurchases,
    test: Purchases,
    customer_segments: np.ndarray,
    customer_nps: np.ndarray,
    *,
    k: int,
    split: HoldOutSplit,
    cutoff_day: int,
    test_from_day: np.ndarray,
    max_users: int,
    seed: int,
    similar_list: int = 0,
) -> EvaluationReport:
    """Evaluate on customers with purchases both in training (`train`, with the orders that bought
    each purchase, so buy-again can weigh them at any decay) and held out (`test`).

    `customer_segments` / `customer_nps` hold each customer's primary segment and NPS category
    without the held-out data (strings); `test_from_day` each customer's first held-out day (the
    buy-again timing counts from it). Popularity baselines count training purchases.
    `similar_list`: the version's neighbour list length, which anonymous carts read (`carts`).
    """
    sample = _Sample.draw(model, train, test, max_users, seed)
    popularity = np.bincount(train.items, weights=train.counts, minlength=model.n_items).astype(
        np.float64
    )
    # The shop's recent best-sellers: customers who bought each product in the
    # `neighbours.RECENT_DAYS` before the cut-off (ties by all-time popularity). On a shop whose
    # range turns over (seasons, new lines) this beats all-time popularity, and a baseline is the
    # strongest honest one.
    recent = recent_buyers(train, model.n_items, cutoff_day - 1).astype(np.float64)
    recent += popularity / (popularity.max() + 1.0) if popularity.size else 0.0
    scored = _model_pass(model, sample.vectors, sample.bought, k)
    new_items = _new_items(model, scored, sample, train, customer_segments, popularity, k)
    new_items["recent_popularity"] = ranking_metrics(
        _ranked_lists(
            sample.users.size,
            k,
            lambda rows: np.broadcast_to(recent, (rows.size, model.n_items)),
            sample.bought,
        ),
        sample.truth_new_matrix,
        model.n_items,
        interval=True,
    )
    nps = customer_nps[sample.users]
    by_nps: dict[str, RankingMetrics] = {}
    for category in np.unique(nps):
        rows = np.flatnonzero(nps == category)
        by_nps[str(category)] = ranking_metrics(
            scored.top[rows], sample.truth_new_matrix[rows], model.n_items
        )
    tuned, buy_again, blend_lift = _buy_again(
        model, scored, sample, train, popularity, test_from_day, k, seed
    )
    # The lift is over the stronger of the two popularity baselines.
    pop_ndcg = max(new_items["popularity"].ndcg, new_items["recent_popularity"].ndcg)
    # Product pages' bought-alike settings first: the carts read the lists they shape.
    alike = tune_alike(model, sample.users, sample.truth_all, k=k)
    return EvaluationReport(
        k=k,
        cutoff_day=cutoff_day,
        holdout_days=split.holdout_days,
        eval_users=sample.users.size,
        new_items=new_items,
        buy_again=buy_again,
        by_nps_category=by_nps,
        blend=tuned,
        lift_over_popularity=new_items["model"].ndcg / pop_ndcg if pop_ndcg > 0 else float("inf"),
        split=split,
        blend_lift=blend_lift,
        alike=alike,
        cart=tune_cart_fusion(
            model,
            train,
            sample.users,
            sample.truth_all,
            k=k,
            list_length=similar_list,
            params=chosen_params(alike),
        ),
    )


@dataclass(frozen=True, slots=True)
class _Sample:
    """The evaluated customers: what each bought before the cut-off and after, and their vectors."""

    users: np.ndarray
    bought: list[np.ndarray]  # before the cut-off
    truth_all: list[np.ndarray]  # after it
    truth_new: list[np.ndarray]  # after it, and not bought before
    truth_new_matrix: sp.csr_matrix
    vectors: np.ndarray  # the model's customer vectors

    @classmethod
    def draw(
        cls, model: ModelArrays, train: Purchases, test: Purchases, max_users: int, seed: int
    ) -> _Sample:
        users = sample_users(train, test, max_users, seed)
        bought = [train.items[train.row(u)] for u in users]
        truth_all = [test.items[test.row(u)] for u in users]
        truth_new = [
            np.setdiff1d(t, b, assume_unique=True) for t, b in zip(truth_all, bought, strict=True)
        ]
        vectors = np.stack([scoring.known_customer_vector(model, int(u))[0] for u in users])
        return cls(
            users, bought, truth_all, truth_new, item_sets(truth_new, model.n_items), vectors
        )


def _new_items(
    model: ModelArrays,
    scored: _ModelPass,
    sample: _Sample,
    train: Purchases,
    customer_segments: np.ndarray,
    popularity: np.ndarray,
    k: int,
) -> dict[str, RankingMetrics]:
    """The "new to you" protocol: the model, popularity and the segment's popularity (with AUC
    for the model and popularity on the first `AUC_USERS` customers)."""
    n_items, n, bought = model.n_items, sample.users.size, sample.bought
    segments = customer_segments[sample.users]
    buyer_segment = np.repeat(customer_segments, np.diff(train.indptr))
    segment_popularity: dict[str, np.ndarray] = {
        str(segment): np.bincount(train.items[buyer_segment == segment], minlength=n_items).astype(
            np.float64
        )
        for segment in np.unique(segments)
    }

    def popular(rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(popularity, (rows.size, n_items))

    def segment_popular(rows: np.ndarray) -> np.ndarray:
        # Ties (items unseen in the segment) fall back to global popularity.
        return np.stack([segment_popularity[str(segments[r])] + popularity * 1e-9 for r in rows])

    truth = sample.truth_new_matrix
    auc_rows = np.arange(min(AUC_USERS, n))
    auc_truth, auc_bought = truth[auc_rows], item_sets([bought[r] for r in auc_rows], n_items)
    model_scores = scoring.score_block(model, sample.vectors[auc_rows])
    return {
        "model": msgspec.structs.replace(
            ranking_metrics(scored.top, truth, n_items, interval=True),
            auc=mean_auc(model_scores, auc_truth, auc_bought),
        ),
        "popularity": msgspec.structs.replace(
            ranking_metrics(_ranked_lists(n, k, popular, bought), truth, n_items, interval=True),
            auc=mean_auc(popular(auc_rows), auc_truth, auc_bought),
        ),
        "segment_popularity": ranking_metrics(
            _ranked_lists(n, k, segment_popular, bought), truth, n_items, interval=True
        ),
    }


def _buy_again(
    model: ModelArrays,
    scored: _ModelPass,
    sample: _Sample,
    train: TrainingPurchases,
    popularity: np.ndarray,
    test_from_day: np.ndarray,
    k: int,
    seed: int,
) -> tuple[BlendParams, dict[str, RankingMetrics], BlendLift | None]:
    """The "buy again allowed" protocol: the blend tuned on half A, every method reported on half
    B. Returns the tuned blend, the metrics and the blend's lift over the better own-history
    list."""
    n_items, n, users = model.n_items, sample.users.size, sample.users
    half = np.random.default_rng(seed).permutation(n)
    tune_rows, report_rows = np.sort(half[: n // 2]), np.sort(half[n // 2 :])
    weights = {decay: train.weights(decay) for decay in (*BLEND_DECAYS, BASELINE_DECAY)}
    repeat_rate = train.repeat_rate(n_items)

    def truth(rows: np.ndarray) -> sp.csr_matrix:
        return item_sets([sample.truth_all[r] for r in rows], n_items)

    def blend_lists(rows: np.ndarray) -> Callable[[BlendParams], np.ndarray]:
        spans = [train.row(int(users[r])) for r in rows]
        pool = _BuyAgainPool.of(scored, rows, sample.bought, spans)
        purchase = pool.purchase
        # Days since each bought product's last purchase, as of the customer's first held-out day.
        owner = users[rows][pool.row[pool.first_bought :]]
        days_since = test_from_day[owner].astype(np.float64) - train.last_day[purchase]
        reorder = model.item_reorder_days[train.items[purchase]]
        rates = repeat_rate[train.items[purchase]]

        def lists(params: BlendParams) -> np.ndarray:
            propensity = scoring.repeat_propensity(
                weights[params.decay][purchase],
                days_since,
                reorder,
                params.timing,
                repeat_rate=rates,
                repeat=params.repeat,
            )
            return _blended_lists(pool, rows.size, propensity, params, k)

        return lists

    tuning, reporting = blend_lists(tune_rows), blend_lists(report_rows)
    tune_truth, report_truth = truth(tune_rows), truth(report_rows)
    tuned = max(BLEND_GRID, key=lambda p: float(ndcg_per_user(tuning(p), tune_truth).mean()))

    def own_history(frequency: np.ndarray) -> np.ndarray:
        return _own_history_lists(train, users[report_rows], frequency, popularity, k)

    lists = {
        # The model alone: the blend at weight 0 (raw scores, bought items allowed).
        "model": reporting(BlendParams(weight=0.0)),
        "own_most_frequent": own_history(train.counts),
        "recency_weighted_own_frequency": own_history(weights[BASELINE_DECAY]),
        "popularity": _ranked_lists(
            report_rows.size,
            k,
            lambda local: np.broadcast_to(popularity, (local.size, n_items)),
            [np.empty(0, dtype=np.int64)] * report_rows.size,
        ),
        "blend": reporting(tuned),
    }
    metrics = {
        name: ranking_metrics(top, report_truth, n_items, interval=True)
        for name, top in lists.items()
    }
    own = max(
        ("own_most_frequent", "recency_weighted_own_frequency"), key=lambda m: metrics[m].ndcg
    )
    blended, baseline = (ndcg_per_user(lists[m], report_truth) for m in ("blend", own))
    lift = None
    if baseline.size and baseline.mean() > 0:
        low, high = paired_ratio_interval(blended, baseline)
        lift = BlendLift(own, float(blended.mean() / baseline.mean()), low, high)
    return tuned, metrics, lift


def _own_history_lists(
    train: Purchases,
    customers: np.ndarray,
    frequency: np.ndarray,
    popularity: np.ndarray,
    k: int,
) -> np.ndarray:
    """Each customer's bought items by `frequency` (aligned with `train.items`), ties by the later
    last purchase, then popularity, then the lower item; the popular items they did not buy fill a
    list shorter than k."""
    popular = np.lexsort((np.arange(popularity.size), -popularity))
    out = np.full((customers.size, k), -1, dtype=np.int64)
    for j, customer in enumerate(customers):
        span = train.row(int(customer))
        items = train.items[span].astype(np.int64)
        order = np.lexsort((items, -popularity[items], -train.last_day[span], -frequency[span]))
        ranked = items[order][:k]
        if ranked.size < k:
            fill = popular[: k + items.size]
            fill = fill[~np.isin(fill, items)][: k - ranked.size]
            ranked = np.concatenate([ranked, fill])
        out[j, : ranked.size] = ranked
    return out


def describe_split(report: EvaluationReport) -> str:
    """Which hold-out the report was measured on, how many customers it held, and why."""
    split = report.split
    if split is None:
        return f"last {report.holdout_days} days held out"
    if split.kind == "time":
        return f"last {split.holdout_days} days held out ({split.customers:,} customers)"
    orders = "order" if split.orders == 1 else f"{split.orders} orders"
    return (
        f"each customer's last {orders} held out ({split.customers:,} customers; the last "
        f"{split.holdout_days} days held {split.time_customers:,}, fewer than "
        f"min_holdout_customers {split.min_customers:,})"
    )


def describe_recorded_split(metrics: Mapping[str, Any]) -> str | None:
    """`describe_split` of the report a run record keeps (None: the run evaluated nothing, or a
    record this build cannot read)."""
    if not metrics:
        return None
    try:
        return describe_split(msgspec.convert(metrics, EvaluationReport))
    except msgspec.ValidationError:
        return None


def format_evaluation(report: EvaluationReport) -> str:
    lines = [
        f"evaluation at k={report.k} on {report.eval_users:,} customers, {describe_split(report)}",
        f"{'protocol':<12} {'method':<30} {'precision':>9} {'recall':>7} {'ndcg':>7} {'95% interval':>15} {'hit':>6} {'cover':>6} {'auc':>6}",
    ]
    for protocol, table in (("new items", report.new_items), ("buy again", report.buy_again)):
        for method, m in table.items():
            auc = f"{m.auc:.3f}" if m.auc is not None else "-"
            lines.append(
                f"{protocol:<12} {method:<30} {m.precision:>9.4f} {m.recall:>7.4f} {m.ndcg:>7.4f} "
                f"{_interval(m):>15} {m.hit_rate:>6.3f} {m.coverage:>6.3f} {auc:>6}"
            )
    for category, m in report.by_nps_category.items():
        lines.append(
            f"{'by nps':<12} {category:<30} {m.precision:>9.4f} {m.recall:>7.4f} {m.ndcg:>7.4f} "
            f"{_interval(m):>15} {m.hit_rate:>6.3f}"
        )
    lift = report.lift_over_popularity
    against = (
        f"{lift:.2f}x popularity's"
        if math.isfinite(lift)
        else "not comparable (popularity scored 0 on the hold-out)"
    )
    blend = report.blend
    lines.append(
        f"model NDCG@{report.k} is {against}; buy-again blend weight {blend.weight}, "
        f"timing {blend.timing}, decay {blend.decay}, repeat {blend.repeat}"
    )
    own = report.blend_lift
    if own is not None:
        lines.append(
            f"buy-again blend NDCG@{report.k} is {own.ratio:.2f}x {own.baseline}'s "
            f"(95% paired interval {own.low:.2f}-{own.high:.2f})"
        )
    alike = report.alike
    if alike is not None:
        tried = ", ".join(f"{pair} {v:.4f}" for pair, v in alike.ndcg.items())
        lines.append(
            f"similar products: buyer power {alike.buyer_power:g}, trend weight "
            f"{alike.trend_weight:g} (NDCG@{report.k} by power/trend on {alike.customers:,} "
            f"customers' last products: {tried})"
        )
    cart = report.cart
    if cart is not None:
        tried = ", ".join(f"{w} {v:.4f}" for w, v in cart.ndcg.items())
        lines.append(
            f"anonymous carts: bought-alike weight {cart.weight:g} (NDCG@{report.k} by weight on "
            f"{cart.customers:,} carts: {tried})"
        )
    return "\n".join(lines)


def _interval(m: RankingMetrics) -> str:
    if m.ndcg_low is None or m.ndcg_high is None or math.isnan(m.ndcg_low):
        return "-"
    return f"{m.ndcg_low:.4f}-{m.ndcg_high:.4f}"


def frame_column(
    frame: pl.DataFrame, ids: np.ndarray, id_column: str, column: str, missing: str
) -> np.ndarray:
    """A column of `frame` aligned to the sorted id array (missing ids get `missing`)."""
    aligned = pl.DataFrame({id_column: ids}).join(
        frame.select(id_column, column), on=id_column, how="left"
    )
    return aligned[column].cast(pl.String).fill_null(missing).to_numpy().astype(str)
