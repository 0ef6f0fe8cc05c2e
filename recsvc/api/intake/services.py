"""Taking in NPS responses and order lines: check the body, store what is valid durably, count
duplicates, and queue detractor answers for the webhook destinations (`recsvc.service.webhooks`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from recsvc.domain.live import LiveOrderLine, LiveResponse
from recsvc.errors import InvalidRequest, UnsupportedMediaType, shown
from recsvc.service.intake import (
    BadBody,
    IntakeResult,
    OrderIntakeResult,
    Rejected,
    RejectedLine,
    check_order_lines,
    check_responses,
    parse_body,
)
from recsvc.service.webhooks.destinations import Destination
from recsvc.service.webhooks.events import queue_detractors
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel


def check_json_body(content_type: tuple[str, dict[str, str]]) -> None:
    """A JSON body is announced as `application/json` (UTF-8, the only charset JSON has)."""
    media_type, options = content_type
    charset = options.get("charset", "utf-8").lower()
    if media_type.lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {shown(media_type or '(none)')}"
        )


def take_in(
    body: bytes,
    store: Store,
    received_at: dt.datetime,
    model: ActiveModel | None = None,
    destinations: list[Destination] | None = None,
) -> IntakeResult:
    """Check and store one request's responses, then queue its detractor answers in the outbox of
    every webhook destination that wants them; InvalidRequest when nothing in it is usable.

    A response is a duplicate when its response_id is live in the store or held by `model`, the
    active version (once a version holds an answer, the training run moves it out of live, so the
    store alone no longer knows the id). Store errors (StoreUnavailable) propagate: nothing is
    acknowledged that is not stored and queued. A live duplicate is queued again (the same event
    id): a client repeating a request whose queueing failed loses no event.
    """
    items = _items(body)
    valid, rejected = check_responses(items, received_at, store.erasures.suppression())
    _refuse_when_nothing_valid("response", valid, rejected)
    unheld = [r for r, held in zip(valid, _held(model, valid), strict=True) if not held]
    new_flags = store.answers.add(unheld)
    new = [r for r, is_new in zip(unheld, new_flags, strict=True) if is_new]
    duplicates = len(items) - len(rejected) - len(new)
    if destinations:
        queue_detractors(store, destinations, unheld)
    return IntakeResult(len(new), duplicates, rejected)


def take_in_orders(
    body: bytes, store: Store, received_at: dt.datetime, model: ActiveModel | None = None
) -> OrderIntakeResult:
    """Check and store one request's order lines; InvalidRequest when nothing in it is usable.

    A line is a duplicate when that revision of it (the same content) is live in the store or
    held by `model`, the active version. A line of a customer or product the version does not
    know is stored all the same (the next run merges it once the shop's tables know them). Store
    errors (StoreUnavailable) propagate: nothing is acknowledged that is not stored.
    """
    items = _items(body)
    valid, rejected = check_order_lines(items, received_at, store.erasures.suppression())
    _refuse_when_nothing_valid("order line", valid, rejected)
    held = (
        model.orders.holds_lines([line.key for line in valid])
        if model is not None and model.orders is not None
        else [False] * len(valid)
    )
    unheld: list[LiveOrderLine] = [line for line, h in zip(valid, held, strict=True) if not h]
    accepted = sum(store.orders.add(unheld))
    return OrderIntakeResult(accepted, len(items) - len(rejected) - accepted, rejected)


def _refuse_when_nothing_valid(
    noun: str, valid: list[Any], rejected: list[Rejected] | list[RejectedLine]
) -> None:
    """A request none of whose items is usable is a 400 naming the first twenty problems."""
    if not valid and rejected:
        raise InvalidRequest(
            f"no valid {noun}: "
            + "; ".join(f"[{r.index}] {', '.join(r.errors)}" for r in rejected[:20])
        )


def _items(body: bytes) -> list[object]:
    try:
        return parse_body(body)
    except BadBody as exc:
        raise InvalidRequest(str(exc)) from None


def _held(model: ActiveModel | None, responses: list[LiveResponse]) -> list[bool]:
    """Per response: whether the version's NPS answers hold its response_id."""
    if model is None or model.responses is None or not responses:
        return [False] * len(responses)
    return model.responses.holds([r.response_id for r in responses])
