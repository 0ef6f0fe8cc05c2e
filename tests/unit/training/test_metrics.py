"""Ranking metrics on hand-made cases, each worked out by hand in the test."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from training.recommender.metrics import mean_auc, ranking_metrics


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
