"""Ranking metrics at k for recommendation lists against held-out purchases.

Inputs are plain arrays so every metric can be checked on hand-made cases: `top` is an
(users x k) array of recommended item indices (-1 pads a short list), `truth` a CSR matrix
(users x items) whose non-zeros are the held-out items of each user. All metrics are averaged over
users with at least one held-out item; a user with an empty truth row is skipped.

NDCG comes with a 95% bootstrap interval when asked (`interval=True`): the customers evaluated are
a sample of the shop's, and on a few hundred of them a difference of a few hundredths is noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec
import numpy as np
import scipy.sparse as sp


class RankingMetrics(msgspec.Struct, frozen=True):
    k: int
    users: int
    precision: float
    recall: float
    ndcg: float
    hit_rate: float
    coverage: float
    auc: float | None = None
    ndcg_low: float | None = None  # 95% bootstrap interval of `ndcg` over the users evaluated
    ndcg_high: float | None = None


BOOTSTRAP_ROUNDS = 1000
BOOTSTRAP_SEED = 20_240_901


def bootstrap_interval(
    values: np.ndarray,
    *,
    level: float = 0.95,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `values` (one per user): resample the users
    with replacement `rounds` times. Seeded, so a run repeats; (nan, nan) without values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    return _percentiles(
        _resampled(values.size, rounds, seed, lambda draws: values[draws].mean(axis=1)), level
    )


def _resampled(
    n: int, rounds: int, seed: int, statistic: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """`statistic` of `rounds` resamples of n users with replacement (each row of its argument is
    one resample's indices): seeded, and in blocks, so a large sample never needs a rounds x users
    index matrix at once."""
    rng = np.random.default_rng(seed)
    out = np.empty(rounds, dtype=np.float64)
    block = max(1, 2_000_000 // n)
    for start in range(0, rounds, block):
        stop = min(start + block, rounds)
        out[start:stop] = statistic(rng.integers(0, n, size=(stop - start, n)))
    return out


def _percentiles(statistics: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    levels = [tail, 1.0 - tail]
    # A ratio's resamples may be infinite (a baseline that scored 0 in them: MovieLens' own
    # history, where nothing is bought twice). Between two of them numpy interpolates inf - inf:
    # a warning and nan, where the bound is that infinity.
    with np.errstate(invalid="ignore"):
        bounds = np.quantile(statistics, levels)
    if np.isnan(bounds).any() and not np.isnan(statistics).any():
        bounds = np.where(
            np.isnan(bounds), np.quantile(statistics, levels, method="nearest"), bounds
        )
    return float(bounds[0]), float(bounds[1])


def paired_difference_interval(
    new: np.ndarray, old: np.ndarray, *, level: float = 0.95, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """The bootstrap interval of mean(new - old) over the same users (a paired comparison: each
    user's own difficulty cancels out, so it is far tighter than two separate intervals)."""
    return bootstrap_interval(np.asarray(new) - np.asarray(old), level=level, seed=seed)


def paired_ratio_interval(
    new: np.ndarray,
    old: np.ndarray,
    *,
    level: float = 0.95,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The bootstrap interval of mean(new) / mean(old) over the same users, resampled together
    (paired, like `paired_difference_interval`); (nan, nan) without users."""
    new, old = np.asarray(new, dtype=np.float64), np.asarray(old, dtype=np.float64)
    if new.size == 0:
        return math.nan, math.nan

    def ratio(draws: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            result: np.ndarray = new[draws].mean(axis=1) / old[draws].mean(axis=1)
        return result

    return _percentiles(_resampled(new.size, rounds, seed, ratio), level)


def item_sets(rows: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Each user's item indices (a held-out truth, what they bought) as one sparse row of ones."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([r.size for r in rows], out=indptr[1:])
    indices = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    return sp.csr_matrix(
        (np.ones(indices.size, dtype=np.int8), indices, indptr), shape=(len(rows), n_items)
    )


def _hits(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean (users x k): is the recommended item at this rank a held-out item of the user?"""
    truth = truth.tocsr()
    n_items = max(truth.shape[1], 1)
    # One membership test over (user, item) keys for all users at once, not one per user.
    owners = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr))
    held = owners * n_items + truth.indices
    ranked = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    return np.isin(ranked, held) & (top >= 0)


def ndcg_per_user(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """NDCG@k of each user with at least one held-out item (the users `ranking_metrics` averages)."""
    truth = truth.tocsr()
    n_truth = np.diff(truth.indptr)
    evaluable = n_truth > 0
    if not evaluable.any():
        return np.zeros(0, dtype=np.float64)
    return _ndcg_rows(_hits(top[evaluable], truth[evaluable]), n_truth[evaluable])


def _ndcg_rows(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    return np.asarray((hits * discounts).sum(axis=1) / ideal, dtype=np.float64)


def ranking_metrics(
    top: np.ndarray,
    truth: sp.csr_matrix,
    n_items: int,
    auc: float | None = None,
    *,
    interval: bool = False,
) -> RankingMetrics:
    """Precision, recall, NDCG, hit rate at k = top.shape[1], and catalog coverage of the lists;
    with `interval`, NDCG's 95% bootstrap interval too."""
    k = top.shape[1]
    n_truth = np.diff(truth.tocsr().indptr)
    evaluable = n_truth > 0
    if not evaluable.any():
        return RankingMetrics(k, 0, 0.0, 0.0, 0.0, 0.0, 0.0, auc)
    top_e = top[evaluable]
    hits = _hits(top_e, truth.tocsr()[evaluable])
    n_hits = hits.sum(axis=1)
    n_rel = n_truth[evaluable]
    ndcg = _ndcg_rows(hits, n_rel)
    low, high = bootstrap_interval(ndcg) if interval else (None, None)
    recommended = np.unique(top_e[top_e >= 0])
    return RankingMetrics(
        k=k,
        users=int(evaluable.sum()),
        precision=float((n_hits / k).mean()),
        recall=float((n_hits / n_rel).mean()),
        ndcg=float(ndcg.mean()),
        hit_rate=float((n_hits > 0).mean()),
        coverage=float(recommended.size / n_items) if n_items else 0.0,
        auc=auc,
        ndcg_low=low,
        ndcg_high=high,
    )


def mean_auc(
    scores: np.ndarray, truth: sp.csr_matrix, excluded: sp.csr_matrix | None = None
) -> float:
    """Mean per-user AUC: the chance a held-out item outranks a random non-held-out item.

    `scores` is (users x items). Items in `excluded` (e.g. training purchases when they are filtered
    out of the lists) count as neither positives nor negatives. Ties count one half.
    """
    truth = truth.tocsr()
    aucs: list[float] = []
    for u in range(scores.shape[0]):
        positives = truth.indices[truth.indptr[u] : truth.indptr[u + 1]]
        if positives.size == 0:
            continue
        mask = np.ones(scores.shape[1], dtype=bool)
        if excluded is not None:
            ex = excluded.tocsr()
            mask[ex.indices[ex.indptr[u] : ex.indptr[u + 1]]] = False
        mask[positives] = True
        row = scores[u, mask]
        is_pos = np.zeros(scores.shape[1], dtype=bool)
        is_pos[positives] = True
        is_pos = is_pos[mask]
        n_pos = int(is_pos.sum())
        n_neg = row.size - n_pos
        if n_neg == 0:
            continue
        # Average ranks handle ties as one half (Mann-Whitney U).
        order = np.argsort(row, kind="mergesort")
        ranks = np.empty(row.size, dtype=np.float64)
        sorted_scores = row[order]
        _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
        avg = first + (counts - 1) / 2.0 + 1.0
        ranks[order] = np.repeat(avg, counts)
        u_stat = ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2.0
        aucs.append(u_stat / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else math.nan
