"""Turning what happened into outbox events for one destination: new detractor answers (at
intake), and each activation in the membership journal (`model.published` and the members who
entered or left each segment, in batches). Every event's id is derived from what it reports, so
an event built twice (after a crash) is the same message, never a new one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from recsvc.domain import times
from recsvc.domain.live import LiveResponse
from recsvc.domain.nps import NpsCategory, category
from recsvc.domain.privacy import Suppression
from recsvc.domain.webhooks import (
    DETRACTOR,
    ERASED,
    PUBLISHED,
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
    CustomerErased,
    DetractorResponse,
    MemberChange,
    ModelPublished,
    OutboxEvent,
    event_id,
    new_event,
)
from recsvc.service.webhooks.destinations import Destination
from recsvc.store.base import Store


class SegmentDelta(Protocol):
    @property
    def segment(self) -> str: ...
    @property
    def entered(self) -> Sequence[str]: ...
    @property
    def exited(self) -> Sequence[str]: ...


class Activation(Protocol):
    """One entry of the store's membership journal (`Store.memberships`)."""

    @property
    def seq(self) -> int: ...
    @property
    def version(self) -> str: ...
    @property
    def previous(self) -> str | None: ...
    @property
    def activated_at(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def changes(self) -> Sequence[SegmentDelta]: ...


def detractors(responses: list[LiveResponse]) -> list[LiveResponse]:
    return [r for r in responses if category(r.score) is NpsCategory.DETRACTOR]


def detractor_events(destination: Destination, responses: list[LiveResponse]) -> list[OutboxEvent]:
    if not destination.wants(DETRACTOR):
        return []
    created = times.iso(times.now())
    return [
        new_event(
            DETRACTOR,
            DetractorResponse(
                response_id=r.response_id,
                customer_id=r.customer_id,
                score=r.score,
                responded_at=times.iso(r.responded_at),
                touchpoint=r.touchpoint,
                order_id=r.order_id,
                comment=r.comment,
            ),
            id=event_id(destination.name, DETRACTOR, r.response_id),
            created_at=created,
            customers=[r.customer_id],
        )
        for r in detractors(responses)
    ]


def queue_erasure(
    store: Store, destinations: list[Destination], customer_id: str, erased_at: str, erasure_id: str
) -> int:
    """Tell every destination that wants it that a customer was erased (queued after their
    waiting events left the outbox, so it is the last event about them). Returns how many."""
    queued = 0
    for destination in destinations:
        if not destination.wants(ERASED):
            continue
        event = new_event(
            ERASED,
            CustomerErased(customer_id=customer_id, erased_at=erased_at, erasure_id=erasure_id),
            id=event_id(destination.name, ERASED, erasure_id),
            created_at=times.iso(times.now()),
            customers=[],  # the notice itself outlives a later erasure of the same customer
        )
        store.outbox.append(destination.name, [event])
        queued += 1
    return queued


def queue_detractors(
    store: Store, destinations: list[Destination], responses: list[LiveResponse]
) -> int:
    """Put new detractor answers into the outbox of every destination that wants them, durably
    (the intake calls this before its 202). Returns how many events were queued."""
    queued = 0
    for destination in destinations:
        events = detractor_events(destination, responses)
        store.outbox.append(destination.name, events)
        queued += len(events)
    return queued


def _not_erased_since(ids: Sequence[str], activated_at: str, suppression: Suppression) -> list[str]:
    """The ids without customers erased at or after the activation: the journal entry was written
    before it, and their erasure may not have reached the journal yet. Customers erased earlier
    are already absent from it, unless they came back after their erasure (a new relationship)."""
    if not suppression:
        return list(ids)
    moment = times.parse_iso(activated_at)
    kept = []
    for customer_id in ids:
        erased_at = suppression.erased_at(customer_id)
        if erased_at is None or erased_at < moment:
            kept.append(customer_id)
    return kept


def _batches(ids: list[str], size: int) -> Iterator[tuple[int, int, list[str]]]:
    count = max((len(ids) + size - 1) // size, 1) if ids else 0
    for number in range(count):
        yield number + 1, count, ids[number * size : (number + 1) * size]


def activation_events(
    destination: Destination, activation: Activation, suppression: Suppression
) -> list[OutboxEvent]:
    """`model.published`, then per segment the entered and exited members in batches."""
    events = []
    created = times.iso(times.now())
    if destination.wants(PUBLISHED):
        events.append(
            new_event(
                PUBLISHED,
                ModelPublished(
                    version=activation.version,
                    previous_version=activation.previous,
                    activated_at=activation.activated_at,
                    reason=activation.reason,
                ),
                id=event_id(destination.name, PUBLISHED, activation.seq),
                created_at=created,
                customers=[],
            )
        )
    for change in activation.changes:
        if not destination.wants_segment(change.segment):
            continue
        for event_type, ids in ((SEGMENT_EXITED, change.exited), (SEGMENT_ENTERED, change.entered)):
            if not destination.wants(event_type):
                continue
            events.extend(
                _member_events(
                    destination,
                    event_type,
                    change.segment,
                    _not_erased_since(ids, activation.activated_at, suppression),
                    version=activation.version,
                    previous=activation.previous,
                    activated_at=activation.activated_at,
                    source=activation.seq,
                    created=created,
                )
            )
    return events


def initial_sync_events(
    destination: Destination,
    members: Iterable[tuple[str, list[str]]],
    *,
    version: str,
    activated_at: str,
    seq: int,
    suppression: Suppression,
) -> list[OutboxEvent]:
    """A new destination's first events: every current member of its segments, as entered."""
    if not destination.wants(SEGMENT_ENTERED):
        return []
    created = times.iso(times.now())
    events = []
    for segment, ids in members:
        if not destination.wants_segment(segment):
            continue
        events.extend(
            _member_events(
                destination,
                SEGMENT_ENTERED,
                segment,
                _not_erased_since(ids, activated_at, suppression),
                version=version,
                previous=None,
                activated_at=activated_at,
                source=f"initial-{seq}",
                created=created,
                initial_sync=True,
            )
        )
    return events


def _member_events(
    destination: Destination,
    event_type: str,
    segment: str,
    ids: list[str],
    *,
    version: str,
    previous: str | None,
    activated_at: str,
    source: object,
    created: str,
    initial_sync: bool = False,
) -> list[OutboxEvent]:
    return [
        new_event(
            event_type,
            MemberChange(
                segment=segment,
                version=version,
                previous_version=previous,
                activated_at=activated_at,
                customer_ids=batch,
                batch=number,
                batches=count,
                initial_sync=initial_sync,
            ),
            id=event_id(destination.name, source, segment, event_type, number),
            created_at=created,
            customers=batch,
        )
        for number, count, batch in _batches(ids, destination.batch_size)
    ]
