"""Fits the hybrid LightFM model and exports the arrays the service scores with (`fit_arrays`).

lightfm is imported here and only here: the service never needs it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsvc.version.scoring import ModelArrays, Purchases
from training.config import TrainingConfig
from training.recommender.dataset import FeatureSpace, interacted


@dataclass(frozen=True, slots=True)
class FittedModel:
    item_vectors: np.ndarray  # (n_items, k) float32
    item_biases: np.ndarray  # (n_items,) float32
    user_feature_vectors: np.ndarray  # (n_user_features, k) float32
    user_feature_biases: np.ndarray  # (n_user_features,) float32
    epoch_seconds: list[float]


def fit(
    interactions: sp.coo_matrix,
    user_features: sp.csr_matrix,
    item_features: sp.csr_matrix,
    config: TrainingConfig,
    *,
    show_progress: bool = True,
    label: str = "fit",
) -> FittedModel:
    from lightfm import LightFM

    model = LightFM(
        no_components=config.components,
        loss=config.loss,
        learning_rate=config.learning_rate,
        item_alpha=config.item_alpha,
        user_alpha=config.user_alpha,
        max_sampled=config.max_sampled,
        random_state=np.random.RandomState(config.seed),
    )
    coo = interactions.tocoo()
    # LightFM's Cython code writes through its buffers: arrays borrowed from polars are read-only.
    row, col = np.array(coo.row, dtype=np.int32), np.array(coo.col, dtype=np.int32)
    weights = sp.coo_matrix((np.array(coo.data, dtype=np.float32), (row, col)), shape=coo.shape)
    # WARP and BPR learn from which pairs exist; the weight scales each pair's update.
    binary = sp.coo_matrix(
        (np.ones_like(weights.data), (weights.row, weights.col)), shape=weights.shape
    )
    epoch_seconds: list[float] = []
    last_report = 0.0
    for epoch in range(config.epochs):
        started = time.perf_counter()
        model.fit_partial(
            binary,
            user_features=user_features,
            item_features=item_features,
            sample_weight=weights,
            epochs=1,
            num_threads=config.num_threads,
        )
        epoch_seconds.append(time.perf_counter() - started)
        total = sum(epoch_seconds)
        # A line every few seconds and at the end: small fits stay quiet, large ones show their pace.
        if show_progress and (total - last_report >= 5.0 or epoch + 1 == config.epochs):
            last_report = total
            eta = total / (epoch + 1) * (config.epochs - epoch - 1)
            print(
                f"[{label}] epoch {epoch + 1}/{config.epochs}: {epoch_seconds[-1]:.1f}s "
                f"({weights.nnz:,} interactions, {config.num_threads} threads), eta {eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    item_biases, item_vectors = model.get_item_representations(item_features)
    return FittedModel(
        item_vectors=np.ascontiguousarray(item_vectors, dtype=np.float32),
        item_biases=np.ascontiguousarray(item_biases, dtype=np.float32),
        user_feature_vectors=np.ascontiguousarray(model.user_embeddings, dtype=np.float32),
        user_feature_biases=np.ascontiguousarray(model.user_biases, dtype=np.float32),
        epoch_seconds=epoch_seconds,
    )


def fit_arrays(
    interactions: sp.coo_matrix,
    users: FeatureSpace,
    items: FeatureSpace,
    purchases: Purchases,
    reorder_days: np.ndarray,
    config: TrainingConfig,
    *,
    show_progress: bool,
    label: str,
) -> ModelArrays:
    """Fit on the interactions and return the arrays scoring needs (see `recsvc.version.scoring`)."""
    user_known, item_known = interacted(interactions)
    fitted = fit(
        interactions,
        users.matrix(config.user_identity_weight, user_known),
        items.matrix(config.item_identity_weight, item_known),
        config,
        show_progress=show_progress,
        label=label,
    )
    return ModelArrays(
        item_vectors=fitted.item_vectors,
        item_biases=fitted.item_biases,
        user_feature_vectors=fitted.user_feature_vectors,
        user_feature_biases=fitted.user_feature_biases,
        customer_features=users.attribute_rows,
        purchases=purchases,
        item_reorder_days=reorder_days,
        identity_weight=config.user_identity_weight,
        has_identity=user_known,
    )
