"""The bought-alike weight of anonymous carts, chosen per shop on the training run's hold-out:
recorded in the evaluation with what it rested on, carried into the version the service reads,
and measured as a stranger's cart (the customer never stands in for themself)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from recsvc.version.artifacts import load_model
from recsvc.version.carts import cart_vector, fused_scores
from recsvc.version.neighbours import item_buyers
from recsvc.version.scoring import ModelArrays, Purchases
from tests.artifact_factory import trained_version
from training.recommender.carts import ALIKE_WEIGHTS
from training.recommender.evaluate import EvaluationReport, format_evaluation


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_version(tmp_path_factory.mktemp("carts"), seed=11)


def test_the_run_chooses_the_weight_with_the_best_hold_out_ndcg(version: Path) -> None:
    report = msgspec.json.decode((version / "evaluation.json").read_bytes(), type=EvaluationReport)
    cart = report.cart
    assert cart is not None
    assert set(cart.ndcg) == {f"{w:g}" for w in ALIKE_WEIGHTS}
    assert cart.ndcg[f"{cart.weight:g}"] == max(cart.ndcg.values())
    assert 100 <= cart.customers <= report.eval_users
    # Different weights rank differently: the choice is not between equals.
    assert len(set(cart.ndcg.values())) > 1
    assert load_model(version).manifest.cart_alike_weight == cart.weight
    assert f"bought-alike weight {cart.weight:g}" in format_evaluation(report)


def test_a_cart_is_folded_in_without_the_customer_left_out() -> None:
    # The whole model: two customers, three items, identity vectors.
    purchases = Purchases(
        indptr=np.array([0, 2, 3]),
        items=np.array([0, 1, 1], np.int32),
        counts=np.ones(3, np.int32),
        last_day=np.zeros(3, np.int32),
    )
    arrays = ModelArrays(
        item_vectors=np.eye(3, dtype=np.float32),
        item_biases=np.zeros(3, np.float32),
        user_feature_vectors=np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32),
        user_feature_biases=np.zeros(3, np.float32),
        customer_features=np.array([[2], [2]], np.int32),
        purchases=purchases,
        item_reorder_days=np.zeros(3, np.float32),
        identity_weight=1.0,
        has_identity=np.array([True, True]),
    )
    buyers = item_buyers(purchases, 3)  # item 0: customer 0; item 1: customers 0 and 1
    cart = np.array([0, 1], np.int32)
    # Customer 0 bought both: alone they are the neighbourhood's heavier half.
    both = cart_vector(arrays, buyers, cart)
    assert both is not None and both[0] > both[1] > 0
    without = cart_vector(arrays, buyers, cart, leave_out=0)
    assert without is not None and without.tolist() == [0.0, 1.0, 0.0]
    assert cart_vector(arrays, buyers, np.array([0], np.int32), leave_out=0) is None


def test_fusion_adds_each_rankings_reciprocal_rank() -> None:
    model = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    alike = np.array([0.0, 0.0, 0.0, 0.9, 0.5])
    cart = np.array([0], np.int32)
    fused = fused_scores(model, alike, cart, 1.0)
    # Items 1-4 rank 0-3 by the model (the cart ranks nowhere); 3 and 4 rank 0-1 bought alike.
    order = np.argsort(-fused[1:], kind="stable") + 1
    assert order.tolist() == [3, 4, 1, 2]
    assert fused[3] == pytest.approx(1 / 62 + 1 / 60, abs=1e-5)
    assert fused[4] == pytest.approx(1 / 63 + 1 / 61, abs=1e-5)
    assert fused[1] == pytest.approx(1 / 60, abs=1e-5)
    # At weight 0 the model's order alone.
    alone = fused_scores(model, alike, cart, 0.0)
    assert (np.argsort(-alone[1:], kind="stable") + 1).tolist() == [1, 2, 3, 4]
