"""`GET /v1/nps/summary`: NPS with n and margin of error, overall and by one dimension;
`GET /v1/nps/themes`: what the comments of promoters, passives and detractors talk about."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.nps.services import nps_summary, nps_themes
from recsvc.service.nps_summary import COUNTING, DIMENSIONS, NpsSummary
from recsvc.service.nps_themes import DEFAULT_VERBATIMS, THEME_COUNTING, ThemeSummary
from recsvc.service.runtime import ModelHolder
from recsvc.version.opened import ActiveModel
from recsvc.version.responses import NOT_GIVEN

# The answer window both endpoints take (checked by `recsvc.service.nps_window`).
SinceDay = Annotated[
    str | None,
    Parameter(
        description="first responded day included, YYYY-MM-DD (UTC)",
        schema_extra={"format": "date"},
    ),
]
UntilDay = Annotated[
    str | None,
    Parameter(
        description="last responded day included, YYYY-MM-DD (UTC)",
        schema_extra={"format": "date"},
    ),
]


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
        since: SinceDay = None,
        until: UntilDay = None,
    ) -> NpsSummary:
        return nps_summary(model, holder, by=by, since=since, until=until)

    @get(
        "/themes",
        summary="Comment themes per NPS category, with counts and the latest verbatims",
        responses=error_responses(*KEYED, 503),
        description=f"Counting: {THEME_COUNTING}. The active version's answers plus live ones "
        "(those the version holds are not counted twice); customers erased since the version "
        "are left out. Per category (promoter, passive, detractor): answers, those with a "
        "comment, those whose comment names no theme, and per theme (keyword lexicon: delivery, "
        "price, quality, support, returns, selection, website) the commented answers mentioning "
        f"it, their share of the category's commented answers and up to {DEFAULT_VERBATIMS} "
        "latest distinct comments (text, time, touchpoint; never who wrote them). "
        "`version_comments` is false for a version trained before comments were kept: then only "
        "live comments count (`note` says so). `live_answers` is null when the store could not "
        "be read.",
        # Reads every live response: keep it off the event loop.
        sync_to_thread=True,
    )
    def themes(
        self,
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
        segment: Annotated[
            str | None,
            Parameter(
                description="only answers of customers whose primary segment (as of the active "
                f"version) is this one; `{NOT_GIVEN}`: customers the version does not know",
            ),
        ] = None,
        since: SinceDay = None,
        until: UntilDay = None,
    ) -> ThemeSummary:
        return nps_themes(model, holder, segment=segment, since=since, until=until)
