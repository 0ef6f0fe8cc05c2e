"""The training run: validate, segment and report, evaluate on a hold-out, fit, gate, publish.

A run holds the store's training lock from start to end (a second run fails with `LockHeld`), adds
the live NPS responses the service took in to the validated data (see `training.run.live`), and works
in a run directory (`var/runs/<run id>/`); only the final publish touches the store's versions, and
it does so atomically (see `recsvc.store`), so a run killed at any point leaves the active version
serving. First it moves the live responses the active version holds to the store's archive. The run
record lists each step's duration, the row counts, the live responses, the metrics, the gate
decision and the published version or the error; it is saved in the run directory and in the
store's run log, at the start and at the end, and a copy is sealed into the artifact (`run.json`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import times
from recsvc.domain.customer_table import NPS_CATEGORY, PRIMARY_SEGMENT
from recsvc.domain.features import ITEM_FIELDS, MISSING, USER_FIELDS
from recsvc.domain.segment_rules import SegmentRules, load_segments, rules_to_toml
from recsvc.errors import ArtifactError, NotFoundError, RecsvcError
from recsvc.store import Store, open_store
from recsvc.store.locks import DEFAULT_LOCK_TTL_SECONDS, TrainingLock
from recsvc.store.runs import RunLog
from recsvc.version.artifacts import (
    FORMAT_VERSION,
    MANIFEST,
    SEGMENT_RULES_FILE,
    LoadedModel,
    Manifest,
    encode,
    file_entries,
    sha256_of,
)
from recsvc.version.opened import ActiveModel
from recsvc.version.scoring import Candidates, ModelArrays, known_customer_vector, user_vector
from training.config import TrainingConfig, load_config
from training.customers.features import (
    SegmentationConfig,
    build_customer_table,
    extra_attribute_columns,
)
from training.customers.segmentation import read_clean_tables, run_segmentation
from training.publish.profiles import write_serving_tables
from training.publish.responses import write_response_table
from training.recommender import dataset as ds
from training.recommender.candidates import candidate_arrays, serving_candidates
from training.recommender.evaluate import (
    EvaluationReport,
    evaluate,
    format_evaluation,
    frame_column,
    new_items_ndcg,
    sample_users,
)
from training.recommender.fit import fit
from training.run.live import compact_held_responses, merge_live_responses, read_live_responses
from training.run.records import (
    RUN_ID_FORMAT,
    RUN_RECORD,
    GateDecision,
    RunRecord,
    close_interrupted,
    encode_record,
    last_success,
    read_records,
    save_record,
)
from training.run.workdirs import clean_run_dirs, run_dir_claim
from training.validate.dataset import validate_dataset

T = TypeVar("T")


def _log(message: str, show: bool) -> None:
    if show:
        print(f"[run] {message}", file=sys.stderr, flush=True)


@contextmanager
def _step(record: RunRecord, name: str, show: bool) -> Iterator[None]:
    _log(f"{name} ...", show)
    started = time.perf_counter()
    yield
    record.steps[name] = round(time.perf_counter() - started, 3)
    _log(f"{name} done in {record.steps[name]:.1f}s", show)


def _timed(record: RunRecord, name: str, show: bool, fn: Callable[[], T]) -> T:
    with _step(record, name, show):
        return fn()


def data_fingerprint(data_dir: Path) -> str:
    """SHA-256 over the input files' names and contents: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(
        p for p in data_dir.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
    ):
        digest.update(path.name.encode())
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()


def _before(tables: dict[str, pl.LazyFrame], cutoff: dt.datetime) -> dict[str, pl.LazyFrame]:
    """The tables as they stood at the cut-off: later orders and survey answers removed."""
    out = dict(tables)
    out[c.ORDERS] = tables[c.ORDERS].filter(pl.col(c.ORDERED_AT) < cutoff)
    for name in (c.NPS_RESPONSES, c.CSAT_RESPONSES, c.CES_RESPONSES):
        if name in tables:
            out[name] = tables[name].filter(pl.col(c.RESPONDED_AT) < cutoff)
    return out


def _fit_model(
    interactions: Any,
    users: ds.FeatureSpace,
    items: ds.FeatureSpace,
    purchases: Any,
    reorder: np.ndarray,
    config: TrainingConfig,
    *,
    show: bool,
    label: str,
) -> ModelArrays:
    """Fit on the interactions and return the arrays scoring needs (see `recsvc.version.scoring`)."""
    user_known, item_known = ds.interacted(interactions)
    fitted = fit(
        interactions,
        users.matrix(config.user_identity_weight, user_known),
        items.matrix(config.item_identity_weight, item_known),
        config,
        show_progress=show,
        label=label,
    )
    return ModelArrays(
        item_vectors=fitted.item_vectors,
        item_biases=fitted.item_biases,
        user_feature_vectors=fitted.user_feature_vectors,
        user_feature_biases=fitted.user_feature_biases,
        customer_features=users.attribute_rows,
        purchases=purchases,
        item_reorder_days=reorder,
        identity_weight=config.user_identity_weight,
        has_identity=user_known,
    )


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


def quality_gate(
    *,
    new: ModelArrays,
    active: LoadedModel | None,
    users: ds.FeatureSpace,
    item_ids: np.ndarray,
    lines: pl.DataFrame,
    train: Any,
    cutoff_day: int,
    evaluation: EvaluationReport,
    config: TrainingConfig,
    force: bool,
) -> GateDecision:
    """Publish only if NDCG@k is not worse than the active model's by more than the tolerance.

    Both models are scored on the same customers and the same truth: purchases after the cut-off
    and after the last day the active model was fitted on, so neither has seen them. When no such
    days exist (the active model saw the whole hold-out), the active model's recorded NDCG is used.
    """
    new_ndcg = evaluation.ndcg
    if active is None:
        return GateDecision(True, "no active model", new_ndcg)
    start = max(cutoff_day, active.manifest.trained_until_day + 1)
    window = lines.filter(pl.col("day") >= start)
    test = ds.purchases(window, len(users.ids))
    sample = sample_users(train, test, config.max_eval_users, config.seed)
    if sample.size >= 50:
        bought = [train.items[train.row(u)] for u in sample]
        truth = [test.items[test.row(u)] for u in sample]
        new_vectors = np.stack([known_customer_vector(new, int(u))[0] for u in sample])
        new_ndcg = new_items_ndcg(
            new.item_vectors, new.item_biases, new_vectors, bought, truth, config.k
        ).ndcg
        old_items, old_biases, old_vectors = _active_model_vectors(active, users, sample, item_ids)
        active_ndcg = new_items_ndcg(
            old_items, old_biases, old_vectors, bought, truth, config.k
        ).ndcg
        comparison = "same split"
    else:
        recorded = active.manifest.metrics.get("ndcg")
        if recorded is None:
            return GateDecision(
                True, "active model has no recorded NDCG", new_ndcg, active.manifest.version
            )
        active_ndcg, comparison = float(recorded), "recorded"
    worse = new_ndcg < active_ndcg - config.gate_tolerance
    if worse and not force:
        reason = (
            f"refused: NDCG@{config.k} {new_ndcg:.4f} is worse than the active model's {active_ndcg:.4f} "
            f"by more than the tolerance {config.gate_tolerance} ({comparison})"
        )
    elif worse:
        reason = (
            f"forced: NDCG@{config.k} {new_ndcg:.4f} vs active {active_ndcg:.4f} ({comparison})"
        )
    else:
        reason = (
            f"passed: NDCG@{config.k} {new_ndcg:.4f} vs active {active_ndcg:.4f} ({comparison})"
        )
    return GateDecision(
        not worse or force, reason, new_ndcg, active.manifest.version, active_ndcg, comparison
    )


def _save(directory: Path, name: str, array: np.ndarray) -> None:
    np.save(directory / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)


def write_artifact(
    directory: Path,
    *,
    version: str,
    model: ModelArrays,
    users: ds.FeatureSpace,
    products: pl.DataFrame,
    items: ds.FeatureSpace,
    popularity: np.ndarray,
    edges: list[float],
    evaluation: EvaluationReport,
    config: TrainingConfig,
    fingerprint: str,
    trained_until_day: int,
    customer_table: pl.DataFrame,
    rules: SegmentRules,
    nps_responses: pl.LazyFrame,
    candidates: Candidates | None = None,
) -> Manifest:
    """Write the arrays, lists, serving tables and manifest of one version into `directory`
    (already holding the segment table and report)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_serving_tables(customer_table, users.ids, rules, directory)
    write_response_table(nps_responses, customer_table, users.ids, directory)
    (directory / SEGMENT_RULES_FILE).write_text(rules_to_toml(rules))
    aligned = pl.DataFrame({c.PRODUCT_ID: items.ids}).join(products, on=c.PRODUCT_ID, how="left")
    categories = sorted(aligned[c.CATEGORY].fill_null(MISSING).unique().to_list())
    category_index = {name: i for i, name in enumerate(categories)}
    p = model.purchases
    arrays = {
        "item_ids": items.ids,
        "item_vectors": model.item_vectors,
        "item_biases": model.item_biases,
        "item_category": aligned[c.CATEGORY]
        .fill_null(MISSING)
        .replace_strict(category_index)
        .to_numpy()
        .astype(np.int32),
        "item_in_stock": aligned[c.IN_STOCK].fill_null(True).to_numpy().astype(bool),
        "item_price": aligned[c.PRICE].fill_null(np.nan).to_numpy().astype(np.float32),
        "item_reorder_days": model.item_reorder_days,
        "item_popularity": popularity.astype(np.float32),
        "customer_ids": users.ids,
        "customer_features": model.customer_features,
        "customer_has_identity": model.has_identity,
        "user_feature_vectors": model.user_feature_vectors,
        "user_feature_biases": model.user_feature_biases,
        "purchases_indptr": p.indptr,
        "purchases_items": p.items,
        "purchases_counts": p.counts,
        "purchases_last_day": p.last_day,
    }
    if candidates is not None:
        arrays |= candidate_arrays(candidates)
    for name, array in arrays.items():
        _save(directory, name, array)
    (directory / "categories.json").write_bytes(encode(categories))
    (directory / "user_feature_names.json").write_bytes(encode(users.attribute_names))
    (directory / "evaluation.json").write_bytes(encode(evaluation))
    files = file_entries(directory)
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        version=version,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        trained_until_day=trained_until_day,
        n_customers=int(users.ids.size),
        n_items=int(items.ids.size),
        components=config.components,
        identity_weight=config.user_identity_weight,
        user_fields=list(USER_FIELDS),
        item_fields=list(ITEM_FIELDS),
        price_edges=edges,
        blend=evaluation.blend,
        data_fingerprint=fingerprint,
        config=msgspec.to_builtins(config),
        metrics={"ndcg": evaluation.ndcg, "lift_over_popularity": evaluation.lift_over_popularity},
        files=files,
    )
    (directory / MANIFEST).write_bytes(msgspec.json.format(encode(manifest)))
    return manifest


def run_pipeline(
    data_dir: Path,
    *,
    store: str = "file://./var/store",
    config: TrainingConfig | None = None,
    config_path: Path | None = None,
    segments_files: tuple[Path, ...] = (),
    max_rejected_share: float = 0.05,
    publish: bool = True,
    force: bool = False,
    runs_dir: Path = Path("var/runs"),
    show_progress: bool = True,
    lock_ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS,
) -> RunRecord:
    """One training run under the store's lock. Returns the record of a run that finished (status
    published or not_published); a run that fails saves its record as failed and re-raises."""
    config = config or load_config(config_path)
    target = open_store(store)  # a bad store URL fails before any work
    try:
        with target.training_lock(ttl_seconds=lock_ttl_seconds) as lock:
            return _locked_run(
                data_dir,
                target=target,
                lock=lock,
                run_log=target.run_log(),
                config=config,
                segments_files=segments_files,
                max_rejected_share=max_rejected_share,
                publish=publish,
                force=force,
                runs_dir=runs_dir,
                show=show_progress,
            )
    finally:
        target.close()


def _locked_run(
    data_dir: Path,
    *,
    target: Store,
    lock: TrainingLock,
    run_log: RunLog,
    config: TrainingConfig,
    segments_files: tuple[Path, ...],
    max_rejected_share: float,
    publish: bool,
    force: bool,
    runs_dir: Path,
    show: bool,
) -> RunRecord:
    # We hold the lock: no other run of this store is alive, so what a dead one left can go.
    for run_id in close_interrupted(run_log):
        _log(f"run {run_id} was interrupted; marked as such", show)
    clean_run_dirs(runs_dir)
    previous = last_success(run_log)
    taken = {r.run_id for r in read_records(run_log)}
    started = dt.datetime.now(dt.UTC)
    # Run ids, and the versions named after them, are start seconds: a run starting in the same
    # second as an earlier one (a quick failure, a crash loop) waits for the next second.
    while (
        started.strftime(RUN_ID_FORMAT) in taken
        or (runs_dir / started.strftime(RUN_ID_FORMAT)).exists()
    ):
        time.sleep(1.001 - started.microsecond / 1e6)
        started = dt.datetime.now(dt.UTC)
    run_id = started.strftime(RUN_ID_FORMAT)
    work = runs_dir / run_id
    record = RunRecord(
        run_id=run_id,
        data_dir=str(data_dir),
        store=target.url,
        started_at=started.isoformat(timespec="seconds"),
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    with run_dir_claim(work):
        save_record(run_log, record)
        try:
            _train_and_publish(
                data_dir,
                record=record,
                work=work,
                target=target,
                lock=lock,
                config=config,
                segments_files=segments_files,
                max_rejected_share=max_rejected_share,
                publish=publish,
                force=force,
                live_since=live_watermark(previous),
                show=show,
            )
        except BaseException as exc:
            record.status = "failed"
            record.error = str(exc) or type(exc).__name__
            if not isinstance(exc, RecsvcError):
                record.error = f"{type(exc).__name__}: {record.error}"
            raise
        finally:
            record.finished_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            (work / RUN_RECORD).write_bytes(encode_record(record))
            try:
                save_record(run_log, record)
            except Exception as exc:  # the store went away: the run dir keeps the record
                _log(f"could not save the run record in the store: {exc}", True)
    return record


def open_active(store: Store, show: bool) -> ActiveModel | None:
    """The store's active version, opened and checked; None when there is none or it does not
    open (a damaged version is no yardstick for the gate and holds no answers to compact)."""
    version = store.active_version()
    if version is None:
        return None
    try:
        return store.open(version)
    except (ArtifactError, NotFoundError) as exc:
        _log(f"the active version {version} does not open ({exc}); going on without it", True)
        return None


def live_watermark(previous: RunRecord | None) -> dt.datetime | None:
    """From when the last successful run's live answers count as new: the latest one it read (its
    start, seconds only, for records written before runs noted that)."""
    if previous is None:
        return None
    if previous.live is not None and previous.live.received_until:
        return times.parse_iso(previous.live.received_until)
    return times.parse_iso(previous.started_at)


def _train_and_publish(
    data_dir: Path,
    *,
    record: RunRecord,
    work: Path,
    target: Store,
    lock: TrainingLock,
    config: TrainingConfig,
    segments_files: tuple[Path, ...],
    max_rejected_share: float,
    publish: bool,
    force: bool,
    live_since: dt.datetime | None,
    show: bool,
) -> None:
    artifact = work / "artifact"
    artifact.mkdir(parents=True)
    if publish:
        target.prune(config.keep_versions)  # also drops partial copies a killed publish left

    validation = _timed(
        record,
        "validate",
        show,
        lambda: validate_dataset(
            data_dir, work / "validation", max_rejected_share=max_rejected_share, show_progress=show
        ),
    )
    record.rejected_rows = sum(t.rejected for t in validation.report.tables)
    with _step(record, "live responses", show):
        active = open_active(target, show)
        # What the active version holds leaves live first (see `training.run.live`).
        compaction = compact_held_responses(
            target, active, now=times.now(), retention_days=config.live_retention_days
        )
        live = read_live_responses(target)
        record.live = merge_live_responses(
            live.responses, work / "validation" / "clean", since=live_since
        )
        record.live.archived = live.archived
        record.live.compacted, record.live.compaction_error = compaction.moved, compaction.error
    if compaction.error:
        _log(f"live NPS responses stay live: {compaction.error}", True)
    _log(
        f"live NPS responses: {record.live.merged:,} added of {record.live.stored:,} stored "
        f"({record.live.archived:,} of them archived; {record.live.in_batch:,} already in the "
        f"batch file, {record.live.unknown_customer:,} of unknown customers)",
        show,
    )
    tables = read_clean_tables(work / "validation" / "clean")
    rules = load_segments(
        segments_files, extra_columns=extra_attribute_columns(tables[c.CUSTOMERS])
    )
    segmentation = _timed(
        record,
        "segments",
        show,
        lambda: run_segmentation(tables, artifact, rules=rules, show_progress=show),
    )
    record.rows = {"customers": segmentation.customers, "order_lines": segmentation.order_lines}

    with _step(record, "features", show):
        products = tables[c.PRODUCTS].collect()
        edges = ds.price_edges(products[c.PRICE])
        products = ds.with_price_band(products, edges)
        items = ds.item_space(products)
        customer_table = pl.read_parquet(artifact / "customers.parquet")
        users = ds.user_space(customer_table)
        lines = ds.indexed_lines(tables[c.ORDERS], users, items)
        last_day = int(lines["day"].max() or 0) if lines.height else 0  # type: ignore[arg-type]
        cutoff_day = last_day - config.holdout_days + 1
        cutoff = ds.EPOCH + dt.timedelta(days=cutoff_day)
        # Customers' features as they stood at the cut-off: no peeking at the hold-out.
        before = build_customer_table(
            _before(tables, cutoff), rules, SegmentationConfig(as_of=cutoff)
        )
        eval_users = ds.user_space(
            pl.DataFrame({c.CUSTOMER_ID: users.ids}).join(before, on=c.CUSTOMER_ID, how="left")
        )
        train_lines = lines.filter(pl.col("day") < cutoff_day)
        train = ds.purchases(train_lines, len(users.ids))
        test = ds.purchases(lines.filter(pl.col("day") >= cutoff_day), len(users.ids))
        interactions = ds.interaction_matrix(
            train_lines, len(users.ids), len(items.ids), config.weights, cutoff_day
        )

    eval_model = _timed(
        record,
        "fit (hold-out)",
        show,
        lambda: _fit_model(
            interactions,
            eval_users,
            items,
            train,
            ds.reorder_days(train_lines, len(items.ids)),
            config,
            show=show,
            label="fit hold-out",
        ),
    )
    with _step(record, "evaluate", show):
        evaluation = evaluate(
            eval_model,
            train,
            test,
            frame_column(before, users.ids, c.CUSTOMER_ID, PRIMARY_SEGMENT, MISSING),
            frame_column(before, users.ids, c.CUSTOMER_ID, NPS_CATEGORY, MISSING),
            k=config.k,
            cutoff_day=cutoff_day,
            holdout_days=config.holdout_days,
            max_users=config.max_eval_users,
            seed=config.seed,
        )
    record.metrics = msgspec.to_builtins(evaluation)
    if show:
        print(format_evaluation(evaluation), file=sys.stderr, flush=True)

    with _step(record, "gate", show):
        gate = quality_gate(
            new=eval_model,
            active=active.loaded if active is not None else None,
            users=eval_users,
            item_ids=items.ids,
            lines=lines,
            train=train,
            cutoff_day=cutoff_day,
            evaluation=evaluation,
            config=config,
            force=force,
        )
    record.gate = gate
    _log(gate.reason, show)

    if config.refit_on_all_data:
        all_interactions = ds.interaction_matrix(
            lines, len(users.ids), len(items.ids), config.weights, last_day + 1
        )
        served = _timed(
            record,
            "fit (all data)",
            show,
            lambda: _fit_model(
                all_interactions,
                users,
                items,
                ds.purchases(lines, len(users.ids)),
                ds.reorder_days(lines, len(items.ids)),
                config,
                show=show,
                label="fit all",
            ),
        )
        final_users = users
    else:
        served, final_users = eval_model, eval_users
    popularity = np.bincount(
        lines.filter(pl.col("day") > last_day - 90)["i"].to_numpy(), minlength=len(items.ids)
    ).astype(np.float32)

    candidates = None
    if config.serving_candidates:
        candidates = _timed(
            record,
            "candidates",
            show,
            lambda: serving_candidates(served, config.serving_candidates, show_progress=show),
        )

    with _step(record, "write artifact", show):
        fingerprint = data_fingerprint(data_dir)
        digest = hashlib.sha256(
            (fingerprint + msgspec.json.encode(config).decode()).encode()
        ).hexdigest()[:8]
        version = f"{record.run_id}-{digest}"
        record.version = version
        # The record as it stands, sealed into the artifact (listed in its manifest): a version
        # carries how it was made wherever it is copied.
        sealed = msgspec.structs.replace(
            record, status="publishing" if publish and gate.publish else "not_published"
        )
        (artifact / RUN_RECORD).write_bytes(encode_record(sealed))
        write_artifact(
            artifact,
            version=version,
            model=served,
            users=final_users,
            products=products,
            items=items,
            popularity=popularity,
            edges=edges,
            evaluation=evaluation,
            config=config,
            fingerprint=fingerprint,
            trained_until_day=last_day,
            customer_table=customer_table,
            rules=rules,
            nps_responses=tables[c.NPS_RESPONSES],
            candidates=candidates,
        )

    if publish and gate.publish:
        lock.check()  # a run that lost its lock must not publish over the run that took it
        _timed(record, "publish", show, lambda: target.publish(artifact, keep=config.keep_versions))
        record.published, record.status = True, "published"
    else:
        record.status = "not_published"


def format_record(record: RunRecord) -> str:
    """A few lines for people: what happened to this run."""
    lines = [f"run {record.run_id}: {record.status}"]
    lines.append("  steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in record.steps.items()))
    if record.rows:
        rows = ", ".join(f"{k} {v:,}" for k, v in record.rows.items())
        lines.append(f"  rows: {rows}; rejected by the validator {record.rejected_rows:,}")
    if record.live is not None and record.live.stored:
        lines.append(
            f"  live NPS responses: {record.live.merged:,} added "
            f"({record.live.new_since_last_run:,} new since the last run) of {record.live.stored:,}"
            f" ({record.live.archived:,} archived); {record.live.compacted:,} moved to the archive"
            " first (the active version held them)"
        )
        if record.live.compaction_error:
            lines.append(f"  live NPS responses not archived: {record.live.compaction_error}")
    if record.gate is not None:
        lines.append(f"  quality gate: {record.gate.reason}")
    if record.version:
        where = f"published to {record.store} and active" if record.published else "not published"
        lines.append(f"  version {record.version}: {where}")
    return "\n".join(lines)
