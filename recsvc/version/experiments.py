"""A version's experiments: the results the nightly run computed (`experiments.json`, a list of
`recsvc.domain.experiments.ExperimentResult`) and every assignment it found in the exposure log
(`experiment_assignments.json`, a list of `Assignment` as JSON arrays), both written by
`training.experiments`. A version written before experiments existed has neither: no results, no
assignments.

The assignments hold customer ids: personal data (`recsvc.domain.privacy.PERSONAL_DATA`, holder
`versions`)."""

from __future__ import annotations

from pathlib import Path
from typing import Final, TypeVar

import msgspec

from recsvc.domain.experiments import Assignment, ExperimentResult
from recsvc.errors import ArtifactError
from recsvc.version.artifacts import reason, where

RESULTS_FILE: Final = "experiments.json"
ASSIGNMENTS_FILE: Final = "experiment_assignments.json"

_results_decoder = msgspec.json.Decoder(list[ExperimentResult])
_assignments_decoder = msgspec.json.Decoder(list[Assignment])
_encoder = msgspec.json.Encoder()
T = TypeVar("T")


def write_experiments(
    directory: Path, results: list[ExperimentResult], assignments: list[Assignment]
) -> None:
    (directory / RESULTS_FILE).write_bytes(_encoder.encode(results))
    (directory / ASSIGNMENTS_FILE).write_bytes(_encoder.encode(assignments))


def read_results(directory: Path) -> list[ExperimentResult]:
    return _read(directory / RESULTS_FILE, _results_decoder)


def read_assignments(directory: Path) -> list[Assignment]:
    return _read(directory / ASSIGNMENTS_FILE, _assignments_decoder)


def _read(path: Path, decoder: msgspec.json.Decoder[list[T]]) -> list[T]:
    """The file's list; empty for a version written before experiments existed."""
    if not path.exists():
        return []
    try:
        return decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ArtifactError(f"{where(path)}: {reason(exc)}") from None
