"""`GET /v1/nps/summary`: NPS with n and margin of error, overall and by one dimension."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.nps.services import nps_summary
from recsvc.service.nps_summary import COUNTING, DIMENSIONS, NpsSummary
from recsvc.service.runtime import ModelHolder
from recsvc.version.opened import ActiveModel


class NpsSummaryController(Controller):
    path = "/v1/nps"
    tags = ["nps"]
    before_request = RequireScope("export")
    security = SECURITY

    @get(
        "/summary",
        summary="NPS with n and margin of error, from the active version plus live responses",
        responses=error_responses(*KEYED, 503),
        description=f"Counting: {COUNTING}. Groups by the customer's primary segment, country or "
        "age band as of the active version (customers it does not know: '(not given)'), or by "
        "the answer's touchpoint or month (UTC). Each group is tested against the rest (months: "
        "against the month before). `live_answers` is null when the store could not be read.",
        # Reads every live response: keep it off the event loop.
        sync_to_thread=True,
    )
    def summary(
        self,
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        by: Annotated[
            str | None,
            Parameter(
                description=f"group by: {', '.join(DIMENSIONS)}; omitted: overall only",
                schema_extra={"enum": list(DIMENSIONS)},
            ),
        ] = None,
        since: Annotated[
            str | None,
            Parameter(
                description="first responded day included, YYYY-MM-DD (UTC)",
                schema_extra={"format": "date"},
            ),
        ] = None,
        until: Annotated[
            str | None,
            Parameter(
                description="last responded day included, YYYY-MM-DD (UTC)",
                schema_extra={"format": "date"},
            ),
        ] = None,
    ) -> NpsSummary:
        return nps_summary(model, holder, by=by, since=since, until=until)
