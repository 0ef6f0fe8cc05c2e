"""Privacy requests below HTTP: erase a customer everywhere the service reaches, and gather
everything the product holds about one (`recsvc.domain.privacy` has the rules and the registry).

An erasure is durable in steps that can each be repeated: (1) a `started` entry in the erasure log,
which every worker reads as the suppression list, so from then on every version built before it
masks the customer, the intake refuses their old data and the next training run drops their rows;
(2) their live and archived records and their membership history leave the store; (3) a `completed` entry says what went. A
process killed after (1) leaves the customer masked but records in the store: repeating the request
runs every step again and completes it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np

from recsvc.domain import customer_table as ct
from recsvc.domain import times
from recsvc.domain.experiments import RECOMMENDATIONS_EXPERIMENT, Exposure
from recsvc.domain.live import LiveActivity, LiveOrderLine, LiveResponse
from recsvc.domain.nps import NpsCategory, nps_from_counts
from recsvc.domain.privacy import PERSONAL_DATA, Erasure, customer_hash, masks
from recsvc.domain.rfm import from_micros
from recsvc.domain.surveys import Contact
from recsvc.errors import ArtifactError, NotFoundError
from recsvc.service.customer_state import current_state
from recsvc.service.nps_history import version_answers
from recsvc.service.webhooks.destinations import Destination
from recsvc.service.webhooks.events import queue_erasure
from recsvc.store.base import Store, VersionInfo
from recsvc.store.memberships import Spell
from recsvc.version.artifacts import load_array
from recsvc.version.erased import ErasedRows, erasures_as_of
from recsvc.version.opened import ActiveModel
from recsvc.version.profiles import Profiles, SegmentInfo

T = TypeVar("T")

# What an erasure log entry counts: records removed, live and archived together.
ANSWERS_REMOVED = "answers"
ORDERS_REMOVED = "order_lines"
MEMBERSHIPS_REMOVED = "membership_spells"  # spells in a segment, from the membership journal
WEBHOOK_EVENTS_REMOVED = "webhook_events"  # waiting events that named them (dropped or rewritten)
EXPOSURES_REMOVED = "experiment_exposures"  # lines of the exposure log (offers shown or withheld)
SURVEYS_REMOVED = "survey_contacts"  # sends and declines in the survey log


def erase_customer(
    store: Store,
    customer_id: str,
    *,
    requested_by: str,
    now: dt.datetime,
    destinations: list[Destination] | None = None,
) -> Erasure:
    """Erase the customer from the store (see the module docstring); returns the `completed` entry.
    StoreUnavailable propagates: the caller answers 503 and the client repeats the request."""
    started = Erasure(
        erasure_id=uuid.uuid4().hex,
        customer_hash=customer_hash(customer_id),
        erased_at=now,
        requested_by=requested_by,
        state="started",
    )
    store.erasures.append(started)
    removed = {
        ANSWERS_REMOVED: store.answers.erase(customer_id),
        ORDERS_REMOVED: store.orders.erase(customer_id),
        MEMBERSHIPS_REMOVED: store.memberships.erase(customer_id),
        WEBHOOK_EVENTS_REMOVED: store.outbox.erase(customer_id),
        EXPOSURES_REMOVED: store.exposures.erase(customer_id),
        SURVEYS_REMOVED: store.surveys.erase(customer_id),
    }
    # Receivers of earlier events hold data about them: each destination taking `customer.erased`
    # is told, as the last event about them (GDPR article 19).
    queue_erasure(store, destinations or [], customer_id, times.iso(now), started.erasure_id)
    completed = msgspec.structs.replace(started, state="completed", removed=removed)
    store.erasures.append(completed)
    return completed


# --- what masking changes in whole-version numbers -----------------------------------------------


def visible_segments(profiles: Profiles, masked: np.ndarray) -> list[SegmentInfo]:
    """The version's segments without the masked customers: sizes, primary sizes, shares and NPS
    counted again without them (their stored records say which segments and category they had)."""
    segments = profiles.segments()
    if masked.size == 0:
        return segments
    records = [profiles.record(int(row)) for row in masked.tolist()]
    total = max(len(profiles) - int(masked.size), 1)
    shown = []
    for info in segments:
        members = [r for r in records if info.name in (r.get(ct.SEGMENTS) or ())]
        primary = sum(1 for r in members if r.get(ct.PRIMARY_SEGMENT) == info.name)
        counts = [
            sum(1 for r in members if r.get(ct.NPS_CATEGORY) == category.value)
            for category in (NpsCategory.PROMOTER, NpsCategory.PASSIVE, NpsCategory.DETRACTOR)
        ]
        nps = info.nps
        size = info.size - len(members)
        shown.append(
            msgspec.structs.replace(
                info,
                size=size,
                primary_size=info.primary_size - primary,
                share=size / total,
                nps=nps_from_counts(
                    nps.promoters - counts[0], nps.passives - counts[1], nps.detractors - counts[2]
                ),
            )
        )
    return shown


# --- the subject access export -------------------------------------------------------------------


class VersionMembership(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    created_at: str
    active: bool
    segments: list[str]
    primary_segment: str | None


class HolderReport(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    holds: str
    # Found for this customer (versions: stored versions holding them, masked ones included);
    # None where the service cannot look (a worker's memory, the training machine, the shop).
    records: int | None


class WaitingEvent(msgspec.Struct, frozen=True, kw_only=True):
    destination: str
    id: str
    type: str
    created_at: str
    body: str  # the JSON that will be POSTed


class Exposed(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the exposure log, as the customer's document shows it."""

    at: dt.datetime
    experiment: str
    offer_id: str
    arm: str
    version: str
    segment: str | None

    @classmethod
    def of(cls, line: Exposure) -> Exposed:
        return cls(
            at=line.at,
            experiment=line.experiment,
            offer_id=line.offer_id,
            arm=line.arm,
            version=line.version,
            segment=line.segment,
        )


class CustomerData(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the product holds about one customer (GDPR article 15), as one document."""

    customer_id: str
    generated_at: dt.datetime
    erased_at: dt.datetime | None
    model_version: str | None
    profile: dict[str, Any] | None  # the active version's profile with live records applied
    segments: list[str]
    primary_segment: str | None
    segment_history: list[VersionMembership]  # per stored version that holds (and shows) them
    masked_in_versions: list[str]  # stored versions still holding data of theirs, hidden
    membership_history: list[Spell]  # their spells in segments, activation by activation
    nps_answers: list[LiveResponse]  # taken in live (comments included), live and archived
    # The active version's answers with their comments and themes (none from versions trained
    # before comments were kept).
    version_nps_answers: list[dict[str, Any]]
    order_lines: list[LiveOrderLine]  # taken in live, live and archived (every revision)
    version_orders: list[str]  # the active version's counted orders of theirs (times)
    # The exposure log's lines of the customer: each offer in an experiment shown to them or
    # withheld (the holdout), and the pages of the personalisation experiment.
    offers_shown: list[Exposed]
    recommendations_served: list[Exposed]
    survey_contact: Contact | None = None  # their latest survey send and decline
    webhook_events: list[WaitingEvent] = []  # events about them waiting for a webhook destination
    holders: list[HolderReport]  # per registered holder, what it holds of the customer


def customer_data(
    store: Store,
    model: ActiveModel | None,
    customer_id: str,
    activity: LiveActivity,
    now: dt.datetime,
) -> CustomerData:
    """Gather the document: the store's live and archived records, the active version's profile,
    answers and orders, and the customer's segments in every stored version (a Redis store caches
    each stored version on this machine to read it)."""
    erased_at = activity.erased_at
    # `activity` holds only what is dated after an erasure (`ModelHolder.live`); so may the archives.
    archived = LiveActivity(
        _own(store.answers.iter_archived(), customer_id),
        _own(store.orders.iter_archived(), customer_id),
        erased_at,
    ).after_erasure()
    answers = [*archived.answers, *activity.answers]
    lines = [*archived.orders, *activity.orders]
    profile, segments, primary = None, [], None
    version_answers: list[dict[str, Any]] = []
    version_orders: list[str] = []
    index = model.profile_index(customer_id, erased_at) if model is not None else None
    if model is not None and (index is not None or activity):
        state = current_state(model, customer_id, activity, now)
        segments, primary = state.segments, state.primary_segment
        if index is not None:
            profile = state.record
            version_answers = _version_answers(model, index)
            version_orders = _version_orders(model, index)
    history, masked = _segment_history(store, customer_id, erased_at)
    spells = [
        spell
        for spell in store.memberships.spells(customer_id=customer_id)
        if erased_at is None or times.parse_iso(spell.entered_at) > erased_at
    ]
    waiting = [
        WaitingEvent(
            destination=destination,
            id=event.id,
            type=event.type,
            created_at=event.created_at,
            body=event.body,
        )
        for destination, event in store.outbox.mentioning(customer_id)
    ]
    # The whole log is read: a request about one customer is rare, the log is not indexed by them.
    exposures = [
        Exposed.of(line)
        for line in store.exposures.read()
        if line.customer_id == customer_id and (erased_at is None or line.at > erased_at)
    ]
    contact = store.surveys.contacts().get(customer_id)
    found = {
        "webhook_outbox": len(waiting),
        "exposure_log": len(exposures),
        "survey_log": int(contact is not None and contact.asked is not None)
        + int(contact is not None and contact.declined is not None),
        "live_answers": len(activity.answers),
        "archived_answers": len(archived.answers),
        "live_orders": len(activity.orders),
        "archived_orders": len(archived.orders),
        "versions": len(history) + len(masked),
        "membership_history": len(spells),
    }
    return CustomerData(
        customer_id=customer_id,
        generated_at=now,
        erased_at=erased_at,
        model_version=model.version if model is not None else None,
        profile=profile,
        segments=segments,
        primary_segment=primary,
        segment_history=history,
        masked_in_versions=masked,
        membership_history=spells,
        nps_answers=answers,
        version_nps_answers=version_answers,
        order_lines=lines,
        version_orders=version_orders,
        offers_shown=[x for x in exposures if x.experiment != RECOMMENDATIONS_EXPERIMENT],
        recommendations_served=[x for x in exposures if x.experiment == RECOMMENDATIONS_EXPERIMENT],
        survey_contact=contact,
        webhook_events=waiting,
        holders=[
            HolderReport(name=h.name, holds=h.holds, records=found.get(h.name))
            for h in PERSONAL_DATA
        ],
    )


def _own(records: Any, customer_id: str) -> list[Any]:
    return [r for r in records if r.customer_id == customer_id]


def _version_answers(model: ActiveModel, index: int) -> list[dict[str, Any]]:
    return [
        {
            "score": answer.score,
            "responded_at": answer.responded_at,
            "touchpoint": answer.touchpoint,
            "comment": answer.comment,
            "themes": answer.themes,
        }
        for answer in version_answers(model, index)
    ]


def _version_orders(model: ActiveModel, index: int) -> list[str]:
    history = model.orders
    if history is None:
        return []
    return [from_micros(t).isoformat() for t in history.order_times(index)]


def _segment_history(
    store: Store, customer_id: str, erased_at: dt.datetime | None
) -> tuple[list[VersionMembership], list[str]]:
    """The customer's segments in each stored version that shows them, and the versions that
    hold them masked (erased after the version's data was suppressed)."""
    history, masked = [], []
    for info, as_of, profiles in _stored_versions(store, Profiles.open):
        index = profiles.index_of(customer_id)
        if index is None:
            continue
        if masks(erased_at, as_of):
            masked.append(info.version)
            continue
        record = profiles.record(index)
        history.append(
            VersionMembership(
                version=info.version,
                created_at=info.created_at,
                active=info.active,
                segments=list(record.get(ct.SEGMENTS) or ()),
                primary_segment=record.get(ct.PRIMARY_SEGMENT),
            )
        )
    return history, masked


def _stored_versions(
    store: Store, read: Callable[[Path], T]
) -> Iterator[tuple[VersionInfo, dt.datetime | None, T]]:
    """Each stored version, when its data was suppressed (`erasures_as_of`) and what `read` takes
    from its files; one pruned meanwhile or damaged is skipped (it serves nobody)."""
    for info in store.list_versions():
        try:
            path = store.version_path(info.version)
            as_of = erasures_as_of(store.manifest(info.version).notes)
            value = read(path)
        except (ArtifactError, NotFoundError):
            continue
        yield info, as_of, value


def _customer_ids(directory: Path) -> np.ndarray:
    return load_array(directory / "customer_ids.npy", "U")


# --- old versions ---------------------------------------------------------------------------------


class HeldVersion(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    active: bool
    erased_customers: int  # customers it holds who were erased after its data
    removed: bool


def versions_holding_erased(store: Store, *, remove: bool) -> list[HeldVersion]:
    """Every stored version that still holds customers erased after its data was suppressed
    (masked when served), removed if `remove`, except the active one: the next published run
    replaces it (or activate a newer one and run this again)."""
    suppression = store.erasures.suppression()
    if not suppression:
        return []
    held = []
    for info, as_of, ids in _stored_versions(store, _customer_ids):
        count = int(ErasedRows(ids, as_of).rows(suppression).size)
        if not count:
            continue
        removed = remove and not info.active
        if removed:
            store.remove(info.version)
        held.append(
            HeldVersion(
                version=info.version, active=info.active, erased_customers=count, removed=removed
            )
        )
    return held
