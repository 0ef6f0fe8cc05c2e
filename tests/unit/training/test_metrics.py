"""Ranking metrics on hand-made cases, each worked out by hand in the test."""

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from training.recommender.metrics import (
    bootstrap_interval,
    mean_auc,
    ndcg_per_user,
    paired_difference_interval,
    paired_ratio_interval,
    ranking_metrics,
)


def _truth(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    data, indices, indptr = [], [], [0]
    for row in rows:
        indices += row
        data += [1] * len(row)
        indptr.append(len(indices))
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_items))


def test_a_perfect_list_scores_one_everywhere() -> None:
    top = np.array([[0, 1], [2, 3]])
    m = ranking_metrics(top, _truth([[0, 1], [2, 3]], 4), n_items=4)
    assert (m.precision, m.recall, m.ndcg, m.hit_rate, m.coverage) == (1.0, 1.0, 1.0, 1.0, 1.0)


def test_one_hit_at_rank_two_of_three() -> None:
    """User 0 holds out {5, 9}; the list [1, 5, 7] hits 5 at rank 2.

    precision = 1/3; recall = 1/2; DCG = 1/log2(3); ideal DCG (2 relevant) = 1 + 1/log2(3);
    hit rate 1; coverage = 3 distinct items / 10.
    """
    m = ranking_metrics(np.array([[1, 5, 7]]), _truth([[5, 9]], 10), n_items=10)
    assert m.precision == pytest.approx(1 / 3)
    assert m.recall == pytest.approx(1 / 2)
    assert m.ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m.hit_rate == 1.0
    assert m.coverage == pytest.approx(0.3)


def test_users_without_held_out_items_are_skipped_and_misses_count_zero() -> None:
    """User 0 misses entirely, user 1 has nothing held out (skipped), user 2 hits at rank 1."""
    top = np.array([[1, 2], [3, 4], [0, 2]])
    m = ranking_metrics(top, _truth([[0], [], [0]], 5), n_items=5)
    assert m.users == 2
    assert m.hit_rate == pytest.approx(0.5)
    assert m.precision == pytest.approx((0 + 1 / 2) / 2)
    assert m.ndcg == pytest.approx(0.5)


def test_padding_never_counts_as_a_hit_or_as_coverage() -> None:
    m = ranking_metrics(np.array([[2, -1, -1]]), _truth([[2]], 4), n_items=4)
    assert m.precision == pytest.approx(1 / 3)
    assert m.coverage == pytest.approx(0.25)


def test_auc_of_a_perfect_and_of_a_reversed_ranking() -> None:
    truth = _truth([[0]], 3)
    assert mean_auc(np.array([[3.0, 2.0, 1.0]]), truth) == 1.0
    assert mean_auc(np.array([[1.0, 2.0, 3.0]]), truth) == 0.0


def test_auc_counts_ties_as_one_half_and_ignores_excluded_items() -> None:
    """Positive 0 scores 2; negatives 1 (tie, 1/2) and 2 (below, 1); item 3 is excluded: AUC = 0.75."""
    scores = np.array([[2.0, 2.0, 1.0, 9.0]])
    assert mean_auc(scores, _truth([[0]], 4), excluded=_truth([[3]], 4)) == pytest.approx(0.75)


def test_block_ranking_matches_the_services_top_k_row_by_row() -> None:
    """Evaluation ranks whole blocks at once; it must pick exactly what the service would."""
    from recsvc.version.scoring import top_k
    from training.recommender.evaluate import _ranked_lists

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(600, 50))
    scores[:, 45:] = -np.inf  # items that can never be recommended pad short lists with -1
    excluded = [rng.choice(45, size=int(rng.integers(0, 40)), replace=False) for _ in range(600)]
    lists = _ranked_lists(600, 10, lambda rows: scores[rows], excluded)
    for user in range(600):
        expected = top_k(scores[user], 10, excluded[user])
        assert lists[user][: expected.size].tolist() == expected.tolist()
        assert (lists[user][expected.size :] == -1).all()


# --- NDCG's bootstrap interval (the statistics layer, on simulated per-user scores) ---------------


def test_the_interval_holds_the_metric_and_repeats() -> None:
    top = np.array([[0, 1], [2, 3], [1, 0], [3, 2]])
    truth = _truth([[0], [9], [0, 5], [2]], 10)
    m = ranking_metrics(top, truth, n_items=10, interval=True)
    per_user = ndcg_per_user(top, truth)
    assert per_user.size == m.users == 4 and math.isclose(per_user.mean(), m.ndcg)
    assert m.ndcg_low is not None and m.ndcg_high is not None
    assert m.ndcg_low <= m.ndcg <= m.ndcg_high
    again = ranking_metrics(top, truth, n_items=10, interval=True)
    assert (again.ndcg_low, again.ndcg_high) == (m.ndcg_low, m.ndcg_high)
    assert ranking_metrics(top, truth, n_items=10).ndcg_low is None  # only when asked


def test_a_95_percent_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    """300 simulated evaluations of 200 customers whose NDCG is 0 for most and spread for the
    rest (as real per-customer NDCG is): the interval covers the true mean within binomial noise."""
    rng = np.random.default_rng(7)
    true_mean = 0.3 * 0.5  # 30% hit something; their NDCG is uniform on (0, 1)
    covered = 0
    trials = 300
    for trial in range(trials):
        scores = np.where(rng.random(200) < 0.3, rng.random(200), 0.0)
        low, high = bootstrap_interval(scores, rounds=400, seed=trial)
        covered += low <= true_mean <= high
    rate = covered / trials
    spread = 2 * math.sqrt(0.95 * 0.05 / trials)  # two binomial standard errors
    assert 0.95 - spread - 0.02 <= rate <= 0.95 + spread  # percentile bootstrap runs a bit narrow


def test_a_paired_interval_sees_a_small_steady_gain_two_separate_ones_miss() -> None:
    rng = np.random.default_rng(3)
    difficulty = rng.random(300)  # each customer's own difficulty, shared by both models
    old = difficulty
    new = difficulty + 0.02 + rng.normal(0, 0.01, 300)
    low, high = paired_difference_interval(new, old)
    assert 0 < low < 0.02 < high
    _, old_high = bootstrap_interval(old)
    new_low, _ = bootstrap_interval(new)
    assert new_low < old_high, "separately, the two intervals overlap"
    assert all(math.isnan(bound) for bound in bootstrap_interval(np.array([])))


def test_a_ratio_to_a_baseline_that_often_scores_zero_has_an_infinite_bound_and_no_warning() -> (
    None
):
    # A baseline with two non-zero users of 300: many resamples hold neither.
    old = np.zeros(300)
    old[:2] = 0.5
    new = np.full(300, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = paired_ratio_interval(new, old)
    assert math.isfinite(low) and low > 1.0
    assert high == math.inf
