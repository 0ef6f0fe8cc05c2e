"""The experiments' results and assignments as the active version holds them (computed by the
nightly run), for `GET /v1/experiments` and the assignment export."""

from __future__ import annotations

import functools
from pathlib import Path

from recsvc.domain.experiments import Assignment, ExperimentResult
from recsvc.domain.privacy import Suppression
from recsvc.errors import NotFoundError, shown
from recsvc.service.exports.assignments import AssignmentExport
from recsvc.service.exports.plan import parse_format
from recsvc.version.experiments import read_assignments, read_results
from recsvc.version.opened import ActiveModel


@functools.lru_cache(maxsize=4)
def _results(directory: Path) -> tuple[ExperimentResult, ...]:
    # A version never changes once published: its file is read once per worker.
    return tuple(read_results(directory))


def experiment_results(model: ActiveModel) -> list[ExperimentResult]:
    return list(_results(model.loaded.directory))


def find_experiment(model: ActiveModel, key: str) -> ExperimentResult:
    """An experiment by its id, or by its offer's id; NotFoundError naming what is known."""
    results = experiment_results(model)
    for result in results:
        if result.experiment == key:
            return result
    for result in results:
        if result.offer_id == key:
            return result
    known = ", ".join(r.experiment for r in results) or "none yet"
    raise NotFoundError(f"experiment {shown(key)}: not in version {model.version} (known: {known})")


def assignment_export(
    model: ActiveModel, key: str, suppression: Suppression, export_format: str | None
) -> AssignmentExport:
    fmt = parse_format(export_format)
    result = find_experiment(model, key)
    rows: list[Assignment] = [
        a for a in read_assignments(model.loaded.directory) if a.experiment == result.experiment
    ]
    return AssignmentExport(fmt, model.version, result.experiment, rows, suppression)
