"""EASE (Steck 2019) as a factor model the service scores like any other, and its blend with LightFM.

EASE learns an item x item matrix in closed form: B = I - P diag(1/diag P), P = (X'X + lambda I)^-1,
X the binary customer x product purchases; a customer's scores are x_u B. On real shops it is a
strong peer (1.13x a plain LightFM fit on a public data set, 1.24x on Online Retail). The service
scores dot products of a customer vector with item vectors, so B is kept as a rank-`ease_rank`
factorisation B ~ L R' (a randomised SVD): the customer's vector is x_u L, the items' vectors R.
At rank 256 on Online Retail the factorised EASE ranks at 0.995-0.999x the NDCG@10 of the exact one
(`docs/recommender.md`, "EASE"), and every path (candidate lists, evaluation, the gate, carts,
cold start) then reads one kind of model.

The blend puts LightFM (purely collaborative) and EASE side by side in one vector: customer
[a/s_l u_l, (1-a)/s_e u_e], item [v_l, v_e], so a dot product is a s_l^-1 LightFM + (1-a) s_e^-1
EASE, each score scaled by its spread (s) over a sample of customers. New customers and products
are placed from their attributes as in a purely collaborative fit (`fit.attributes_from_members`).

The catalogue must be small enough: X'X, its inverse and B are dense (`dense_bytes`), and the
inverse costs n^3 (`inverse_seconds`, timed on this machine at run time).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

# Products at which the inverse is timed to project a catalogue's cost (n^3): smaller ones run
# further from the machine's peak and overstate a large catalogue's time several-fold.
_PROBE = 2_000


def binary(interactions: sp.spmatrix) -> sp.csr_matrix:
    """1 where the customer has an interaction with the product."""
    x = sp.csr_matrix(interactions, dtype=np.float64, copy=True)
    x.data[:] = 1.0
    x.eliminate_zeros()
    return x


def gram(x: sp.csr_matrix) -> np.ndarray:
    """X'X, float32 (exact: counts of customers, far below 2^24)."""
    x32 = sp.csr_matrix(x, dtype=np.float32)
    return np.asarray((x32.T @ x32).toarray(), dtype=np.float32)


def ease_weights(gram_matrix: np.ndarray, lam: float) -> np.ndarray:
    """B of the EASE paper (zero diagonal) for the regularisation `lam`, float32.

    One working matrix beside the Gram matrix: X'X + lambda I is symmetric positive definite, so
    its inverse is taken in place by Cholesky (LAPACK's potrf and potri: about half the work of a
    general inverse), in single precision (half again, and half the memory; lambda >= 10 keeps it
    well conditioned enough that the top-k lists match the double-precision ones), and B is
    written over it."""
    n = gram_matrix.shape[0]
    g = np.array(gram_matrix, dtype=np.float32, order="F", copy=True)
    g[np.diag_indices_from(g)] += np.float32(lam)
    factor_, info = lapack.spotrf(g, lower=1, overwrite_a=1, clean=0)
    if info == 0:
        p, info = lapack.spotri(factor_, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: X'X + {lam:g} I is not positive definite ({info})")
    _mirror_lower(p)
    diagonal = -np.diag(p).copy()
    p /= diagonal[None, :]  # column j over -P_jj
    p[np.diag_indices(n)] = 0.0
    return p


def _mirror_lower(p: np.ndarray, block: int = 1024) -> None:
    """Copy the lower triangle of `p` over its upper one, in blocks of rows (no n x n temporary)."""
    n = p.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        square = p[start:stop, start:stop]
        square[...] = np.tril(square) + np.tril(square, -1).T
        p[start:stop, stop:] = p[stop:, start:stop].T


def factor(b: np.ndarray, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(L, R), both (n, rank) float32, with B ~ L R': a randomised SVD (Halko et al. 2011) with
    two power iterations, enough at rank 256 to rank as the exact B does."""
    n = b.shape[0]
    rank = min(rank, n)
    omega = np.random.default_rng(seed).standard_normal((n, min(rank + 16, n)), dtype=b.dtype)
    y = b @ omega
    for _ in range(2):
        y, _ = np.linalg.qr(y)
        y = b @ (b.T @ y)
    q, _ = np.linalg.qr(y)
    u, s, vt = np.linalg.svd(q.T @ b, full_matrices=False)
    left = (q @ u[:, :rank]) * s[:rank]
    return left.astype(np.float32), np.ascontiguousarray(vt[:rank].T, dtype=np.float32)


def dense_bytes(n_items: int) -> int:
    """Memory of one EASE fit: X'X and the matrix its inverse and B are written in, float32."""
    return 2 * n_items * n_items * 4


def inverse_seconds(n_items: int) -> float:
    """The projected time of one EASE inverse of n products here, from a small one timed now."""
    probe = np.random.default_rng(0).standard_normal((_PROBE, _PROBE)).astype(np.float32)
    probe = probe @ probe.T
    spent = []
    for _ in range(2):  # the faster of two: a shared machine's hiccups are not the cost
        started = time.perf_counter()
        ease_weights(probe, float(_PROBE))
        spent.append(time.perf_counter() - started)
    return min(spent) * (n_items / _PROBE) ** 3


def customer_vectors(x: sp.csr_matrix, left: np.ndarray) -> np.ndarray:
    """x_u L for every customer (rows of x), float32."""
    return np.asarray(x @ left, dtype=np.float32)


def score_spread(
    user_vectors: np.ndarray, item_vectors: np.ndarray, item_biases: np.ndarray, seed: int
) -> float:
    """The spread of the scores over the items of a sample of customers: what puts two models'
    scores on one scale in the blend."""
    users = np.flatnonzero(np.abs(user_vectors).sum(axis=1) > 0)
    if not users.size:
        return 1.0
    rng = np.random.default_rng(seed)
    sample = rng.choice(users, size=min(500, users.size), replace=False)
    scores = user_vectors[sample] @ item_vectors.T + item_biases
    spread = float(scores.std())
    return spread if spread > 0 else 1.0


def blend_vectors(
    lightfm: tuple[np.ndarray, np.ndarray, np.ndarray],
    ease: tuple[np.ndarray, np.ndarray],
    weight: float,
    spreads: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user vectors, item vectors, item biases) of the blend: LightFM's (users, items, biases)
    and EASE's (users, items) side by side, LightFM weighing `weight` (see the module's docstring)."""
    users_l, items_l, biases_l = lightfm
    users_e, items_e = ease
    a, c = weight / spreads[0], (1.0 - weight) / spreads[1]
    users = np.hstack([users_l * np.float32(a), users_e * np.float32(c)]).astype(np.float32)
    items = np.ascontiguousarray(np.hstack([items_l, items_e]), dtype=np.float32)
    return users, items, (biases_l * np.float32(a)).astype(np.float32)
