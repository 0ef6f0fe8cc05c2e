"""The surveys area's bodies and replies (msgspec Structs of `recsvc.service.surveys`): one
definition for the checks, the replies and the OpenAPI document."""

from __future__ import annotations

from recsvc.service.surveys import (
    DeclinesBody,
    Recorded,
    SendsBody,
    SurveyDecline,
    SurveyDue,
    SurveysDue,
    SurveySend,
)

__all__ = [
    "DeclinesBody",
    "Recorded",
    "SendsBody",
    "SurveyDecline",
    "SurveyDue",
    "SurveySend",
    "SurveysDue",
]
