"""Product pages' bought-alike settings (`recsvc.version.neighbours.AlikeParams`): how a buyer's
weight and what sells now shape a share, computed by hand; the lists the training job writes and
the service's live pages agree at any settings; and the training run chooses the settings with
the best hold-out NDCG and carries them into the version the service reads."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from recsvc.service.recommend import Query
from recsvc.service.similar import listed_neighbours, live_neighbours
from recsvc.version.artifacts import load_model
from recsvc.version.neighbours import (
    RECENT_DAYS,
    AlikeParams,
    buyer_weights,
    recent_buyers,
    trend_lift,
)
from recsvc.version.scoring import ModelArrays, Purchases
from tests.artifact_factory import trained_version
from training.recommender.evaluate import EvaluationReport, format_evaluation
from training.recommender.similar import BUYER_POWERS, TREND_WEIGHTS, similar_lists

DAY = 20_000


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_version(tmp_path_factory.mktemp("alike"), seed=12)


def _arrays(rows: list[list[tuple[int, int]]], n_items: int) -> ModelArrays:
    """A model over customers' (item, last purchase day) rows, its item vectors all alike."""
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    flat = [pair for row in rows for pair in row]
    purchases = Purchases(
        indptr=indptr,
        items=np.array([i for i, _ in flat], np.int32),
        counts=np.ones(len(flat), np.int32),
        last_day=np.array([d for _, d in flat], np.int32),
    )
    n = len(rows)
    return ModelArrays(
        item_vectors=np.ones((n_items, 2), np.float32),
        item_biases=np.zeros(n_items, np.float32),
        user_feature_vectors=np.zeros((n + 1, 2), np.float32),
        user_feature_biases=np.zeros(n + 1, np.float32),
        customer_features=np.full((n, 1), n, np.int32),
        purchases=purchases,
        item_reorder_days=np.zeros(n_items, np.float32),
        identity_weight=1.0,
        has_identity=np.ones(n, bool),
    )


def test_a_share_weighs_buyers_by_how_much_they_buy_and_lifts_what_sells_now() -> None:
    old = DAY - RECENT_DAYS  # a day too old to sell "now", and 28 days of recency weight
    arrays = _arrays(
        [
            [(0, DAY), (1, DAY)],  # bought 2 products
            [(0, DAY), (1, DAY), (2, DAY), (3, old)],  # bought 4
            [(0, DAY)],  # bought 1
        ],
        4,
    )
    weights = buyer_weights(arrays.purchases, 0.5)
    assert weights == pytest.approx([2**-0.5, 4**-0.5, 1.0])
    assert buyer_weights(arrays.purchases, 0.0).tolist() == [1.0, 1.0, 1.0]
    assert recent_buyers(arrays.purchases, 4, DAY).tolist() == [3, 2, 1, 0]
    assert trend_lift(arrays.purchases, 4, DAY, 1.5) == pytest.approx([2.5, 2.0, 1.5, 1.0])
    assert trend_lift(arrays.purchases, 4, DAY, 0.0).tolist() == [1.0] * 4

    lists = similar_lists(arrays, DAY, 3, AlikeParams(0.5, 1.5), show_progress=False)
    total = weights.sum()
    aged = 0.5 ** (RECENT_DAYS / 30.0)  # the half-life of a co-purchase's recency
    expected = {
        1: 1 + (weights[0] + weights[1]) / total * 2.0,
        2: 1 + weights[1] / total * 1.5,
        3: 1 + weights[1] * aged / total * 1.0,
    }
    row = dict(zip(lists.items[0].tolist(), lists.scores[0].tolist(), strict=True))
    assert row == pytest.approx(expected, rel=1e-6)
    # The plain share: buyers alike, nothing lifted.
    plain = similar_lists(arrays, DAY, 3, AlikeParams(), show_progress=False)
    row = dict(zip(plain.items[0].tolist(), plain.scores[0].tolist(), strict=True))
    assert row == pytest.approx({1: 1 + 2 / 3, 2: 1 + 1 / 3, 3: 1 + aged / 3}, rel=1e-6)


def test_lists_and_live_pages_agree_at_any_settings(version: Path) -> None:
    model = load_model(version)
    products = np.argsort(-np.diff(model.item_buyers[0]), kind="stable")[::37][:12]
    plain_pages = None
    for power, trend in ((0.0, 0.0), (0.5, 0.0), (0.0, 4.0), (0.5, 4.0)):
        manifest = msgspec.structs.replace(
            model.manifest, alike_buyer_power=power, alike_trend_weight=trend
        )
        lists = similar_lists(
            model.arrays,
            manifest.trained_until_day,
            100,
            AlikeParams(power, trend),
            show_progress=False,
        )
        shaped = msgspec.structs.replace(model, manifest=manifest, similar=lists)
        pages = []
        for index in products.tolist():
            listed = listed_neighbours(shaped, index, Query(limit=30))
            assert listed is not None
            live = live_neighbours(shaped, index, Query(limit=30))
            assert listed[0].tolist() == live[0].tolist(), (power, trend, index)
            assert listed[1] == pytest.approx(live[1], rel=1e-6)
            assert listed[2].tolist() == live[2].tolist()
            pages.append(listed[0].tolist())
        if plain_pages is None:
            plain_pages = pages
        else:  # each setting reorders some page
            assert pages != plain_pages, (power, trend)


def test_the_run_chooses_the_settings_with_the_best_hold_out_ndcg(version: Path) -> None:
    report = msgspec.json.decode((version / "evaluation.json").read_bytes(), type=EvaluationReport)
    alike = report.alike
    assert alike is not None
    assert set(alike.ndcg) == {f"{p:g}/{t:g}" for p in BUYER_POWERS for t in TREND_WEIGHTS}
    assert alike.ndcg[f"{alike.buyer_power:g}/{alike.trend_weight:g}"] == max(alike.ndcg.values())
    assert 100 <= alike.customers <= report.eval_users
    assert len(set(alike.ndcg.values())) > 1  # the settings rank differently
    manifest = load_model(version).manifest
    assert (manifest.alike_buyer_power, manifest.alike_trend_weight) == (
        alike.buyer_power,
        alike.trend_weight,
    )
    assert f"similar products: buyer power {alike.buyer_power:g}" in format_evaluation(report)
    # The version's lists are ranked with them: its pages are the live computation's.
    model = load_model(version)
    for index in range(0, model.item_ids.size, 97):
        listed = listed_neighbours(model, index, Query(limit=20))
        assert listed is not None
        assert listed[0].tolist() == live_neighbours(model, index, Query(limit=20))[0].tolist()
