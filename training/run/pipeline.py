"""The training run: validate, segment and report, evaluate on a hold-out, fit, gate, publish.

A run holds the store's training lock from start to end (a second run fails with `LockHeld`), reads
the store's suppression list once and leaves out every row and live record of an erased customer it
suppresses (`recsvc.domain.privacy`; the version's manifest notes when: `erasures_as_of`), adds
the live NPS responses the service took in to the validated data (see `training.run.live`), and works
in a run directory (`var/runs/<run id>/`); only the final publish touches the store's versions, and
it does so atomically (see `recsvc.store`), so a run killed at any point leaves the active version
serving. First it moves the live responses the active version holds to the store's archive. Each
step is a function of `training.run.steps`, called in order by `_train_and_publish`. The run record
lists each step's duration and rows, the row counts, the live responses, the metrics, the gate
decision and the published version or the error; it is saved in the run directory and in the
store's run log, at the start and at the end, and a copy is sealed into the artifact (`run.json`).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from recsvc.domain import columns as c
from recsvc.domain import times
from recsvc.domain.offers import OfferCatalog, load_offers
from recsvc.errors import ArtifactError, NotFoundError, RecsvcError
from recsvc.store import Store, open_store
from recsvc.store.locks import DEFAULT_LOCK_TTL_SECONDS, TrainingLock
from recsvc.store.runs import RunLog
from recsvc.version.opened import ActiveModel
from training.config import TrainingConfig, load_config
from training.recommender.evaluate import describe_recorded_split
from training.recommender.search import describe_search
from training.run import steps
from training.run.records import (
    RUN_ID_FORMAT,
    RUN_RECORD,
    LiveIntake,
    RunRecord,
    close_interrupted,
    encode_record,
    format_counts,
    format_steps,
    last_success,
    read_records,
    save_record,
)
from training.run.steps import StepLog, log
from training.run.workdirs import clean_run_dirs, run_dir_claim

# Live order lines of customers or products the run's tables lack, beside the validator's output.
LIVE_QUARANTINE = "live_quarantine.csv"

__all__ = ["RunRecord", "format_record", "run_pipeline"]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run trains and what it may do: the same for every step."""

    config: TrainingConfig
    segments_files: tuple[Path, ...]
    max_rejected_share: float
    publish: bool
    force: bool
    show: bool
    catalog: OfferCatalog  # whose offers' experiments the run analyses
    exposures_file: Path | None = None  # exposure lines kept outside the store


def run_pipeline(
    data_dir: Path,
    *,
    store: str = "file://./var/store",
    config: TrainingConfig | None = None,
    config_path: Path | None = None,
    segments_files: tuple[Path, ...] = (),
    offers_file: Path | None = None,
    exposures_file: Path | None = None,
    max_rejected_share: float = 0.05,
    publish: bool = True,
    force: bool = False,
    runs_dir: Path = Path("var/runs"),
    show_progress: bool = True,
    lock_ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS,
) -> RunRecord:
    """One training run under the store's lock. Returns the record of a run that finished (status
    published or not_published); a run that fails saves its record as failed and re-raises."""
    options = RunOptions(
        config=config or load_config(config_path),
        segments_files=segments_files,
        max_rejected_share=max_rejected_share,
        publish=publish,
        force=force,
        show=show_progress,
        catalog=load_offers(offers_file),
        exposures_file=exposures_file,
    )
    target = open_store(store)  # a bad store URL fails before any work
    try:
        with target.training_lock(ttl_seconds=lock_ttl_seconds) as lock:
            return _locked_run(data_dir, target, lock, target.run_log(), runs_dir, options)
    finally:
        target.close()


def _locked_run(
    data_dir: Path,
    target: Store,
    lock: TrainingLock,
    run_log: RunLog,
    runs_dir: Path,
    options: RunOptions,
) -> RunRecord:
    # We hold the lock: no other run of this store is alive, so what a dead one left can go.
    for run_id in close_interrupted(run_log):
        log(f"run {run_id} was interrupted; marked as such", options.show)
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
                data_dir, record, work, target, lock, options, live_watermark(previous)
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
                log(f"could not save the run record in the store: {exc}", True)
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
        log(f"the active version {version} does not open ({exc}); going on without it", True)
        return None


@dataclass(frozen=True, slots=True)
class Watermarks:
    """From when live records count as new: the latest of each kind the last successful run
    read (its start, seconds only, for records written before runs noted that)."""

    answers: dt.datetime | None = None
    orders: dt.datetime | None = None


def live_watermark(previous: RunRecord | None) -> Watermarks:
    if previous is None:
        return Watermarks()
    started = times.parse_iso(previous.started_at)

    def until(intake: LiveIntake | None) -> dt.datetime:
        if intake is not None and intake.received_until:
            return times.parse_iso(intake.received_until)
        return started

    return Watermarks(until(previous.live), until(previous.live_orders))


def _train_and_publish(
    data_dir: Path,
    record: RunRecord,
    work: Path,
    target: Store,
    lock: TrainingLock,
    run: RunOptions,
    live_since: Watermarks,
) -> None:
    """The steps in order, in two stretches and the version; each output goes on, in memory, to
    the steps that need it."""
    artifact = work / "artifact"
    artifact.mkdir(parents=True)
    if run.publish:
        target.prune(run.config.keep_versions)  # also drops partial copies a killed publish left
    step = StepLog(record, run.show)
    shop = _shop_steps(step, record, data_dir, work, target, run, live_since)
    model = _model_steps(step, record, shop, run)
    will_publish = run.publish and model.gate.publish
    written = step(
        "write artifact",
        lambda: steps.write_version(
            artifact,
            record,
            will_publish,
            data_dir,
            steps.served_model(model.served, shop.data, model.lists, model.neighbours),
            model.evaluation,
            shop,
            model.config,
        ),
    )
    record.version = written.version
    if will_publish:
        lock.check()  # a run that lost its lock must not publish over the run that took it
        step("publish", lambda: steps.publish(target, artifact, written, run.config.keep_versions))
        record.published, record.status = True, "published"
    else:
        record.status = "not_published"


def _shop_steps(
    step: StepLog,
    record: RunRecord,
    data_dir: Path,
    work: Path,
    target: Store,
    run: RunOptions,
    live_since: Watermarks,
) -> steps.ShopData:
    """The shop's data: validated, with the live answers, without erased customers' rows,
    segmented, reported on, indexed for the recommender. Only what later steps read is returned:
    the run's tables are let go here."""
    config, show, artifact = run.config, run.show, work / "artifact"
    # Taken before the list is read: an erasure logged in between is then both left out here and
    # masked by the workers, never neither.
    erasures_as_of = times.now()
    suppression = target.erasures.suppression()
    clean = step(
        "validate",
        lambda: steps.validate(
            data_dir, work / "validation", run.max_rejected_share, suppression, show
        ),
    )
    record.rejected_rows, record.suppressed = clean.rejected_rows, clean.suppressed
    active = open_active(target, show)
    live = step(
        "live responses",
        lambda: steps.take_live_answers(
            target, active, clean.tables, config, live_since.answers, suppression, show
        ),
    )
    record.live = live.intake
    orders = step(
        "live orders",
        lambda: steps.take_live_orders(
            target,
            active,
            live.tables,
            config,
            live_since.orders,
            work / "validation" / LIVE_QUARANTINE,
            suppression,
            show,
        ),
    )
    record.live_orders, tables = orders.intake, orders.tables
    record.suppressed = _with_live(
        record.suppressed, {c.NPS_RESPONSES: live.suppressed, c.ORDERS: orders.suppressed}
    )
    if record.suppressed:
        log(f"rows of erased customers left out: {format_counts(record.suppressed)}", show)
    segments = step("segments", lambda: steps.segment(tables, run.segments_files, artifact))
    record.rows = {"customers": segments.rows, "order_lines": segments.order_lines}
    tried = step(
        "experiments",
        lambda: steps.experiments(
            target,
            run.exposures_file,
            tables,
            segments,
            run.catalog,
            suppression,
            artifact,
            show,
        ),
    )
    step("report", lambda: steps.report(tables, segments, artifact, tried.results))
    data = step("features", lambda: steps.features(tables, segments, config))
    history = step("order history", lambda: steps.orders_held(tables, segments, data, orders.held))
    step("recent orders", lambda: steps.recent_orders(tables, segments, artifact))
    return steps.ShopData(
        erasures_as_of,
        active,
        segments.table,
        segments.rules,
        data,
        tables.nps_responses(),
        history,
    )


def _with_live(suppressed: dict[str, int], live: dict[str, int]) -> dict[str, int]:
    """The validator's counts of suppressed rows by table, with the live records'."""
    counts = dict(suppressed)
    for table, rows in live.items():
        if rows:
            counts[table] = counts.get(table, 0) + rows
    return counts


def _model_steps(
    step: StepLog, record: RunRecord, shop: steps.ShopData, run: RunOptions
) -> steps.Trained:
    """Fit on the hold-out split, evaluate, gate; then the served model, its candidate lists and
    its products' neighbour lists."""
    show, data = run.show, shop.data
    searched = step("search", lambda: steps.search_settings(data, shop.active, run.config, show))
    record.search = searched.record
    config = searched.config
    hold_out = step("fit (hold-out)", lambda: steps.fit_hold_out(data, config, show))
    evaluated = step("evaluate", lambda: steps.evaluate_hold_out(hold_out, data, config, show))
    record.metrics = msgspec.to_builtins(evaluated.report)
    gated = step(
        "gate",
        lambda: steps.gate(hold_out, shop.active, data, evaluated.report, config, run.force, show),
    )
    record.gate = gated.decision
    served = hold_out
    if config.refit_on_all_data:
        served = step("fit (all data)", lambda: steps.fit_all_data(data, config, show))
    lists = None
    if config.serving_candidates:
        lists = step(
            "candidates", lambda: steps.candidates(served, config.serving_candidates, show)
        )
    neighbours = None
    if config.similar_list:
        neighbours = step(
            "similar lists",
            lambda: steps.neighbours(served, data, config.similar_list, evaluated.report, show),
        )
    return steps.Trained(served, lists, neighbours, evaluated.report, gated.decision, config)


def format_record(record: RunRecord) -> str:
    """A few lines for people: what happened to this run."""
    lines = [f"run {record.run_id}: {record.status}"]
    lines.append(f"  steps: {format_steps(record)}")
    if record.rows:
        rows = ", ".join(f"{k} {v:,}" for k, v in record.rows.items())
        lines.append(f"  rows: {rows}; rejected by the validator {record.rejected_rows:,}")
    if record.suppressed:
        lines.append(f"  rows of erased customers left out: {format_counts(record.suppressed)}")
    if record.live is not None and record.live.stored:
        lines.append(
            f"  live NPS responses: {record.live.merged:,} added "
            f"({record.live.new_since_last_run:,} new since the last run) of {record.live.stored:,}"
            f" ({record.live.archived:,} archived); {record.live.compacted:,} moved to the archive"
            " first (the active version held them)"
        )
        if record.live.compaction_error:
            lines.append(f"  live NPS responses not archived: {record.live.compaction_error}")
    if record.live is not None and record.live.sweep_error:
        lines.append(
            f"  live NPS responses of erased customers not erased: {record.live.sweep_error}"
        )
    orders = record.live_orders
    if orders is not None and orders.stored:
        lines.append(
            f"  live order lines: {orders.merged:,} added ({orders.new_since_last_run:,} new since"
            f" the last run) of {orders.stored:,} ({orders.archived:,} archived); "
            f"{orders.in_batch:,} already in the shop's files; "
            f"{orders.unknown_customer + orders.unknown_product:,} quarantined (unknown customer "
            f"or product); {orders.compacted:,} moved to the archive first"
        )
        if orders.compaction_error:
            lines.append(f"  live order lines not archived: {orders.compaction_error}")
    if orders is not None and orders.sweep_error:
        lines.append(f"  live order lines of erased customers not erased: {orders.sweep_error}")
    if record.search is not None:
        lines.append(f"  {describe_search(record.search)}")
    split = describe_recorded_split(record.metrics)
    if split:
        lines.append(f"  evaluation: {split}")
    if record.gate is not None:
        lines.append(f"  quality gate: {record.gate.reason}")
    if record.version:
        where = f"published to {record.store} and active" if record.published else "not published"
        lines.append(f"  version {record.version}: {where}")
    return "\n".join(lines)
