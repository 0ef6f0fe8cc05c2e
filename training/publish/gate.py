"""The quality gate: a new version is published only if it ranks about as well as the active one.

Both models are scored on the same customers and the same truth: the held-out purchases (after the
cut-off, or each customer's last orders) after the last day the active model was fitted on, so
neither has seen them. When too few customers have such purchases (the active model saw the whole
hold-out, as it often does with last-orders), the active model's recorded NDCG is used, unless
it was measured on the other split: then the two numbers are not comparable and the gate passes.

Noise does not refuse a model: it is refused only when it is worse by more than the tolerance AND
the 95% interval of the difference lies wholly below zero (the paired bootstrap over the same
customers; with a recorded NDCG, the new model's own interval against that number).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from recsvc.store.runs import GateDecision
from recsvc.version.artifacts import LoadedModel
from recsvc.version.scoring import ModelArrays, Purchases, known_customer_vector, user_vector
from training.config import TrainingConfig
from training.recommender import dataset as ds
from training.recommender.evaluate import (
    EvaluationReport,
    new_items_ndcg_per_user,
    sample_users,
)
from training.recommender.metrics import paired_difference_interval

# Fewer customers than this in the unseen window: compare with the active model's recorded NDCG.
MIN_COMPARED = 50


def quality_gate(
    *,
    new: ModelArrays,
    active: LoadedModel | None,
    users: ds.FeatureSpace,
    item_ids: np.ndarray,
    held_out: pl.DataFrame,
    train: Purchases,
    evaluation: EvaluationReport,
    config: TrainingConfig,
    force: bool,
) -> GateDecision:
    """Publish unless NDCG@k is worse than the active model's by more than the tolerance, beyond
    the noise (`worse_beyond_noise`). `held_out` are the hold-out's test lines, `train` the
    purchases the new model was fitted on."""
    new_ndcg = evaluation.ndcg
    split = evaluation.split.kind if evaluation.split is not None else None
    if active is None:
        return GateDecision(True, "no active model", new_ndcg, split=split)
    window = held_out.filter(pl.col("day") > active.manifest.trained_until_day)
    test = ds.purchases(window, len(users.ids))
    sample = sample_users(train, test, config.max_eval_users, config.seed)
    if sample.size >= MIN_COMPARED:
        bought = [train.items[train.row(u)] for u in sample]
        truth = [test.items[test.row(u)] for u in sample]
        new_vectors = np.stack([known_customer_vector(new, int(u))[0] for u in sample])
        new_scores = new_items_ndcg_per_user(
            new.item_vectors, new.item_biases, new_vectors, bought, truth, config.k
        )
        old_items, old_biases, old_vectors = _active_model_vectors(active, users, sample, item_ids)
        active_scores = new_items_ndcg_per_user(
            old_items, old_biases, old_vectors, bought, truth, config.k
        )
        new_ndcg = float(new_scores.mean()) if new_scores.size else 0.0
        active_ndcg = float(active_scores.mean()) if active_scores.size else 0.0
        low, high = paired_difference_interval(new_scores, active_scores)
        difference: tuple[float | None, float | None] = (
            (None, None) if math.isnan(low) else (low, high)
        )
        comparison, compared = "same split", int(sample.size)
        active_split = None
    else:
        recorded = active.manifest.metrics.get("ndcg")
        if recorded is None:
            return GateDecision(
                True,
                "active model has no recorded NDCG",
                new_ndcg,
                active.manifest.version,
                split=split,
            )
        active_ndcg, comparison, compared = float(recorded), "recorded", 0
        # Versions from before the last-orders split record none: they were all time-based.
        active_split = str(active.manifest.metrics.get("split", "time"))
        if split is not None and split != active_split:
            # A month's purchases and a last basket are different questions: their NDCGs differ
            # on the same model (a switch would refuse a model as good as the active one).
            return GateDecision(
                True,
                f"passed: NDCG@{config.k} {new_ndcg:.4f} on the {_split_name(split)} and the "
                f"active model's {active_ndcg:.4f} on the {_split_name(active_split)} are not "
                "comparable, and too few customers bought after the active model's data to "
                "score both (not comparable)",
                new_ndcg,
                active.manifest.version,
                active_ndcg,
                "not comparable",
                0,
                split=split,
                active_split=active_split,
            )
        own_low, own_high = (
            evaluation.new_items["model"].ndcg_low,
            evaluation.new_items["model"].ndcg_high,
        )
        difference = (
            (own_low - active_ndcg, own_high - active_ndcg)
            if own_low is not None and own_high is not None and not math.isnan(own_low)
            else (None, None)
        )
    worse = worse_beyond_noise(
        new_ndcg - active_ndcg, difference[1], tolerance=config.gate_tolerance
    )
    reason = _reason(new_ndcg, active_ndcg, comparison, worse=worse, force=force, config=config)
    if difference[0] is not None and difference[1] is not None:
        reason += f"; new - active 95% interval {difference[0]:+.4f} to {difference[1]:+.4f}"
        if not worse and new_ndcg - active_ndcg < -config.gate_tolerance:
            reason += " (reaches 0: within the noise)"
    if split == "last_orders":
        reason += f"; on the {_split_name(split)}"
    return GateDecision(
        not worse or force,
        reason,
        new_ndcg,
        active.manifest.version,
        active_ndcg,
        comparison,
        compared,
        difference[0],
        difference[1],
        split,
        active_split,
    )


def worse_beyond_noise(difference: float, high: float | None, *, tolerance: float) -> bool:
    """Refuse when the new model is worse than the active one by more than `tolerance` and the
    95% interval of the difference (`high`: its upper end) stays below zero; without an interval,
    by the point difference alone."""
    if difference >= -tolerance:
        return False
    return high is None or high < 0


def _split_name(kind: str) -> str:
    return {"time": "time split", "last_orders": "last-orders split"}.get(kind, kind)


def _reason(
    new_ndcg: float,
    active_ndcg: float,
    comparison: str,
    *,
    worse: bool,
    force: bool,
    config: TrainingConfig,
) -> str:
    if worse and not force:
        return (
            f"refused: NDCG@{config.k} {new_ndcg:.4f} is worse than the active model's {active_ndcg:.4f} "
            f"by more than the tolerance {config.gate_tolerance} ({comparison})"
        )
    verdict = "forced" if worse else "passed"
    return f"{verdict}: NDCG@{config.k} {new_ndcg:.4f} vs active {active_ndcg:.4f} ({comparison})"


def _active_model_vectors(
    active: LoadedModel, users: ds.FeatureSpace, sample: np.ndarray, item_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The active model's item and user vectors re-indexed to this run's ids (for the gate).

    Products the active model does not know can never be recommended by it (bias -inf); customers it
    does not know are folded in from their current attributes, as the service would.
    """
    old = active.arrays
    item_vectors = np.zeros((item_ids.size, old.item_vectors.shape[1]), dtype=np.float32)
    item_biases = np.full(item_ids.size, -np.inf, dtype=np.float32)
    for new_index, product_id in enumerate(item_ids):
        old_index = active.item_index(str(product_id))
        if old_index is not None:
            item_vectors[new_index] = old.item_vectors[old_index]
            item_biases[new_index] = old.item_biases[old_index]
    vectors = []
    for u in sample:
        old_index = active.customer_index(str(users.ids[u]))
        if old_index is not None:
            vectors.append(known_customer_vector(old, old_index)[0])
        else:
            names = [users.attribute_names[row - users.ids.size] for row in users.attribute_rows[u]]
            rows = [active.user_feature_index[n] for n in names if n in active.user_feature_index]
            vectors.append(user_vector(old, None, rows)[0])
    return (
        item_vectors,
        item_biases,
        np.stack(vectors) if vectors else np.zeros((0, item_vectors.shape[1])),
    )
