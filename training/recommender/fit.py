"""Fits the hybrid LightFM model and exports the arrays the service scores with (`fit_arrays`).

lightfm is imported here and only here: the service never needs it.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsvc.version.scoring import ModelArrays, Purchases
from training.config import TrainingConfig
from training.recommender import ease, season
from training.recommender.dataset import FeatureSpace, interacted


@dataclass(frozen=True, slots=True)
class FittedModel:
    item_vectors: np.ndarray  # (n_items, k) float32
    item_biases: np.ndarray  # (n_items,) float32
    user_feature_vectors: np.ndarray  # (n_user_features, k) float32
    user_feature_biases: np.ndarray  # (n_user_features,) float32
    epoch_seconds: list[float]


class Trainer:
    """One LightFM model trained an epoch at a time, so that a search can score it between epochs
    (early stopping, successive halving) and a run can show its pace."""

    def __init__(
        self,
        interactions: sp.coo_matrix,
        user_features: sp.csr_matrix,
        item_features: sp.csr_matrix,
        config: TrainingConfig,
    ) -> None:
        from lightfm import LightFM

        self.config = config
        self.model = LightFM(
            no_components=config.components,
            loss=config.loss,
            learning_rate=config.learning_rate,
            item_alpha=config.item_alpha,
            user_alpha=config.user_alpha,
            max_sampled=config.max_sampled,
            random_state=np.random.RandomState(config.seed),
        )
        self.user_features = user_features
        self.item_features = item_features
        coo = interactions.tocoo()
        # LightFM's Cython code writes through its buffers: arrays borrowed from polars are read-only.
        row, col = np.array(coo.row, dtype=np.int32), np.array(coo.col, dtype=np.int32)
        data = np.array(coo.data, dtype=np.float32)
        # k-OS WARP takes no sample weights (LightFM raises): it learns from the pairs alone.
        weighted = config.weighted and config.loss != "warp-kos"
        self.weights: sp.coo_matrix | None = (
            sp.coo_matrix((data, (row, col)), shape=coo.shape) if weighted else None
        )
        # WARP and BPR learn from which pairs exist; the weight (when used) scales each pair's update.
        self.pairs = sp.coo_matrix((np.ones_like(data), (row, col)), shape=coo.shape)
        self.epoch_seconds: list[float] = []

    @property
    def epochs(self) -> int:
        return len(self.epoch_seconds)

    def advance(self, epochs: int = 1) -> None:
        for _ in range(epochs):
            started = time.perf_counter()
            self.model.fit_partial(
                self.pairs,
                user_features=self.user_features,
                item_features=self.item_features,
                sample_weight=self.weights,
                epochs=1,
                num_threads=self.config.num_threads,
            )
            self.epoch_seconds.append(time.perf_counter() - started)

    def item_representations(self) -> tuple[np.ndarray, np.ndarray]:
        """(biases, vectors) of every item, float32."""
        biases, vectors = self.model.get_item_representations(self.item_features)
        return (
            np.ascontiguousarray(biases, dtype=np.float32),
            np.ascontiguousarray(vectors, dtype=np.float32),
        )

    def user_vectors(self, users: np.ndarray) -> np.ndarray:
        """The representations of some users (rows of the user feature matrix), float32."""
        features = self.user_features[users]
        return np.asarray(features @ self.model.user_embeddings, dtype=np.float32)

    def fitted(self) -> FittedModel:
        item_biases, item_vectors = self.item_representations()
        return FittedModel(
            item_vectors=item_vectors,
            item_biases=item_biases,
            user_feature_vectors=np.ascontiguousarray(self.model.user_embeddings, dtype=np.float32),
            user_feature_biases=np.ascontiguousarray(self.model.user_biases, dtype=np.float32),
            epoch_seconds=self.epoch_seconds,
        )


def fit(
    interactions: sp.coo_matrix,
    user_features: sp.csr_matrix,
    item_features: sp.csr_matrix,
    config: TrainingConfig,
    *,
    show_progress: bool = True,
    label: str = "fit",
) -> FittedModel:
    trainer = Trainer(interactions, user_features, item_features, config)
    last_report = 0.0
    for epoch in range(config.epochs):
        trainer.advance()
        total = sum(trainer.epoch_seconds)
        # A line every few seconds and at the end: small fits stay quiet, large ones show their pace.
        if show_progress and (total - last_report >= 5.0 or epoch + 1 == config.epochs):
            last_report = total
            eta = total / (epoch + 1) * (config.epochs - epoch - 1)
            print(
                f"[{label}] epoch {epoch + 1}/{config.epochs}: {trainer.epoch_seconds[-1]:.1f}s "
                f"({interactions.nnz:,} interactions, {config.num_threads} threads), eta {eta:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    return trainer.fitted()


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
    off = config.features_off
    user_rows, item_rows = users.collapsed_rows(off), items.collapsed_rows(off)
    fitted = fit(
        interactions,
        users.matrix(config.user_identity_weight, user_known, off),
        items.matrix(config.item_identity_weight, item_known, off),
        config,
        show_progress=show_progress,
        label=label,
    )
    user_vectors, user_biases = fitted.user_feature_vectors, fitted.user_feature_biases
    item_vectors, item_biases = fitted.item_vectors, fitted.item_biases
    item_inputs = None
    if config.ranker == "blend":
        user_vectors, item_vectors, item_biases, item_inputs = _with_ease(
            interactions, user_vectors, item_vectors, item_biases, users.ids.size, config
        )
        user_biases = np.zeros(user_vectors.shape[0], dtype=np.float32)
    if config.user_identity_weight == 1.0:
        user_vectors, user_biases = attributes_from_members(
            user_vectors, user_biases, user_rows, user_known
        )
    if config.item_identity_weight == 1.0:
        item_vectors, item_biases = unknown_from_attributes(
            item_vectors, item_biases, item_rows, item_known
        )
    user_vectors, user_biases = tie_off_fields(
        user_vectors, user_biases, users.attribute_rows, user_rows
    )
    arrays = ModelArrays(
        item_vectors=item_vectors,
        item_biases=item_biases,
        user_feature_vectors=user_vectors,
        user_feature_biases=user_biases,
        customer_features=users.attribute_rows,
        purchases=purchases,
        item_reorder_days=reorder_days,
        identity_weight=config.user_identity_weight,
        has_identity=user_known,
        lightfm_dims=config.components if config.ranker == "blend" else 0,
        item_input_vectors=item_inputs,
    )
    if not config.prior_weight:
        return arrays
    prior = season.recent_popularity(purchases, items.ids.size)
    spread = ease.score_spread(
        season.customer_vectors(arrays, config.seed), item_vectors, item_biases, config.seed
    )
    biases = season.with_prior(item_biases, prior, config.prior_weight, spread)
    return dataclasses.replace(arrays, item_biases=biases)


def _with_ease(
    interactions: sp.coo_matrix,
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    item_biases: np.ndarray,
    n_customers: int,
    config: TrainingConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The purely collaborative LightFM arrays with EASE beside them (`ease.blend_vectors`):
    (user feature vectors, item vectors, item biases, item input vectors: EASE's L scaled as the
    customers' EASE columns, for carts). Attribute rows are left for `attributes_from_members`."""
    x = ease.binary(interactions)
    left, right = ease.factor(
        ease.ease_weights(ease.gram(x), config.ease_lambda), config.ease_rank, config.seed
    )
    ease_users = np.zeros((user_vectors.shape[0], left.shape[1]), dtype=np.float32)
    ease_users[:n_customers] = ease.customer_vectors(x, left)
    spreads = (
        ease.score_spread(user_vectors[:n_customers], item_vectors, item_biases, config.seed),
        ease.score_spread(ease_users[:n_customers], right, np.zeros(right.shape[0]), config.seed),
    )
    users, items, biases = ease.blend_vectors(
        (user_vectors, item_vectors, item_biases), (ease_users, right), config.blend_weight, spreads
    )
    inputs = (left * np.float32((1.0 - config.blend_weight) / spreads[1])).astype(np.float32)
    return users, items, biases, inputs


def _attribute_means(
    vectors: np.ndarray, biases: np.ndarray, attribute_rows: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per attribute feature column: the mean vector and bias of the known members that have it
    (columns no known member has get the mean of all known members). Returns (columns, vectors,
    biases) for the columns `attribute_rows` uses."""
    members = np.flatnonzero(known)
    columns = np.unique(attribute_rows)
    if not members.size:
        return (
            columns,
            np.zeros((columns.size, vectors.shape[1]), np.float32),
            np.zeros(columns.size, np.float32),
        )
    taken = attribute_rows[members].ravel()
    who = np.repeat(members, attribute_rows.shape[1])
    slot = np.searchsorted(columns, taken)
    count = np.bincount(slot, minlength=columns.size).astype(np.float64)
    sums = np.zeros((columns.size, vectors.shape[1]))
    np.add.at(sums, slot, vectors[who])
    bias_sums = np.bincount(slot, weights=biases[who], minlength=columns.size)
    empty = count == 0
    count[empty] = 1.0
    means, bias_means = sums / count[:, None], bias_sums / count
    means[empty] = vectors[members].mean(axis=0)
    bias_means[empty] = biases[members].mean()
    return columns, means.astype(np.float32), bias_means.astype(np.float32)


def tie_off_fields(
    vectors: np.ndarray, biases: np.ndarray, attribute_rows: np.ndarray, collapsed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every value of a field the fit left out gets the embedding its shared column learned
    (`FeatureSpace.collapsed_rows`), so a customer folded in by any value of it (stored or live)
    is scored as the fit saw them."""
    if collapsed is attribute_rows:
        return vectors, biases
    vectors, biases = vectors.copy(), biases.copy()
    vectors[attribute_rows.ravel()] = vectors[collapsed.ravel()]
    biases[attribute_rows.ravel()] = biases[collapsed.ravel()]
    return vectors, biases


def attributes_from_members(
    vectors: np.ndarray, biases: np.ndarray, attribute_rows: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A purely collaborative fit (identity weight 1) never trains the attribute rows: set each to
    the mean of the learned identities of the customers who have that attribute, so that a new
    customer folded in from attributes alone (`recsvc.version.scoring.user_vector`) is scored as
    the average of the customers like them, not from untrained noise."""
    columns, means, bias_means = _attribute_means(vectors, biases, attribute_rows, known)
    vectors, biases = vectors.copy(), biases.copy()
    vectors[columns], biases[columns] = means, bias_means
    return vectors, biases


def unknown_from_attributes(
    vectors: np.ndarray, biases: np.ndarray, attribute_rows: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The item side of `attributes_from_members`: a product nobody bought in a purely
    collaborative fit gets the mean, over its attributes, of the bought products that share each
    one, so it can still be ranked and found similar through its features."""
    columns, means, bias_means = _attribute_means(vectors, biases, attribute_rows, known)
    unknown = np.flatnonzero(~known)
    if not unknown.size:
        return vectors, biases
    slots = np.searchsorted(columns, attribute_rows[unknown])
    vectors, biases = vectors.copy(), biases.copy()
    vectors[unknown] = means[slots].mean(axis=1)
    biases[unknown] = bias_means[slots].mean(axis=1)
    return vectors, biases
