"""The surveys area's services: the due list from the worker's model, sends and declines
recorded in the store (`recsvc.service.surveys`)."""

from __future__ import annotations

from recsvc.api.surveys.schemas import DeclinesBody, Recorded, SendsBody, SurveysDue
from recsvc.domain import times
from recsvc.domain.surveys import Touchpoint
from recsvc.service.surveys import SurveyPlanner
from recsvc.version.opened import ActiveModel


def surveys_due(
    planner: SurveyPlanner, model: ActiveModel, touchpoint: Touchpoint, limit: int
) -> SurveysDue:
    return planner.due(model, touchpoint, limit, times.now())


def record_sends(planner: SurveyPlanner, body: SendsBody) -> Recorded:
    return planner.record("sent", body.sends, times.now())


def record_declines(planner: SurveyPlanner, body: DeclinesBody) -> Recorded:
    return planner.record("declined", body.declines, times.now())
