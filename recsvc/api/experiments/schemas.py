"""What the experiments endpoints answer."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar.openapi.spec import Operation

from recsvc.api.segments.schemas import streamed_file
from recsvc.domain.experiments import ArmSummary, ExperimentResult, OutcomeResult


class ExperimentSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One experiment in the list: its arms and its headline (the primary outcome's lift)."""

    experiment: str
    offer_id: str
    status: str
    status_detail: str
    primary: str
    holdout_share: float
    observed_holdout_share: float | None
    arms: list[ArmSummary]
    headline: OutcomeResult | None


class ExperimentList(msgspec.Struct, frozen=True, kw_only=True):
    model_version: str  # the version whose nightly run computed these results
    experiments: list[ExperimentSummary]


class ExperimentDetail(msgspec.Struct, frozen=True, kw_only=True):
    model_version: str
    result: ExperimentResult


def summary(result: ExperimentResult) -> ExperimentSummary:
    return ExperimentSummary(
        experiment=result.experiment,
        offer_id=result.offer_id,
        status=result.status,
        status_detail=result.status_detail,
        primary=result.primary,
        holdout_share=result.holdout_share,
        observed_holdout_share=result.observed_holdout_share,
        arms=result.arms,
        headline=next((o for o in result.outcomes if o.primary), None),
    )


@dataclass
class AssignmentsOperation(Operation):
    """The assignment export's reply."""

    def __post_init__(self) -> None:
        streamed_file(
            self,
            "One row per assigned customer, streamed",
            {"X-Model-Version": "the version whose run found these assignments"},
        )
