"""Tiny hand-built artifact directories for tests that need a model version without a training run.

`make_artifact(dir, "v1")` writes every array of `recsvc.version.artifacts.ARRAYS` with the right dtype and
shape, the two string lists, the profile, segment and NPS answer tables (by the training job's own
writers, on a tiny customer table), the segment rules and a manifest listing each file's size and
SHA-256: a version a worker opens and serves. Values are seeded by the version name, so two
versions differ.
"""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.features import ITEM_FIELDS, USER_FIELDS, feature_name
from recsvc.domain.segments.catalog import load_segments, rules_to_toml
from recsvc.version.artifacts import (
    ARRAYS,
    FORMAT_VERSION,
    MANIFEST,
    SEGMENT_RULES_FILE,
    FileEntry,
    Manifest,
    file_entries,
)
from recsvc.version.scoring import BlendParams
from training.publish.profiles import write_serving_tables
from training.publish.responses import write_response_table
from training.recommender.candidates import add_to_artifact

COMPONENTS = 4


def make_artifact(
    directory: Path,
    version: str,
    n_customers: int = 3,
    n_items: int = 4,
    *,
    ndcg: float | None = 0.25,
    extra_bytes: int = 0,
    candidates: int = 3,
    categories: list[str] | None = None,
    recency_weighted: np.ndarray | None = None,
    repeat_rate: np.ndarray | None = None,
    blend: BlendParams | None = None,
) -> Path:
    """Write a loadable artifact for `version` into `directory` (created) and return `directory`.

    `candidates` is the length of each customer's stored candidate list, computed from the arrays
    by the training job's own code (0: a version without lists, served by scoring every request).
    `extra_bytes` adds a `padding.bin` of that many random bytes (listed in the manifest), to make
    a version span several upload chunks or weigh as much as a real one. `categories`: each
    customer's NPS category, so their segments (default: promoter, passive, detractor in turn).
    `recency_weighted`: the purchases' recency-weighted frequencies, one per purchase, and
    `repeat_rate`: the products' repeat rates (default: none, a version written before them);
    `blend`: the manifest's buy-again blend.
    """
    rng = np.random.default_rng(zlib.crc32(version.encode()))
    directory.mkdir(parents=True, exist_ok=True)
    # Two values per user field; customer i takes value i % 2 of each field.
    feature_names = [feature_name(field, value) for field in USER_FIELDS for value in ("a", "b")]
    n_features = n_customers + len(feature_names)
    customer_features = np.array(
        [
            [n_customers + 2 * j + i % 2 for j in range(len(USER_FIELDS))]
            for i in range(n_customers)
        ],
        dtype=np.int32,
    ).reshape(n_customers, len(USER_FIELDS))
    bought = [
        sorted({int(k) for k in rng.integers(0, n_items, size=2)}) for _ in range(n_customers)
    ]
    indptr = np.cumsum([0, *(len(items) for items in bought)], dtype=np.int64)
    n_lines = int(indptr[-1])
    arrays: dict[str, np.ndarray] = {
        "item_ids": np.array([f"p{i:03d}" for i in range(n_items)]),
        "item_vectors": rng.normal(size=(n_items, COMPONENTS)).astype(np.float32),
        "item_biases": rng.normal(size=n_items).astype(np.float32),
        "item_category": (np.arange(n_items) % 2).astype(np.int32),
        "item_in_stock": np.ones(n_items, dtype=bool),
        "item_price": rng.uniform(5, 50, size=n_items).astype(np.float32),
        "item_reorder_days": np.full(n_items, np.nan, dtype=np.float32),
        "item_popularity": rng.uniform(size=n_items).astype(np.float32),
        "customer_ids": np.array([f"c{i:03d}" for i in range(n_customers)]),
        "customer_features": customer_features,
        "customer_has_identity": np.ones(n_customers, dtype=bool),
        "user_feature_vectors": rng.normal(size=(n_features, COMPONENTS)).astype(np.float32),
        "user_feature_biases": rng.normal(size=n_features).astype(np.float32),
        "purchases_indptr": indptr,
        "purchases_items": np.array([k for items in bought for k in items], dtype=np.int32),
        "purchases_counts": np.ones(n_lines, dtype=np.int32),
        "purchases_last_day": np.full(n_lines, 19_800, dtype=np.int32),
    }
    assert set(arrays) == set(ARRAYS), "the artifact format changed: update make_artifact"
    if recency_weighted is not None:
        arrays["purchases_recency_weighted"] = np.asarray(recency_weighted, dtype=np.float32)
    if repeat_rate is not None:
        arrays["item_repeat_rate"] = np.asarray(repeat_rate, dtype=np.float32)
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", array, allow_pickle=False)
    (directory / "categories.json").write_bytes(msgspec.json.encode(["books", "garden"]))
    (directory / "user_feature_names.json").write_bytes(msgspec.json.encode(feature_names))
    _serving_tables(directory, arrays["customer_ids"], categories)
    if extra_bytes:
        (directory / "padding.bin").write_bytes(rng.bytes(extra_bytes))
    manifest = _manifest(version, n_customers, n_items, ndcg, file_entries(directory), blend)
    (directory / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
    if candidates:
        add_to_artifact(directory, candidates, show_progress=False)
    return directory


def _serving_tables(
    directory: Path, customer_ids: np.ndarray, categories: list[str] | None = None
) -> None:
    """Profiles, segment lists, NPS answers and rules for the customers, as training writes them."""
    rules = load_segments(())
    n = customer_ids.size
    cycle = ["promoter", "passive", "detractor"]
    chosen = categories or [cycle[i % 3] for i in range(n)]
    assert len(chosen) == n, "one NPS category per customer"
    customers = pl.DataFrame(
        {
            c.CUSTOMER_ID: customer_ids.tolist(),
            c.COUNTRY: ["DE"] * n,
            ct.NPS_SCORE: [10 - 4 * cycle.index(category) for category in chosen],
            ct.NPS_CATEGORY: chosen,
        }
    )
    customers = customers.with_columns(
        pl.Series(ct.SEGMENTS, [rules.memberships(r) for r in customers.to_dicts()])
    ).with_columns(pl.col(ct.SEGMENTS).list.first().alias(ct.PRIMARY_SEGMENT))
    answers = pl.DataFrame(
        {
            c.RESPONSE_ID: [f"r{i}" for i in range(n)],
            c.CUSTOMER_ID: customer_ids.tolist(),
            c.SCORE: customers[ct.NPS_SCORE],
            c.RESPONDED_AT: [dt.datetime(2024, 5, 1, 12)] * n,
            c.TOUCHPOINT: ["relationship"] * n,
        }
    )
    write_serving_tables(customers, customer_ids, rules, directory)
    write_response_table(answers, customers, customer_ids, directory)
    (directory / SEGMENT_RULES_FILE).write_text(rules_to_toml(rules))


def _manifest(
    version: str,
    n_customers: int,
    n_items: int,
    ndcg: float | None,
    files: dict[str, FileEntry],
    blend: BlendParams | None = None,
) -> Manifest:
    return Manifest(
        format_version=FORMAT_VERSION,
        version=version,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        trained_until_day=19_800,
        n_customers=n_customers,
        n_items=n_items,
        components=COMPONENTS,
        identity_weight=0.5,
        user_fields=list(USER_FIELDS),
        item_fields=list(ITEM_FIELDS),
        price_edges=[10.0, 20.0, 30.0, 40.0],
        blend=blend or BlendParams(),
        data_fingerprint=f"test-{version}",
        config={},
        metrics={} if ndcg is None else {"ndcg": ndcg},
        files=files,
    )


def trained_version(root: Path, seed: int) -> Path:
    """A real training run's published version on a small generated shop of 1,500 customers
    (the configured settings, no search, 5 epochs), under `root`: its directory."""
    from training.config import load_config
    from training.run.pipeline import run_pipeline
    from training.sources.generate import generate

    generate(root / "data", 1_500, seed=seed, show_progress=False)
    record = run_pipeline(
        root / "data",
        store=f"file://{root / 'store'}",
        config=load_config(search_trials=0, epochs=5, max_eval_users=600),
        runs_dir=root / "runs",
        show_progress=False,
        force=True,
    )
    assert record.version is not None, record.error
    return root / "store" / "versions" / str(record.version)
