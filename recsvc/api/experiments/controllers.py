"""`GET /v1/experiments`, `GET /v1/experiments/{experiment}` and
`GET /v1/experiments/{experiment}/assignments`: what the offers' experiments (and the
personalisation experiment, when it runs) measured, as of the active version's nightly run
(`training.experiments`), and who is in which arm."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.experiments.schemas import (
    AssignmentsOperation,
    ExperimentDetail,
    ExperimentList,
    summary,
)
from recsvc.api.experiments.services import assignment_stream
from recsvc.service.experiment_results import experiment_results, find_experiment
from recsvc.service.runtime import ModelHolder
from recsvc.version.opened import ActiveModel


class ExperimentController(Controller):
    path = "/v1/experiments"
    tags = ["experiments"]
    before_request = RequireScope("export")
    security = SECURITY

    @get(
        "/",
        summary="Every experiment with its arms and headline lift (the primary outcome)",
        description="Results as of the active version's training run: each offer in an "
        "experiment, and `recommendations` while the personalisation experiment runs. "
        "`holdout_share` is the configured share, `observed_holdout_share` the assigned one.",
        responses=error_responses(*KEYED, 503),
        sync_to_thread=False,
    )
    def list_experiments(self, model: Injected[ActiveModel]) -> ExperimentList:
        return ExperimentList(
            model_version=model.version,
            experiments=[summary(r) for r in experiment_results(model)],
        )

    @get(
        "/{experiment:str}",
        summary="One experiment: per arm assigned, exposed and analysed; every outcome's lift "
        "with its 95% interval and p-value; the sample-ratio check, the detectable effect, status",
        description="`experiment` is the experiment's id or its offer's id. Intent-to-treat: "
        "customers count in the arm they were assigned, shown the offer or not.",
        responses=error_responses(*KEYED, 404, 503),
        sync_to_thread=False,
    )
    def experiment(
        self, model: Injected[ActiveModel], experiment: FromPath[str]
    ) -> ExperimentDetail:
        return ExperimentDetail(
            model_version=model.version, result=find_experiment(model, experiment)
        )

    @get(
        "/{experiment:str}/assignments",
        summary="Stream an experiment's assignments (CSV, NDJSON or Parquet)",
        description="Columns: experiment, offer_id, customer_id, arm, assigned_at (the first "
        "request at which the customer was eligible), exposures (requests that showed the offer).",
        responses=error_responses(*KEYED, 404, 503),
        sync_to_thread=True,
        operation_class=AssignmentsOperation,
    )
    def assignments(
        self,
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        experiment: FromPath[str],
        export_format: Annotated[
            str | None,
            QueryParameter(name="format", description="csv (default), ndjson or parquet"),
        ] = None,
    ) -> Stream:
        return assignment_stream(holder, model, experiment, export_format)
