"""One version's artifact, written into the run directory: arrays, lists, serving tables, manifest.

The format is `recsvc.version`'s (the service reads it); this module fills it from a run's model,
feature spaces, customer table, segment rules, NPS answers and order history. The segment table and the NPS
report are already in the directory (the run's segments and report steps wrote them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.features import ITEM_FIELDS, MISSING, USER_FIELDS
from recsvc.domain.segments.catalog import SegmentRules, rules_to_toml
from recsvc.version.artifacts import (
    FORMAT_VERSION,
    MANIFEST,
    SEGMENT_RULES_FILE,
    Manifest,
    encode,
    file_entries,
    sha256_of,
)
from recsvc.version.erased import erasures_note
from recsvc.version.neighbours import SimilarLists
from recsvc.version.scoring import Candidates, ModelArrays
from training.config import TrainingConfig
from training.publish.orders import OrderHistoryData, write_order_history
from training.publish.profiles import write_serving_tables
from training.publish.responses import write_response_table
from training.recommender.candidates import candidate_arrays
from training.recommender.dataset import FeatureSpace, TrainingPurchases
from training.recommender.evaluate import EvaluationReport
from training.recommender.similar import similar_arrays


def data_fingerprint(data_dir: Path) -> str:
    """SHA-256 over the input files' names and contents: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(
        p for p in data_dir.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
    ):
        digest.update(path.name.encode())
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()


def version_name(run_id: str, fingerprint: str, config: TrainingConfig) -> str:
    """The run id and 8 hex digits of the data fingerprint and the config."""
    digest = hashlib.sha256((fingerprint + msgspec.json.encode(config).decode()).encode())
    return f"{run_id}-{digest.hexdigest()[:8]}"


@dataclass(frozen=True, slots=True)
class ServedModel:
    """The model a version serves, with the id maps and features it was fitted with."""

    arrays: ModelArrays
    users: FeatureSpace
    items: FeatureSpace
    products: pl.DataFrame  # the products table with each product's price band
    price_edges: list[float]
    popularity: np.ndarray  # float32 (n_items,)
    trained_until_day: int
    candidates: Candidates | None = None
    similar: SimilarLists | None = None


def write_artifact(
    directory: Path,
    *,
    version: str,
    model: ServedModel,
    evaluation: EvaluationReport,
    config: TrainingConfig,
    fingerprint: str,
    customer_table: pl.DataFrame,
    rules: SegmentRules,
    nps_responses: pl.LazyFrame,
    order_history: OrderHistoryData,
    erasures_as_of: dt.datetime,
) -> Manifest:
    """Write the arrays, lists, serving tables and manifest of one version into `directory`
    (already holding the segment table and report), built from data without the rows the store's
    suppression list suppressed as of `erasures_as_of`."""
    directory.mkdir(parents=True, exist_ok=True)
    write_serving_tables(customer_table, model.users.ids, rules, directory)
    write_response_table(nps_responses, customer_table, model.users.ids, directory)
    write_order_history(directory, order_history)
    (directory / SEGMENT_RULES_FILE).write_text(rules_to_toml(rules))
    arrays, categories = _arrays(model, evaluation.blend.decay)
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
    (directory / "categories.json").write_bytes(encode(categories))
    (directory / "user_feature_names.json").write_bytes(encode(model.users.attribute_names))
    (directory / "evaluation.json").write_bytes(encode(evaluation))
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        version=version,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        trained_until_day=model.trained_until_day,
        n_customers=int(model.users.ids.size),
        n_items=int(model.items.ids.size),
        components=int(model.arrays.item_vectors.shape[1]),
        lightfm_components=model.arrays.lightfm_dims,
        cart_alike_weight=evaluation.cart.weight if evaluation.cart is not None else 0.0,
        alike_buyer_power=evaluation.alike.buyer_power if evaluation.alike is not None else 0.0,
        alike_trend_weight=evaluation.alike.trend_weight if evaluation.alike is not None else 0.0,
        identity_weight=config.user_identity_weight,
        user_fields=list(USER_FIELDS),
        item_fields=list(ITEM_FIELDS),
        price_edges=model.price_edges,
        blend=evaluation.blend,
        data_fingerprint=fingerprint,
        config=msgspec.to_builtins(config),
        metrics={
            "ndcg": evaluation.ndcg,
            **_interval_of(evaluation),
            "lift_over_popularity": evaluation.lift_over_popularity,
            # The gate compares a later run's NDCG with this one: on which split it was measured.
            **({"split": evaluation.split.kind} if evaluation.split is not None else {}),
        },
        files=file_entries(directory),
        notes=erasures_note(erasures_as_of),
    )
    (directory / MANIFEST).write_bytes(msgspec.json.format(encode(manifest)))
    return manifest


def _arrays(model: ServedModel, decay: float) -> tuple[dict[str, np.ndarray], list[str]]:
    """The version's arrays by file name, and the category names behind `item_category`; the
    purchases' recency weights at `decay`, the one the evaluation tuned the blend with, and the
    products' repeat rates."""
    items = pl.DataFrame({c.PRODUCT_ID: model.items.ids}).join(
        model.products, on=c.PRODUCT_ID, how="left"
    )
    categories = sorted(items[c.CATEGORY].fill_null(MISSING).unique().to_list())
    category_index = {name: i for i, name in enumerate(categories)}
    fitted, purchases = model.arrays, model.arrays.purchases
    arrays = {
        "item_ids": model.items.ids,
        "item_vectors": fitted.item_vectors,
        "item_biases": fitted.item_biases,
        "item_category": items[c.CATEGORY]
        .fill_null(MISSING)
        .replace_strict(category_index)
        .to_numpy()
        .astype(np.int32),
        "item_in_stock": items[c.IN_STOCK].fill_null(True).to_numpy().astype(bool),
        "item_price": items[c.PRICE].fill_null(np.nan).to_numpy().astype(np.float32),
        "item_reorder_days": fitted.item_reorder_days,
        "item_popularity": model.popularity.astype(np.float32),
        "customer_ids": model.users.ids,
        "customer_features": fitted.customer_features,
        "customer_has_identity": fitted.has_identity,
        "user_feature_vectors": fitted.user_feature_vectors,
        "user_feature_biases": fitted.user_feature_biases,
        "purchases_indptr": purchases.indptr,
        "purchases_items": purchases.items,
        "purchases_counts": purchases.counts,
        "purchases_last_day": purchases.last_day,
    }
    if isinstance(purchases, TrainingPurchases):  # always, from a run
        arrays["purchases_recency_weighted"] = purchases.weights(decay)
        arrays["item_repeat_rate"] = purchases.repeat_rate(int(model.items.ids.size))
    if model.candidates is not None:
        arrays |= candidate_arrays(model.candidates)
    if model.similar is not None:
        arrays |= similar_arrays(model.similar)
    if fitted.item_input_vectors is not None:
        arrays["item_input_vectors"] = fitted.item_input_vectors
    return arrays, categories


def _interval_of(evaluation: EvaluationReport) -> dict[str, float]:
    """The model's NDCG interval, when the evaluation has one (it does unless nobody was scored)."""
    model = evaluation.new_items["model"]
    if model.ndcg_low is None or model.ndcg_high is None or math.isnan(model.ndcg_low):
        return {}
    return {"ndcg_low": model.ndcg_low, "ndcg_high": model.ndcg_high}
