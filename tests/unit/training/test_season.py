"""The recent-popularity prior (`training.recommender.season`) on hand-made purchases, and its
weight chosen on validation by the search's own rule: a season wins weight, no season keeps 0."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsvc.version.scoring import Purchases
from training.config import TrainingConfig
from training.recommender import season
from training.recommender.holdout import Validation
from training.recommender.search import _Problem, _Trial, _tune_prior

DAY = 20_000  # the history's last day, in days since the epoch


def _purchases(rows: list[list[tuple[int, int]]]) -> Purchases:
    """Per customer, (item, last purchase day) pairs."""
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    flat = [pair for row in rows for pair in row]
    return Purchases(
        indptr=indptr,
        items=np.array([i for i, _ in flat], dtype=np.int32),
        counts=np.ones(len(flat), dtype=np.int32),
        last_day=np.array([d for _, d in flat], dtype=np.int32),
    )


def test_the_prior_counts_each_products_buyers_in_the_last_days_on_a_log_scale() -> None:
    old = DAY - season.PRIOR_DAYS  # one day too old to count
    history = _purchases(
        [
            [(0, DAY), (1, DAY - 3)],
            [(0, DAY - 27), (2, old)],
            [(0, old), (1, DAY), (3, old)],
        ]
    )
    prior = season.recent_popularity(history, 5)
    buyers = np.array([2, 2, 0, 0, 0])  # product 4: never bought
    expected = np.log1p(buyers)
    expected = (expected - expected.mean()) / expected.std()
    assert prior == pytest.approx(expected)
    assert prior.mean() == pytest.approx(0.0) and prior.std() == pytest.approx(1.0)
    # Every product alike (or no history): no prior at all.
    assert not season.recent_popularity(_purchases([[(0, DAY)], [(1, DAY)]]), 2).any()
    assert not season.recent_popularity(_purchases([]), 3).any()


def test_the_prior_moves_the_biases_by_weight_times_spread() -> None:
    biases = np.array([0.5, -1.0, 0.0], dtype=np.float32)
    prior = np.array([1.0, 0.0, -1.0])
    assert season.with_prior(biases, prior, 0.0, 3.0) == pytest.approx(biases)
    shifted = season.with_prior(biases, prior, 0.5, 2.0)
    assert shifted.dtype == np.float32
    assert shifted == pytest.approx([1.5, -1.0, -1.0])


def _validation_problem(truth_items: list[int]) -> tuple[_Problem, Validation, _Trial]:
    """Ten products; before the validation cut-off, products 0-2 sold to many in the last days and
    products 5-9 long ago; each validation customer then buys `truth_items`. The trial's model
    knows nothing (zero vectors): only the prior can rank."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):
        recent = [(int(i), DAY - int(rng.integers(0, 10))) for i in (0, 1, 2) if rng.random() < 0.7]
        long_ago = [(int(i), DAY - 200) for i in range(5, 10) if rng.random() < 0.9]
        rows.append(recent + long_ago or [(9, DAY - 200)])
    train = _purchases(rows)
    test = _purchases([[(i, DAY + 5) for i in truth_items]] * 40)
    validation = Validation(
        kind="time", customers=40, interactions=sp.coo_matrix((40, 10)), train=train, test=test
    )
    problem = _Problem(
        interactions=sp.csr_matrix((40, 10)),
        users=None,  # type: ignore[arg-type]
        fit_users=np.arange(40),
        items=None,  # type: ignore[arg-type]
        item_known=np.ones(10, dtype=bool),
        rows=np.arange(40),
        bought=[np.array([], dtype=np.int32)] * 40,
        truth=[np.array(truth_items, dtype=np.int32)] * 40,
        k=3,
    )
    trial = _Trial("chosen", TrainingConfig())
    vectors, users = np.zeros((10, 4), np.float32), np.zeros((40, 4), np.float32)
    # Ties broken towards the long-ago sellers: the model alone ranks them first.
    biases = np.linspace(0.0, 1e-3, 10).astype(np.float32)
    trial.curve = [problem.scored(trial, vectors, biases, users)]
    return problem, validation, trial


def test_a_season_on_validation_wins_the_prior_weight() -> None:
    problem, validation, trial = _validation_problem([0, 1, 2])
    choice = _tune_prior(problem, trial, validation, TrainingConfig())
    assert choice is not None and choice.days == season.PRIOR_DAYS
    assert set(choice.ndcg) == {f"{w:g}" for w in season.PRIOR_WEIGHTS}
    assert choice.ndcg["0"] == pytest.approx(trial.curve[0], abs=1e-6) == pytest.approx(0.0)
    # The lightest weight that ranks the recent sellers first: ties go to the lighter.
    assert choice.weight == min(season.PRIOR_WEIGHTS[1:])
    assert choice.ndcg[f"{choice.weight:g}"] == pytest.approx(1.0)


def test_no_season_on_validation_keeps_the_model_alone() -> None:
    problem, validation, trial = _validation_problem([9, 8, 7])
    choice = _tune_prior(problem, trial, validation, TrainingConfig())
    assert choice is not None and choice.weight == 0.0
    assert choice.ndcg["0"] == pytest.approx(1.0)
    assert all(v < 1.0 for w, v in choice.ndcg.items() if w != "0")
