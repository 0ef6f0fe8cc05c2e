"""Serving-side scoring: fold-in from feature embeddings, top-k with exclusions, buy-again blend."""

import numpy as np
import pytest

from recsvc.version.scoring import (
    BlendParams,
    ModelArrays,
    Purchases,
    batch_top_k,
    blend,
    known_customer_vector,
    repeat_propensity,
    score_items,
    top_k,
    user_vector,
)


def _model(identity_weight: float = 0.5) -> ModelArrays:
    # Two customers (identity rows 0, 1), attribute rows 2 ("nps=promoter") and 3 ("nps=detractor").
    user_vectors = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    return ModelArrays(
        item_vectors=np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32),
        item_biases=np.zeros(3, dtype=np.float32),
        user_feature_vectors=user_vectors,
        user_feature_biases=np.array([0.0, 0.0, 1.0, -1.0], dtype=np.float32),
        customer_features=np.array([[2], [3]], dtype=np.int32),
        purchases=Purchases(
            indptr=np.array([0, 1, 1]),
            items=np.array([2], dtype=np.int32),
            counts=np.array([3], dtype=np.int32),
            last_day=np.array([100], dtype=np.int32),
        ),
        item_reorder_days=np.array([np.nan, np.nan, 30.0], dtype=np.float32),
        identity_weight=identity_weight,
        has_identity=np.array([True, False]),
    )


def test_a_known_customer_is_the_weighted_sum_of_identity_and_attributes() -> None:
    """Customer 0: 0.5 * [1, 0] + 0.5 * [2, 0] = [1.5, 0]; bias 0.5 * 0 + 0.5 * 1."""
    vector, bias = known_customer_vector(_model(), 0)
    assert vector.tolist() == [1.5, 0.0]
    assert bias == pytest.approx(0.5)


def test_changed_features_change_the_vector_without_refitting() -> None:
    """Customer 0 turns detractor: the same identity with attribute row 3 instead of 2."""
    model = _model()
    before, _ = known_customer_vector(model, 0)
    after, _ = user_vector(model, 0, [3])
    assert after.tolist() == [0.5, 1.0]
    assert int(np.argmax(score_items(model, before))) == 0
    assert int(np.argmax(score_items(model, after))) == 1


def test_a_cold_start_customer_is_the_mean_of_their_attribute_embeddings() -> None:
    vector, bias = user_vector(_model(), None, [2, 3])
    assert vector.tolist() == [1.0, 1.0]
    assert bias == 0.0


def test_a_customer_with_no_known_feature_gets_a_zero_vector() -> None:
    vector, bias = user_vector(_model(), None, [])
    assert vector.tolist() == [0.0, 0.0] and bias == 0.0


def test_top_k_orders_best_first_and_skips_excluded_items() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    assert top_k(scores, 2).tolist() == [1, 3]
    assert top_k(scores, 3, excluded=np.array([1])).tolist() == [3, 2, 0]
    assert top_k(scores, 10, excluded=np.array([0, 1, 2, 3])).tolist() == []


def test_repeat_propensity_peaks_when_the_item_is_due() -> None:
    counts = np.array([2, 2, 2])
    days = np.array([3.0, 30.0, 300.0])
    p = repeat_propensity(counts, days, np.full(3, 30.0), timing=1.0)
    assert p[1] == pytest.approx(np.log1p(2))
    assert p[1] > p[0] and p[1] > p[2]


def test_without_timing_propensity_is_purchase_frequency() -> None:
    p = repeat_propensity(
        np.array([1, 4]), np.array([1.0, 500.0]), np.array([np.nan, np.nan]), timing=0.0
    )
    assert p.tolist() == pytest.approx([np.log1p(1), np.log1p(4)])


def test_a_products_repeat_rate_scales_its_propensity_by_the_blends_power() -> None:
    frequency, days, cycles = np.array([1.9, 1.9]), np.array([5.0, 5.0]), np.full(2, np.nan)
    rates = np.array([0.81, 0.25])
    p = repeat_propensity(frequency, days, cycles, timing=0.0, repeat_rate=rates, repeat=0.5)
    assert p.tolist() == pytest.approx([np.log1p(1.9) * 0.9, np.log1p(1.9) * 0.5])
    off = repeat_propensity(frequency, days, cycles, timing=0.0, repeat_rate=rates, repeat=0.0)
    assert off.tolist() == pytest.approx([np.log1p(1.9)] * 2)


def test_a_full_weight_blend_ranks_bought_items_first_and_model_orders_the_rest() -> None:
    scores = np.array([3.0, 2.0, 1.0, 0.0])
    out = blend(scores, np.array([3]), np.array([1.0]), BlendParams(weight=1.0, timing=0.0))
    assert top_k(out, 4).tolist() == [3, 0, 1, 2]


def test_a_zero_weight_blend_is_the_model_alone() -> None:
    scores = np.array([3.0, 2.0, 1.0])
    out = blend(scores, np.array([2]), np.array([5.0]), BlendParams(weight=0.0))
    assert out is scores


def test_batch_scoring_matches_one_by_one_scoring_and_excludes_purchases() -> None:
    model = _model()
    batch, scores = batch_top_k(model, np.array([0, 1]), k=3)
    for customer in (0, 1):
        vector, _ = known_customer_vector(model, customer)
        bought = model.purchases.items[model.purchases.row(customer)]
        single = top_k(score_items(model, vector), 3, excluded=bought)
        assert batch[customer][: single.size].tolist() == single.tolist()
    assert 2 not in batch[0].tolist()  # customer 0 bought item 2
    assert batch[0][-1] == -1  # only two items left to recommend
    assert scores[0][-1] == -np.inf and np.isfinite(scores[0][:2]).all()


def test_a_customer_without_a_learned_identity_is_folded_in_from_attributes_only() -> None:
    """Customer 1 had no training interactions: attribute row 3 alone, [0, 2], bias -1."""
    vector, bias = known_customer_vector(_model(), 1)
    assert vector.tolist() == [0.0, 2.0]
    assert bias == -1.0
