"""The buy-again lists evaluation ranks for every blend setting, without rescoring the catalogue,
are the lists `recsvc.version.scoring.blend` would rank over every item (what the service serves)."""

from __future__ import annotations

import numpy as np
import pytest

from recsvc.version.scoring import (
    BlendParams,
    ModelArrays,
    Purchases,
    blend,
    repeat_propensity,
    top_rows,
)
from training.recommender.evaluate import (
    BLEND_GRID,
    EvaluationReport,
    _blended_lists,
    _model_pass,
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

    def propensity(r: int, timing: float) -> np.ndarray:
        span = p.row(r)
        return repeat_propensity(
            p.counts[span],
            210 - p.last_day[span].astype(np.float64),
            model.item_reorder_days[p.items[span]],
            timing,
        )

    rows = np.arange(USERS)
    for params in (*BLEND_GRID, BlendParams(weight=0.0)):
        fast = _blended_lists(scored, rows, bought, propensity, params, K)
        for r in rows:
            raw = (model.item_vectors @ vectors[r] + model.item_biases).astype(np.float64)
            final = blend(raw, bought[r], propensity(int(r), params.timing), params)
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


@pytest.mark.parametrize(
    ("popularity", "said"), [(0.05, "2.00x popularity's"), (0.0, "not comparable")]
)
def test_the_summary_line_compares_with_popularity_only_when_popularity_scored(
    popularity: float, said: str
) -> None:
    def metrics(ndcg: float) -> RankingMetrics:
        return RankingMetrics(
            k=10, users=3, precision=0, recall=0, ndcg=ndcg, hit_rate=0, coverage=0
        )

    report = EvaluationReport(
        k=10,
        cutoff_day=0,
        holdout_days=28,
        eval_users=3,
        new_items={"model": metrics(0.1), "popularity": metrics(popularity)},
        buy_again={},
        by_nps_category={},
        blend=BlendParams(0.0, 0.0),
        lift_over_popularity=0.1 / popularity if popularity else float("inf"),
    )
    assert said in format_evaluation(report).splitlines()[-1]
    assert "inf" not in format_evaluation(report)
