"""Summaries of the active version's NPS answers and the live ones (`recsvc.service.nps_summary`)."""

from __future__ import annotations

from litestar.exceptions import ServiceUnavailableException

from recsvc.domain.live import LiveResponse
from recsvc.errors import StoreUnavailable
from recsvc.service.nps_summary import NpsSummary, parse_query, summarise
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel


def live_responses(store: Store, holder: ModelHolder) -> list[LiveResponse] | None:
    """Every live response, or None when the store cannot be read (the summary says so)."""
    try:
        return list(store.iter_live_responses())
    except StoreUnavailable as exc:
        holder.store_unavailable(exc)
        return None


def nps_summary(
    model: ActiveModel,
    store: Store,
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
    return summarise(
        model.responses,
        live_responses(store, holder),
        query=query,
        model_version=model.version,
        customer_index=model.loaded.customer_index,
        segment_order=model.rules.names,
    )
