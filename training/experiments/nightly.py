"""The run's experiments step: every experiment found in the exposure log (the store's, plus an
optional file of earlier lines), its outcome table, its analysis, written into the version.

Each experiment is analysed with its offer's `[experiment]` table from the catalog (primary outcome,
window, end); the holdout share it is checked against is the catalog's, or for an experiment the
catalog no longer runs (and for the personalisation experiment) the share its lines were logged
with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.experiments import (
    Compacted,
    ExperimentConfig,
    ExperimentResult,
)
from recsvc.domain.offers import OfferCatalog
from recsvc.domain.privacy import Suppression
from recsvc.domain.times import naive_utc
from recsvc.store.exposures import ExposureLog
from recsvc.version.experiments import write_experiments
from training.experiments.analysis import AnalysisConfig, analyse
from training.experiments.outcomes import (
    as_assignments,
    assignment_frame,
    assignments,
    exposure_frame,
    merge_assignments,
    outcome_table,
    read_exposure_file,
)
from training.progress import Progress
from training.validate.suppression import ErasedCustomers


def _without_erased(frame: pl.DataFrame, suppression: Suppression) -> pl.DataFrame:
    if not suppression or frame.is_empty():
        return frame
    gone = ErasedCustomers.among(frame["customer_id"].unique(), suppression).ids
    return frame.filter(~pl.col("customer_id").is_in(gone.implode()))


@dataclass(frozen=True, slots=True)
class ExperimentsRun:
    results: list[ExperimentResult]
    exposure_lines: int
    assigned: int  # (experiment, customer) pairs

    @property
    def rows(self) -> int:
        return self.assigned


def _config(
    catalog: OfferCatalog, experiment: str, offer_id: str, logged_share: float
) -> AnalysisConfig:
    definition = catalog.offers.get(offer_id)
    config = definition.experiment if definition is not None else None
    if config is None or (config.id or offer_id) != experiment:
        # No longer in the catalog (or renamed): analysed as it was logged, with the defaults.
        config = ExperimentConfig(holdout_share=logged_share)
    return AnalysisConfig(
        experiment=experiment,
        offer_id=offer_id,
        holdout_share=config.holdout_share,
        primary=config.primary,
        window_days=config.window_days,
        ends=config.ends,
    )


def run_experiments(
    log: ExposureLog,
    extra_file: Path | None,
    tables: dict[str, pl.LazyFrame],
    as_of: dt.datetime,
    catalog: OfferCatalog,
    out_dir: Path,
    suppression: Suppression,
    show: bool = True,
    *,
    compact_before: dt.datetime | None = None,
    erasures: Callable[[], Suppression] | None = None,
) -> ExperimentsRun:
    """Analyse every experiment in the log (what earlier runs compacted, and the lines since);
    write `experiments.json` and the assignments into the version directory `out_dir`. Lines of
    customers `suppression` erased are left out (the store's log lost them at the erasure; a file
    kept elsewhere may still hold them).

    `compact_before`: then fold the lines before that moment into the log's compacted assignments
    and remove them from the log (`ExposureLog.compact`), leaving out whoever `erasures()` (the
    store's list, read again just before) says was erased meanwhile."""
    folded = log.compacted()
    frames = [exposure_frame(log.read())]
    if extra_file is not None:
        extra = read_exposure_file(extra_file)
        if folded.through is not None:  # its older lines are in the compacted assignments
            extra = extra.filter(pl.col("at") >= naive_utc(folded.through))
        frames.append(extra)
    exposures = _without_erased(pl.concat(frames), suppression)
    before = _without_erased(assignment_frame(folded.assignments), suppression)
    assigned = merge_assignments(before, assignments(exposures))
    older = (
        exposures.filter(pl.col("at") < naive_utc(compact_before))
        if compact_before is not None
        else exposures.clear()
    )
    if compact_before is not None and not older.is_empty():
        fold = merge_assignments(before, assignments(older))
        if erasures is not None:
            fold = _without_erased(fold, erasures())
        log.compact(Compacted(compact_before, as_assignments(fold)))
    keys = assigned.select("experiment", "offer_id").unique(maintain_order=True).rows()
    configs = {
        experiment: _config(
            catalog,
            experiment,
            offer_id,
            float(assigned.filter(pl.col("experiment") == experiment)["share"][-1]),
        )
        for experiment, offer_id in keys
    }
    windows = pl.DataFrame(
        {
            "experiment": list(configs),
            "window_days": [config.window_days for config in configs.values()],
        },
        schema={"experiment": pl.String, "window_days": pl.Int64},
    )
    # One pass over the shop's tables for every experiment.
    tables_by_experiment = outcome_table(
        assigned.join(windows, on="experiment"),
        tables[c.ORDERS],
        tables[c.NPS_RESPONSES],
        as_of,
    ).partition_by("experiment", as_dict=True)
    results: list[ExperimentResult] = []
    progress = Progress("experiments", len(keys), unit="experiments", enabled=show)
    for experiment, config in configs.items():
        table = tables_by_experiment[(experiment,)]
        waiting = table.filter(~pl.col("complete")).group_by("arm").len()
        pending = dict(zip(waiting["arm"].to_list(), waiting["len"].to_list(), strict=True))
        results.append(analyse(table, config, pending=pending))
        progress.advance(1)
    progress.finish()
    write_experiments(out_dir, results, as_assignments(assigned))
    return ExperimentsRun(results, exposures.height, assigned.height)
