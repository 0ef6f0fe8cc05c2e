"""Summaries of the active version's NPS answers and the live ones (`recsvc.service.nps_summary`),
and what their comments talk about (`recsvc.service.nps_themes`)."""

from __future__ import annotations

from litestar.exceptions import ServiceUnavailableException

from recsvc.service.nps_summary import NpsSummary, parse_query, summarise
from recsvc.service.nps_themes import (
    DEFAULT_VERBATIMS,
    ThemeSummary,
    parse_theme_query,
    theme_summary,
)
from recsvc.service.runtime import ModelHolder
from recsvc.version.opened import ActiveModel


def nps_summary(
    model: ActiveModel,
    holder: ModelHolder,
    *,
    by: str | None,
    since: str | None,
    until: str | None,
) -> NpsSummary:
    query = parse_query(by, since, until)  # bad parameters fail before any reading
    if model.responses is None:
        raise ServiceUnavailableException(
            f"model version {model.version} has no NPS answer table: retrain to add it"
        )
    masked = holder.masked_rows(model)
    hidden = set(masked.tolist())

    def customer_index(customer_id: str) -> int | None:
        # A returning erased customer's new answer is not grouped by what the version held.
        index = model.loaded.customer_index(customer_id)
        return None if index in hidden else index

    return summarise(
        model.responses,
        holder.all_live_answers(),
        query=query,
        model_version=model.version,
        customer_index=customer_index,
        segment_order=model.rules.names,
        masked=masked,
    )


def nps_themes(
    model: ActiveModel,
    holder: ModelHolder,
    *,
    segment: str | None,
    since: str | None,
    until: str | None,
    verbatims: int = DEFAULT_VERBATIMS,
) -> ThemeSummary:
    """Comment themes per NPS category, with the live answers and masking `nps_summary` uses."""
    # Bad parameters fail before any reading, and before a version without answers is a 503.
    parse_theme_query(segment, since, until, segments=model.rules.names, verbatims=verbatims)
    if model.responses is None:
        raise ServiceUnavailableException(
            f"model version {model.version} has no NPS answer table: retrain to add it"
        )
    return theme_summary(
        model,
        holder.all_live_answers(),
        masked=holder.masked_rows(model),
        segment=segment,
        since=since,
        until=until,
        verbatims=verbatims,
    )
