"""The buy-again lists evaluation ranks for every blend setting, without rescoring the catalogue,
are the lists `recsvc.version.scoring.blend` would rank over every item (what the service serves)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsvc.version.scoring import (
    BlendParams,
    ModelArrays,
    Purchases,
    blend,
    repeat_propensity,
    top_rows,
)
from training.recommender.dataset import purchases
from training.recommender.evaluate import (
    BASELINE_DECAY,
    BLEND_GRID,
    BlendLift,
    EvaluationReport,
    _blended_lists,
    _BuyAgainPool,
    _model_pass,
    _own_history_lists,
    format_evaluation,
)
from training.recommender.metrics import RankingMetrics

USERS, ITEMS, K = 40, 300, 10


def _random_model(seed: int) -> tuple[ModelArrays, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 30, size=USERS)
    counts[0] = 0  # someone who bought nothing
    bought = [np.sort(rng.choice(ITEMS, size=c, replace=False)) for c in counts]
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    items = np.concatenate(bought).astype(np.int32)
    model = ModelArrays(
        item_vectors=rng.normal(size=(ITEMS, 8)).astype(np.float32),
        item_biases=rng.normal(size=ITEMS).astype(np.float32),
        user_feature_vectors=rng.normal(size=(USERS, 8)).astype(np.float32),
        user_feature_biases=np.zeros(USERS, dtype=np.float32),
        customer_features=np.zeros((USERS, 0), dtype=np.int32),
        purchases=Purchases(
            indptr=indptr,
            items=items,
            counts=rng.integers(1, 6, size=items.size).astype(np.int32),
            last_day=rng.integers(100, 200, size=items.size).astype(np.int32),
        ),
        item_reorder_days=np.where(
            rng.random(ITEMS) < 0.5, rng.uniform(5, 60, ITEMS), np.nan
        ).astype(np.float32),
        identity_weight=1.0,
        has_identity=np.ones(USERS, dtype=bool),
    )
    vectors = rng.normal(size=(USERS, 8)).astype(np.float32)
    vectors[5] = vectors[6]  # two identical customers: ties everywhere
    return model, vectors, [b.astype(np.int64) for b in bought]


@pytest.mark.parametrize("seed", [1, 2])
def test_blended_lists_equal_blending_every_item(seed: int) -> None:
    model, vectors, bought = _random_model(seed)
    p = model.purchases
    scored = _model_pass(model, vectors, bought, K)
    rows = np.arange(USERS)
    pool = _BuyAgainPool.of(scored, rows, bought, [p.row(r) for r in rows])

    def propensity(purchases: np.ndarray, params: BlendParams) -> np.ndarray:
        # Any frequency will do: what is checked is that the lists rank it as the service does.
        return repeat_propensity(
            p.counts[purchases] * params.decay,
            210 - p.last_day[purchases].astype(np.float64),
            model.item_reorder_days[p.items[purchases]],
            params.timing,
        )

    for params in (*BLEND_GRID, BlendParams(weight=0.0)):
        fast = _blended_lists(pool, USERS, propensity(pool.purchase, params), params, K)
        for r in rows:
            raw = (model.item_vectors @ vectors[r] + model.item_biases).astype(np.float64)
            span = np.arange(p.row(r).start, p.row(r).stop)
            final = blend(raw, bought[r], propensity(span, params), params)
            expected, _ = top_rows(final[None, :], K)
            assert fast[r].tolist() == expected[0].tolist(), (params, r)


def test_the_pass_keeps_the_best_never_bought_items() -> None:
    model, vectors, bought = _random_model(3)
    scored = _model_pass(model, vectors, bought, K)
    for r in range(USERS):
        raw = model.item_vectors @ vectors[r] + model.item_biases
        raw[bought[r]] = -np.inf
        expected, _ = top_rows(raw[None, :], K)
        assert scored.top[r].tolist() == expected[0].tolist()
        assert not set(scored.top[r].tolist()) & set(bought[r].tolist())


def _metrics(ndcg: float) -> RankingMetrics:
    return RankingMetrics(k=10, users=3, precision=0, recall=0, ndcg=ndcg, hit_rate=0, coverage=0)


@pytest.mark.parametrize(
    ("popularity", "said"), [(0.05, "2.00x popularity's"), (0.0, "not comparable")]
)
def test_the_summary_line_compares_with_popularity_only_when_popularity_scored(
    popularity: float, said: str
) -> None:
    report = EvaluationReport(
        k=10,
        cutoff_day=0,
        holdout_days=28,
        eval_users=3,
        new_items={"model": _metrics(0.1), "popularity": _metrics(popularity)},
        buy_again={},
        by_nps_category={},
        blend=BlendParams(0.0, 0.0),
        lift_over_popularity=0.1 / popularity if popularity else float("inf"),
    )
    assert said in format_evaluation(report).splitlines()[-1]
    assert "inf" not in format_evaluation(report)


def test_the_recency_weighted_baseline_ranks_by_recent_orders_where_counts_rank_by_lines() -> None:
    """Customer 0 bought item 1 in their first order (three lines) and item 2 in the two after. By
    lines item 1 leads (3 against 2); weighed 0.9 per order back, item 2 does (1 + 0.9 against
    0.9^2); then, in both, the popular items they did not buy."""
    rows = [(0, 1, 1, False, 1)] * 3 + [(0, 2, 2, False, 2), (0, 2, 3, False, 3)]
    rows += [(1, 4, 1, False, 1), (1, 4, 2, False, 2), (1, 5, 3, False, 3)]
    lines = pl.DataFrame(rows, schema=["u", "i", "day", "returned", "order"], orient="row")
    train = purchases(lines.with_columns(pl.col("u", "i", "day", "order").cast(pl.Int32)), 2)
    popularity = np.array([3.0, 3.0, 2.0, 0.0, 2.0, 1.0])
    customers = np.array([0])
    weighted = train.weights(BASELINE_DECAY)
    assert weighted[train.row(0)].tolist() == pytest.approx([0.81, 1.9])
    by_lines = _own_history_lists(train, customers, train.counts, popularity, 5)
    recent = _own_history_lists(train, customers, weighted, popularity, 5)
    assert by_lines.tolist() == [[1, 2, 0, 4, 5]]
    assert recent.tolist() == [[2, 1, 0, 4, 5]]


def test_the_report_says_how_the_blend_compares_with_the_better_own_history_list() -> None:
    report = EvaluationReport(
        k=10,
        cutoff_day=0,
        holdout_days=28,
        eval_users=3,
        new_items={"model": _metrics(0.1), "popularity": _metrics(0.05)},
        buy_again={"recency_weighted_own_frequency": _metrics(0.3), "blend": _metrics(0.33)},
        by_nps_category={},
        blend=BlendParams(0.9, 0.5, 0.8, 0.5),
        lift_over_popularity=2.0,
        blend_lift=BlendLift("recency_weighted_own_frequency", 1.1, 1.04, 1.16),
    )
    text = format_evaluation(report)
    assert "buy again    recency_weighted_own_frequency    " in text
    assert "weight 0.9, timing 0.5, decay 0.8, repeat 0.5" in text
    assert text.splitlines()[-1] == (
        "buy-again blend NDCG@10 is 1.10x recency_weighted_own_frequency's "
        "(95% paired interval 1.04-1.16)"
    )
