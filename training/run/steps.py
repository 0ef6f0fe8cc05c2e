"""The steps of a training run: each a function from typed inputs to a typed output, and each
output says how many rows it holds, so the run record keeps every step's seconds and rows
(`StepLog`). `training.run.pipeline` calls them in order.

Frames pass from step to step in memory, and nothing a run writes is read back or rewritten. The
one exception is where the run begins: the validator's outputs (clean tables, quarantine, report)
are a product of their own that people and other tools read, so `validate` writes them and then
reads the clean tables once, as the run's input. The live NPS answers join the run's copy of the
NPS table, not the clean file; the customer table goes on in memory once written into the artifact.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import times
from recsvc.domain.customer_table import NPS_CATEGORY, PRIMARY_SEGMENT
from recsvc.domain.experiments import ExperimentResult
from recsvc.domain.features import MISSING
from recsvc.domain.live import R
from recsvc.domain.offers import OfferCatalog
from recsvc.domain.privacy import Suppression
from recsvc.domain.segments.catalog import SegmentRules
from recsvc.store import Store
from recsvc.store.base import LiveLog
from recsvc.store.exposures import COMPACTION_MARGIN
from recsvc.store.runs import GateDecision, SearchRecord
from recsvc.version.artifacts import Manifest
from recsvc.version.neighbours import SimilarLists
from recsvc.version.opened import ActiveModel
from recsvc.version.scoring import Candidates, ModelArrays
from training.config import TrainingConfig
from training.customers.segmentation import CustomerSegments, segment_customers, segment_rules
from training.customers.segments import write_segment_artifacts
from training.experiments.nightly import ExperimentsRun, run_experiments
from training.publish.artifact import ServedModel, data_fingerprint, version_name, write_artifact
from training.publish.gate import quality_gate
from training.publish.orders import OrderHistoryData, order_history
from training.publish.recent_orders import write_recent_order_file
from training.recommender import dataset as ds
from training.recommender.candidates import serving_candidates
from training.recommender.dataset import FeatureSpace
from training.recommender.evaluate import (
    EvaluationReport,
    evaluate,
    format_evaluation,
    frame_column,
)
from training.recommender.fit import fit_arrays
from training.recommender.holdout import TrainingData, training_data, validation_split
from training.recommender.search import search
from training.recommender.similar import chosen_params, similar_lists
from training.report.build import nps_report, write_report
from training.report.model import NpsReport
from training.run.live import (
    LiveRead,
    Sweep,
    compact_held_orders,
    compact_held_responses,
    merge_live_orders,
    merge_live_responses,
    read_live,
    read_live_responses,
    suppress_live,
    sweep_erased,
)
from training.run.records import RUN_RECORD, LiveIntake, RunRecord, encode_record
from training.validate.dataset import CLEAN_DIR, read_clean_tables, validate_dataset


def log(message: str, show: bool) -> None:
    if show:
        print(f"[run] {message}", file=sys.stderr, flush=True)


class StepOutput(Protocol):
    @property
    def rows(self) -> int: ...


Output = TypeVar("Output", bound=StepOutput)


class StepLog:
    """Runs the steps of one run: a line before and after each, its seconds and its output's rows
    noted in the run record (a step that fails notes neither)."""

    def __init__(self, record: RunRecord, show: bool) -> None:
        self.record, self.show = record, show

    def __call__(self, name: str, work: Callable[[], Output]) -> Output:
        log(f"{name} ...", self.show)
        started = time.perf_counter()
        output = work()
        self.record.steps[name] = round(time.perf_counter() - started, 3)
        self.record.step_rows[name] = output.rows
        log(f"{name} done in {self.record.steps[name]:.1f}s", self.show)
        return output


# --- data in: validation, live answers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunTables:
    """The run's tables in contract dtypes, by table name: lazy scans of the validator's clean files
    (the run's input, never rewritten) or, for the NPS answers with the live ones added, a frame
    the run made. Lazy, so a step reads only the columns and rows it needs and no table is held
    whole in memory for the length of the run (a million customers' order lines are gigabytes)."""

    frames: Mapping[str, pl.LazyFrame]

    @property
    def rows(self) -> int:
        return sum(int(frame.select(pl.len()).collect().item()) for frame in self.frames.values())

    def nps_responses(self) -> pl.DataFrame:
        return self.frames[c.NPS_RESPONSES].collect()

    def lazy(self) -> dict[str, pl.LazyFrame]:
        return dict(self.frames)


@dataclass(frozen=True, slots=True)
class Validated:
    tables: RunTables  # the clean tables
    rejected_rows: int  # rows the validator set aside, all tables
    suppressed: dict[str, int]  # erased customers' rows it left out, by table (those with any)

    @property
    def rows(self) -> int:
        return self.tables.rows


def validate(
    data_dir: Path,
    out_dir: Path,
    max_rejected_share: float,
    suppression: Suppression,
    show: bool,
) -> Validated:
    """Validate the shop's folder into `out_dir`, without the erased customers' rows that
    `suppression` suppresses, and read the clean tables, once."""
    result = validate_dataset(
        data_dir,
        out_dir,
        max_rejected_share=max_rejected_share,
        show_progress=show,
        suppression=suppression,
    )
    # The boundary: the validator's files are its product (people and tools read them), so it
    # writes them; the run scans the clean tables as its input and never writes them again.
    tables = result.report.tables
    return Validated(
        RunTables(read_clean_tables(out_dir / CLEAN_DIR)),
        sum(t.rejected for t in tables),
        {t.table: t.suppressed for t in tables if t.suppressed},
    )


def _without_erased(
    records: LiveLog[R], read: LiveRead, suppression: Suppression, table: str, show: bool
) -> tuple[LiveRead, list[R], Sweep]:
    """The live records of `read` the run may merge, those `suppression` suppresses (left behind
    by an erasure), and the sweep that erased their customers from `records` (see
    `training.run.live`)."""
    kept, suppressed = suppress_live(read, suppression)
    if not suppressed:
        return kept, suppressed, Sweep()
    sweep = sweep_erased(records, suppressed, suppression)
    log(
        f"live {table}: {len(suppressed):,} records of erased customers left out, "
        f"{sweep.erased:,} erased from the store",
        show,
    )
    if sweep.error:
        log(f"live {table} of erased customers stay in the store: {sweep.error}", True)
    return kept, suppressed, sweep


@dataclass(frozen=True, slots=True)
class WithLiveAnswers:
    tables: RunTables  # `nps_responses` with the live answers added
    intake: LiveIntake
    suppressed: int  # live answers of erased customers left out
    rows: int  # NPS answers, live ones included


def take_live_answers(
    store: Store,
    active: ActiveModel | None,
    tables: RunTables,
    config: TrainingConfig,
    since: dt.datetime | None,
    suppression: Suppression,
    show: bool,
) -> WithLiveAnswers:
    """Move what the active version holds from live to the archive, then add the archived and live
    answers to the run's NPS answers, but those of erased customers (see `training.run.live`)."""
    compaction = compact_held_responses(
        store, active, now=times.now(), retention_days=config.live_retention_days
    )
    live, suppressed, sweep = _without_erased(
        store.answers, read_live_responses(store), suppression, c.NPS_RESPONSES, show
    )
    customers = tables.frames[c.CUSTOMERS].select(c.CUSTOMER_ID).collect()
    merged = merge_live_responses(live.responses, tables.nps_responses(), customers, since=since)
    intake = merged.intake
    intake.archived = live.archived
    intake.compacted, intake.compaction_error = compaction.moved, compaction.error
    intake.swept, intake.sweep_error = sweep.erased, sweep.error
    if compaction.error:
        log(f"live NPS responses stay live: {compaction.error}", True)
    log(
        f"live NPS responses: {intake.merged:,} added of {intake.stored:,} stored "
        f"({intake.archived:,} of them archived; {intake.in_batch:,} already in the "
        f"batch file, {intake.unknown_customer:,} of unknown customers)",
        show,
    )
    frames = {**tables.frames, c.NPS_RESPONSES: merged.nps_responses.lazy()}
    return WithLiveAnswers(RunTables(frames), intake, len(suppressed), merged.nps_responses.height)


@dataclass(frozen=True, slots=True)
class WithLiveOrders:
    tables: RunTables  # `orders` with the live order lines added
    intake: LiveIntake
    held: list[str]  # revision keys of the live lines the version will hold
    suppressed: int  # live order lines (each line once, whatever its revisions) of erased customers
    rows: int  # live order lines merged


def take_live_orders(
    store: Store,
    active: ActiveModel | None,
    tables: RunTables,
    config: TrainingConfig,
    since: dt.datetime | None,
    quarantine: Path,
    suppression: Suppression,
    show: bool,
) -> WithLiveOrders:
    """Move the live order lines the active version holds to the archive, then add the archived
    and live lines the shop's files lack to the run's orders, but those of erased customers (see
    `training.run.live`); lines of unknown customers or products go to `quarantine` (CSV, with the
    reason)."""
    compaction = compact_held_orders(
        store, active, now=times.now(), retention_days=config.live_retention_days
    )
    live, suppressed, sweep = _without_erased(
        store.orders, read_live(store.orders), suppression, c.ORDERS, show
    )
    frames = tables.frames
    merged = merge_live_orders(
        live.records,
        frames[c.ORDERS],
        frames[c.CUSTOMERS].select(c.CUSTOMER_ID).collect(),
        frames[c.PRODUCTS].select(c.PRODUCT_ID).collect(),
        since=since,
    )
    intake = merged.intake
    intake.archived = live.archived
    intake.compacted, intake.compaction_error = compaction.moved, compaction.error
    intake.swept, intake.sweep_error = sweep.erased, sweep.error
    if compaction.error:
        log(f"live order lines stay live: {compaction.error}", True)
    if merged.quarantined.height:
        merged.quarantined.write_csv(quarantine)
    if intake.stored:
        log(
            f"live order lines: {intake.merged:,} added of {intake.stored:,} stored "
            f"({intake.archived:,} of them archived; {intake.in_batch:,} already in the shop's "
            f"files, {intake.unknown_customer + intake.unknown_product:,} of unknown customers "
            "or products, quarantined)",
            show,
        )
    return WithLiveOrders(
        RunTables({**frames, c.ORDERS: merged.orders}),
        intake,
        merged.held,
        len({line.line_id for line in suppressed}),
        intake.merged,
    )


# --- customers: segments and the NPS report -------------------------------------------------------


def segment(tables: RunTables, segments_files: Sequence[Path], out_dir: Path) -> CustomerSegments:
    """The customer table with its segments, written into `out_dir` (customers.parquet and
    segment_members.parquet, artifact files) and passed on in memory."""
    lazy = tables.lazy()
    segments = segment_customers(lazy, segment_rules(lazy, segments_files))
    write_segment_artifacts(segments.table, out_dir)
    return segments


@dataclass(frozen=True, slots=True)
class WrittenReport:
    report: NpsReport
    json_path: Path
    html_path: Path

    @property
    def rows(self) -> int:
        return self.report.responses


def report(
    tables: RunTables,
    segments: CustomerSegments,
    out_dir: Path,
    experiments: Sequence[ExperimentResult] = (),
) -> WrittenReport:
    """The NPS report, with the experiments' results, written into `out_dir` as nps_report.json
    and nps_report.html."""
    built = msgspec.structs.replace(
        nps_report(tables.lazy(), segments), experiments=list(experiments)
    )
    return WrittenReport(built, *write_report(built, out_dir))


def experiments(
    store: Store,
    extra_file: Path | None,
    tables: RunTables,
    segments: CustomerSegments,
    catalog: OfferCatalog,
    suppression: Suppression,
    out_dir: Path,
    show: bool,
) -> ExperimentsRun:
    """Every experiment in the store's exposure log (and `extra_file`'s lines): outcomes from the
    run's tables, the analysis, written into `out_dir` (experiments.json and the assignments).
    Then the log's lines older than `COMPACTION_MARGIN` are folded into its compacted
    assignments (`recsvc.store.exposures`)."""
    return run_experiments(
        store.exposures,
        extra_file,
        tables.lazy(),
        segments.as_of,
        catalog,
        out_dir,
        suppression,
        show,
        compact_before=times.now() - COMPACTION_MARGIN,
        erasures=store.erasures.suppression,
    )


# --- the recommender ------------------------------------------------------------------------------


def features(tables: RunTables, segments: CustomerSegments, config: TrainingConfig) -> TrainingData:
    """Products, customers and order lines indexed for the recommender, split for the hold-out
    model (the last weeks, or each customer's last orders)."""
    return training_data(tables.lazy(), segments.table, segments.rules, config, segments.as_of)


def orders_held(
    tables: RunTables, segments: CustomerSegments, data: TrainingData, held_lines: list[str]
) -> OrderHistoryData:
    """What the version stores of the orders (`recsvc.version.orders`): each customer's order
    times, the orders and live line revisions it holds, the RFM edges and churn parameters."""
    frames = tables.frames
    return order_history(
        segments, frames[c.CUSTOMERS], frames[c.ORDERS], data.users.ids, held_lines
    )


@dataclass(frozen=True, slots=True)
class Fitted:
    arrays: ModelArrays
    users: FeatureSpace  # the customers' features it was fitted with
    rows: int  # (customer, product) interactions it was fitted on


@dataclass(frozen=True, slots=True)
class Searched:
    config: TrainingConfig  # the run's settings from here on
    record: SearchRecord | None

    @property
    def rows(self) -> int:
        return len(self.record.trials) if self.record is not None else 0


def previous_settings(active: ActiveModel | None) -> TrainingConfig | None:
    """The active version's settings (the last search's choice), to start this search from; None
    when there is no version or this build cannot read its settings."""
    if active is None:
        return None
    try:
        return msgspec.convert(active.loaded.manifest.config, TrainingConfig)
    except msgspec.ValidationError:
        return None


def search_settings(
    data: TrainingData, active: ActiveModel | None, config: TrainingConfig, show: bool
) -> Searched:
    """The recommender's settings for this run, chosen on a validation split inside the hold-out's
    training lines (`training.recommender.search`)."""
    if not config.search_trials:
        return Searched(config, None)
    held = data.holdout
    validation = validation_split(
        held.train_lines, len(held.users.ids), len(data.items.ids), config
    )
    found = search(
        validation,
        held.users,
        data.items,
        config,
        previous_settings(active),
        full_interactions=held.interactions.nnz,
        show=show,
    )
    return Searched(found.config, found.record)


def fit_hold_out(data: TrainingData, config: TrainingConfig, show: bool) -> Fitted:
    """The model of the training lines, with customers' features without the held-out data."""
    held = data.holdout
    arrays = fit_arrays(
        held.interactions,
        held.users,
        data.items,
        held.train,
        ds.reorder_days(held.train_lines, len(data.items.ids)),
        config,
        show_progress=show,
        label="fit hold-out",
    )
    return Fitted(arrays, held.users, held.interactions.nnz)


@dataclass(frozen=True, slots=True)
class Evaluated:
    report: EvaluationReport

    @property
    def rows(self) -> int:
        return self.report.eval_users


def evaluate_hold_out(
    model: Fitted, data: TrainingData, config: TrainingConfig, show: bool
) -> Evaluated:
    """The hold-out model against the baselines on the held-out purchases."""
    held = data.holdout
    evaluation = evaluate(
        model.arrays,
        held.train,
        held.test,
        frame_column(held.customers, data.users.ids, c.CUSTOMER_ID, PRIMARY_SEGMENT, MISSING),
        frame_column(held.customers, data.users.ids, c.CUSTOMER_ID, NPS_CATEGORY, MISSING),
        k=config.k,
        split=held.split,
        cutoff_day=held.cutoff_day,
        test_from_day=held.test_from_day,
        max_users=config.max_eval_users,
        seed=config.seed,
        similar_list=config.similar_list,
    )
    if show:
        print(format_evaluation(evaluation), file=sys.stderr, flush=True)
    return Evaluated(evaluation)


@dataclass(frozen=True, slots=True)
class Gated:
    decision: GateDecision

    @property
    def rows(self) -> int:
        return self.decision.compared


def gate(
    model: Fitted,
    active: ActiveModel | None,
    data: TrainingData,
    evaluation: EvaluationReport,
    config: TrainingConfig,
    force: bool,
    show: bool,
) -> Gated:
    """The quality gate's decision: the hold-out model against the active version."""
    decision = quality_gate(
        new=model.arrays,
        active=active.loaded if active is not None else None,
        users=model.users,
        item_ids=data.items.ids,
        held_out=data.holdout.test_lines,
        train=data.holdout.train,
        evaluation=evaluation,
        config=config,
        force=force,
    )
    log(decision.reason, show)
    return Gated(decision)


def fit_all_data(data: TrainingData, config: TrainingConfig, show: bool) -> Fitted:
    """The served model: every line, customers' features as they are now."""
    interactions = data.interactions(config)
    arrays = fit_arrays(
        interactions,
        data.users,
        data.items,
        data.purchases(),
        ds.reorder_days(data.lines, len(data.items.ids)),
        config,
        show_progress=show,
        label="fit all",
    )
    return Fitted(arrays, data.users, interactions.nnz)


@dataclass(frozen=True, slots=True)
class CandidateLists:
    lists: Candidates

    @property
    def rows(self) -> int:
        return int(self.lists.items.shape[0])


def candidates(model: Fitted, n: int, show: bool) -> CandidateLists:
    """Each customer's best `n` never-bought items, stored with the version."""
    return CandidateLists(serving_candidates(model.arrays, n, show_progress=show))


@dataclass(frozen=True, slots=True)
class RecentOrders:
    orders: int  # orders written

    @property
    def rows(self) -> int:
        return self.orders


def recent_orders(tables: RunTables, segments: CustomerSegments, out_dir: Path) -> RecentOrders:
    """The orders that can still trigger a delivery survey as of the data's end, with their
    placing and delivery times, written into `out_dir` (`recsvc.version.recent_orders`)."""
    written = write_recent_order_file(out_dir, tables.frames[c.ORDERS], segments.as_of)
    return RecentOrders(len(written.orders))


@dataclass(frozen=True, slots=True)
class NeighbourLists:
    lists: SimilarLists

    @property
    def rows(self) -> int:
        return int(self.lists.items.shape[0])


def neighbours(
    model: Fitted, data: TrainingData, n: int, report: EvaluationReport, show: bool
) -> NeighbourLists:
    """Each product's best `n` neighbours as of the data's last day, ranked with the bought-alike
    settings the evaluation chose (`report.alike`), stored with the version."""
    params = chosen_params(report.alike)
    return NeighbourLists(similar_lists(model.arrays, data.last_day, n, params, show_progress=show))


# --- the version ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrittenVersion:
    manifest: Manifest

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def rows(self) -> int:
        return self.manifest.n_customers


@dataclass(frozen=True, slots=True)
class ShopData:
    """What the model and version steps read of the shop's data."""

    # When the run read the suppression list: the data holds no row an erasure up to then
    # suppresses.
    erasures_as_of: dt.datetime
    active: ActiveModel | None  # the store's active version (the gate's yardstick)
    customer_table: pl.DataFrame
    rules: SegmentRules
    data: TrainingData
    nps_responses: pl.DataFrame  # with the live answers
    orders: OrderHistoryData  # with the live order lines


@dataclass(frozen=True, slots=True)
class Trained:
    """What the version is made of: the served model and what the run found out about it."""

    served: Fitted
    lists: CandidateLists | None
    neighbours: NeighbourLists | None
    evaluation: EvaluationReport
    gate: GateDecision
    config: TrainingConfig  # the run's settings, the search's choice


def served_model(
    model: Fitted,
    data: TrainingData,
    lists: CandidateLists | None,
    neighbours: NeighbourLists | None,
) -> ServedModel:
    """The model a version serves, with the id maps, products and lists that go with it."""
    return ServedModel(
        arrays=model.arrays,
        users=model.users,
        items=data.items,
        products=data.products,
        price_edges=data.price_edges,
        popularity=data.popularity(),
        trained_until_day=data.last_day,
        candidates=lists.lists if lists is not None else None,
        similar=neighbours.lists if neighbours is not None else None,
    )


def write_version(
    artifact: Path,
    record: RunRecord,
    will_publish: bool,
    data_dir: Path,
    model: ServedModel,
    evaluation: EvaluationReport,
    shop: ShopData,
    config: TrainingConfig,
) -> WrittenVersion:
    """Name the version and write it into `artifact`, the run record as it stands included."""
    fingerprint = data_fingerprint(data_dir)
    version = version_name(record.run_id, fingerprint, config)
    # The record sealed into the artifact (listed in its manifest): a version carries how it was
    # made wherever it is copied.
    sealed = msgspec.structs.replace(
        record, version=version, status="publishing" if will_publish else "not_published"
    )
    (artifact / RUN_RECORD).write_bytes(encode_record(sealed))
    manifest = write_artifact(
        artifact,
        version=version,
        model=model,
        evaluation=evaluation,
        config=config,
        fingerprint=fingerprint,
        customer_table=shop.customer_table,
        rules=shop.rules,
        nps_responses=shop.nps_responses.lazy(),
        order_history=shop.orders,
        erasures_as_of=shop.erasures_as_of,
    )
    return WrittenVersion(manifest)


@dataclass(frozen=True, slots=True)
class Published:
    version: str
    rows: int  # customers in the version


def publish(store: Store, artifact: Path, written: WrittenVersion, keep: int) -> Published:
    """Copy the artifact into the store and make it the active version (atomically)."""
    store.publish(artifact, keep=keep)
    return Published(written.version, written.rows)
