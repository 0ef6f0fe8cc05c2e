"""The current state of a customer for the API: stored profile + live answers + segment rules,
and the active model every customer endpoint answers from."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request
from litestar.exceptions import ServiceUnavailableException

from recsvc.domain.live import LiveResponse
from recsvc.errors import StoreUnavailable
from recsvc.service.customer_state import CustomerState, customer_state
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel


def active_model(holder: ModelHolder) -> ActiveModel:
    """The model the request is answered from (taken once per request); 503 while there is none."""
    current = holder.current
    if current is None:
        raise ServiceUnavailableException(
            "no model version is active yet: run the training job first"
        )
    return current


def live_answers(store: Store, holder: ModelHolder, customer_id: str) -> list[LiveResponse]:
    """The customer's live answers; none when the store is down (reads keep serving, degraded)."""
    try:
        return store.live_responses(customer_id)
    except StoreUnavailable as exc:
        holder.store_unavailable(exc)
        return []


def current_state(
    model: ActiveModel, store: Store, holder: ModelHolder, customer_id: str
) -> CustomerState:
    index = model.profiles.index_of(customer_id)
    stored = model.profiles.record(index) if index is not None else None
    today = dt.datetime.now(dt.UTC).date()
    return customer_state(
        customer_id, stored, live_answers(store, holder, customer_id), model.rules, today
    )


def install(state: Any) -> None:
    """Hooks the other controllers call: live attributes for fold-in, the profile overlay. Both
    take the model the request already holds, so one response never mixes two versions."""
    holder: ModelHolder = state.holder
    store: Store = state.store

    def live_attributes(model: ActiveModel, customer_id: str) -> dict[str, object]:
        answers = live_answers(store, holder, customer_id)
        if not answers:
            return {}
        index = model.profiles.index_of(customer_id)
        stored = model.profiles.record(index) if index is not None else None
        today = dt.datetime.now(dt.UTC).date()
        return customer_state(customer_id, stored, answers, model.rules, today).model_attributes()

    def profile_overlay(
        model: ActiveModel, customer_id: str, record: dict[str, Any]
    ) -> dict[str, Any]:
        answers = live_answers(store, holder, customer_id)
        if not answers:
            return record
        today = dt.datetime.now(dt.UTC).date()
        return customer_state(customer_id, record, answers, model.rules, today).record

    state.live_attributes = live_attributes
    state.profile_overlay = profile_overlay


def state_of(request: Request[Any, Any, Any]) -> tuple[ModelHolder, Store]:
    return request.app.state.holder, request.app.state.store
