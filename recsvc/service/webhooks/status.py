"""What an operator sees of webhook delivery (`GET /v1/webhooks`, `recsvc webhooks list`,
`/metrics`): each destination's queue and state, read from the store, so every worker shows the
deliverer's progress; re-enabling a destination; the events' JSON schemas."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from recsvc.domain import times
from recsvc.domain.webhooks import PAYLOADS
from recsvc.errors import NotFoundError, shown
from recsvc.service.webhooks.destinations import Destination
from recsvc.store.base import Store


class DestinationStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    endpoint: str  # scheme, host and port only: a URL's path or query may carry a token
    events: list[str]
    segments: list[str]  # empty: every segment
    state: str  # "enabled", "retrying" (the head event waits for its next attempt) or "disabled"
    disabled: str | None
    pending: int
    oldest_pending_seconds: float | None
    delivered: int
    failed_attempts: int
    expired: int
    attempts: int  # failed attempts of the event at the head
    next_attempt_at: str | None
    last_status: str | None
    last_attempt_at: str | None
    initial_sync_done: bool


def _endpoint(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def destination_status(store: Store, destinations: list[Destination]) -> list[DestinationStatus]:
    result = []
    now = times.now()
    for destination in destinations:
        state = store.outbox.state(destination.name)
        head = store.outbox.head(destination.name) if state.pending else None
        oldest = (now - times.parse_iso(head.created_at)).total_seconds() if head else None
        if state.disabled is not None:
            label = "disabled"
        elif state.attempts:
            label = "retrying"
        else:
            label = "enabled"
        result.append(
            DestinationStatus(
                name=destination.name,
                endpoint=_endpoint(destination.url),
                events=sorted(destination.events),
                segments=sorted(destination.segments),
                state=label,
                disabled=state.disabled,
                pending=state.pending,
                oldest_pending_seconds=None if oldest is None else round(max(oldest, 0.0), 3),
                delivered=state.delivered,
                failed_attempts=state.failed_attempts,
                expired=state.expired,
                attempts=state.attempts,
                next_attempt_at=state.next_attempt_at,
                last_status=state.last_status,
                last_attempt_at=state.last_attempt_at,
                initial_sync_done=state.filled_seq is not None,
            )
        )
    return result


def enable_destination(
    store: Store, destinations: list[Destination], name: str
) -> DestinationStatus:
    """Re-enable a destination (after a 410): its head event is tried at once."""
    _configured(destinations, name)
    store.outbox.update(name, disabled=None, attempts=0, next_attempt_at=None)
    return _status_of(store, destinations, name)


def resync_destination(
    store: Store, destinations: list[Destination], name: str
) -> DestinationStatus:
    """Send a destination the current members of its segments again (after the waiting events),
    as a new one gets them: for a receiver that lost its copy."""
    _configured(destinations, name)
    store.outbox.update(name, filled_seq=None)
    return _status_of(store, destinations, name)


def _configured(destinations: list[Destination], name: str) -> None:
    if name not in {d.name for d in destinations}:
        raise NotFoundError(f"no webhook destination {shown(name)}")


def _status_of(store: Store, destinations: list[Destination], name: str) -> DestinationStatus:
    return next(s for s in destination_status(store, destinations) if s.name == name)


def schemas() -> str:
    """Every event type's body as JSON Schema (docs/webhook-events.schema.json holds a copy)."""
    documented = {
        event_type: msgspec.json.schema(event_body_type(event_type)) for event_type in PAYLOADS
    }
    return msgspec.json.format(msgspec.json.encode(documented), indent=2).decode() + "\n"


def event_body_type(event_type: str) -> Any:
    """The body of one event type: Standard Webhooks' `{type, timestamp, data}`."""
    name = "".join(part.title() for part in event_type.replace("_", ".").split(".")) + "Event"
    return msgspec.defstruct(
        name,
        [
            ("type", Literal[event_type]),
            ("timestamp", Annotated[str, Meta(description="when the event was made (UTC, Z)")]),
            ("data", PAYLOADS[event_type]),
        ],
        frozen=True,
    )
