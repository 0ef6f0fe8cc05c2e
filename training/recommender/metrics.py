"""Ranking metrics at k for recommendation lists against held-out purchases.

Inputs are plain arrays so every metric can be checked on hand-made cases: `top` is an
(users x k) array of recommended item indices (-1 pads a short list), `truth` a CSR matrix
(users x items) whose non-zeros are the held-out items of each user. All metrics are averaged over
users with at least one held-out item; a user with an empty truth row is skipped.
"""

from __future__ import annotations

import math

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


def _hits(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean (users x k): is the recommended item at this rank a held-out item of the user?"""
    truth = truth.tocsr()
    hits = np.zeros(top.shape, dtype=bool)
    for u in range(top.shape[0]):
        row = truth.indices[truth.indptr[u] : truth.indptr[u + 1]]
        if row.size:
            hits[u] = np.isin(top[u], row) & (top[u] >= 0)
    return hits


def ranking_metrics(
    top: np.ndarray, truth: sp.csr_matrix, n_items: int, auc: float | None = None
) -> RankingMetrics:
    """Precision, recall, NDCG, hit rate at k = top.shape[1], and catalog coverage of the lists."""
    k = top.shape[1]
    n_truth = np.diff(truth.tocsr().indptr)
    evaluable = n_truth > 0
    if not evaluable.any():
        return RankingMetrics(k, 0, 0.0, 0.0, 0.0, 0.0, 0.0, auc)
    top_e = top[evaluable]
    hits = _hits(top_e, truth.tocsr()[evaluable])
    n_hits = hits.sum(axis=1)
    n_rel = n_truth[evaluable]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_rel, k) - 1]
    recommended = np.unique(top_e[top_e >= 0])
    return RankingMetrics(
        k=k,
        users=int(evaluable.sum()),
        precision=float((n_hits / k).mean()),
        recall=float((n_hits / n_rel).mean()),
        ndcg=float((dcg / ideal).mean()),
        hit_rate=float((n_hits > 0).mean()),
        coverage=float(recommended.size / n_items) if n_items else 0.0,
        auc=auc,
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
