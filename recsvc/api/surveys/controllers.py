"""`GET /v1/surveys/due`: who to ask now at a touchpoint, each with the trigger; `POST
/v1/surveys/sent` and `POST /v1/surveys/declined`: who was asked, who declined (idempotent)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import JSONBody, Parameter

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.surveys.schemas import DeclinesBody, Recorded, SendsBody, SurveysDue
from recsvc.api.surveys.services import record_declines, record_sends, surveys_due
from recsvc.domain.surveys import Touchpoint
from recsvc.service.surveys import MAX_LIMIT, SurveyPlanner
from recsvc.version.opened import ActiveModel

DEFAULT_LIMIT = 100


class SurveyController(Controller):
    path = "/v1/surveys"
    tags = ["surveys"]
    before_request = RequireScope("survey")
    security = SECURITY

    @get(
        "/due",
        summary="Who to survey now at a touchpoint, each with the trigger that makes them due",
        responses=error_responses(*KEYED, 503),
        description="Customers the rules (RECSVC_SURVEYS_FILE) make due now: a trigger fired "
        "(pre-delivery: an order placed and not delivered; post-delivery: delivered N days ago; "
        "relationship: the cadence, or an experiment's re-survey, the same for treatment and "
        "holdout) and the throttle lets them be asked (a send or an NPS answer in the last 90 "
        "days, or a decline in the last 30, holds them). At most `limit`, and no more than what "
        "the daily cap leaves for today (UTC). When more are due, places are shared across "
        "segments in proportion to their NPS margin of error, the oldest trigger first; the "
        "reply names the trigger (`reason`) and never the segment or an answer. Record whom you "
        "asked with POST /v1/surveys/sent: they leave the list on every worker.",
        sync_to_thread=True,
    )
    def due(
        self,
        surveys: Injected[SurveyPlanner],
        model: Injected[ActiveModel],
        touchpoint: Annotated[
            Touchpoint, Parameter(description="pre_delivery, post_delivery or relationship")
        ],
        limit: Annotated[
            int,
            Parameter(ge=1, le=MAX_LIMIT, description=f"customers at most, 1..{MAX_LIMIT}"),
        ] = DEFAULT_LIMIT,
    ) -> SurveysDue:
        return surveys_due(surveys, model, touchpoint, limit)

    @post(
        "/sent",
        summary="Record whom a survey was sent to (idempotent per customer, touchpoint and day)",
        responses=error_responses(*KEYED, 413, 415, 503),
        description="Stored durably before the reply; the throttle then holds on every worker "
        "and replica and across restarts. The same customer, touchpoint and UTC day sent again "
        "is a duplicate. `sent_at` defaults to now; it may be up to 365 days old, not in the "
        "future. The sends of a day count against its daily cap.",
        status_code=200,
        sync_to_thread=True,
    )
    def sent(self, surveys: Injected[SurveyPlanner], data: JSONBody[SendsBody]) -> Recorded:
        return record_sends(surveys, data)

    @post(
        "/declined",
        summary="Record who declined a survey (idempotent per customer, touchpoint and day)",
        responses=error_responses(*KEYED, 413, 415, 503),
        description="Stored durably before the reply. A decline that is the customer's latest "
        "contact holds them for `decline_throttle_days` (30 by default) instead of the ask's 90. "
        "`declined_at` defaults to now; it may be up to 365 days old, not in the future.",
        status_code=200,
        sync_to_thread=True,
    )
    def declined(self, surveys: Injected[SurveyPlanner], data: JSONBody[DeclinesBody]) -> Recorded:
        return record_declines(surveys, data)
