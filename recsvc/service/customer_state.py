"""A customer as the service sees them now: the stored profile of the active version, updated with
NPS answers taken in live since that version was trained, and their segments re-evaluated.

This is what makes a customer who just answered 3 a detractor (with a recovery offer and
detractor-aware recommendations) before the nightly run. Pure logic over a profile record, the
live responses and the segment rules; the caller fetches them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from recsvc.domain import customer_table as ct
from recsvc.domain import times
from recsvc.domain.contract import parse_datetime
from recsvc.domain.live import LiveResponse
from recsvc.domain.nps import category
from recsvc.domain.segments.catalog import SegmentRules
from recsvc.domain.themes import themes_of
from recsvc.version.opened import ActiveModel


class CustomerState(msgspec.Struct, kw_only=True):
    customer_id: str
    known: bool  # in the active version's customer table
    record: dict[str, Any]  # the profile, live answers applied
    segments: list[str]
    primary_segment: str | None
    nps_category: str
    live_responses: int  # live answers newer than the version's data
    complaint_theme: str | None  # first theme of the latest comment, when it names one

    def model_attributes(self) -> dict[str, object]:
        """The recommender's customer features that live answers can change."""
        return {"nps_category": self.nps_category, "primary_segment": self.primary_segment}


def _as_datetime(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value)
    return None


def apply_live(record: dict[str, Any], responses: Sequence[LiveResponse], today: dt.date) -> int:
    """Fold live answers newer than the record's last answer into the record; returns how many.

    An older live answer is one the version already holds (or that came in out of order): the
    record's values, the complaint theme of its latest comment included, already count it.
    """
    last = _as_datetime(record.get(ct.LAST_RESPONSE_AT))
    newer = sorted(
        (r for r in responses if last is None or r.responded_at > last),
        key=lambda r: (r.responded_at, r.response_id),
    )
    if not newer:
        return 0
    commented = [r for r in newer if r.comment and r.comment.strip()]
    if commented:
        themes = themes_of(commented[-1].comment)
        record[ct.COMPLAINT_THEME] = themes[0] if themes else None
    latest = newer[-1]
    record[ct.NPS_SCORE] = latest.score
    record[ct.NPS_CATEGORY] = category(latest.score).value
    record[ct.NPS_RESPONSES] = int(record.get(ct.NPS_RESPONSES) or 0) + len(newer)
    record[ct.LAST_RESPONSE_AT] = times.iso(latest.responded_at)
    record[ct.DAYS_SINCE_LAST_RESPONSE] = max((today - latest.responded_at.date()).days, 0)
    for response in newer:
        if response.touchpoint == "pre_delivery":
            record[ct.PRE_DELIVERY_SCORE] = response.score
        elif response.touchpoint == "post_delivery":
            record[ct.POST_DELIVERY_SCORE] = response.score
    pre, post = record.get(ct.PRE_DELIVERY_SCORE), record.get(ct.POST_DELIVERY_SCORE)
    if pre is not None and post is not None:
        record[ct.DELIVERY_GAP] = post - pre
    return len(newer)


def current_state(
    model: ActiveModel, customer_id: str, answers: Sequence[LiveResponse], today: dt.date
) -> CustomerState:
    """The customer as the service sees them now: their stored profile in `model` (none for a
    customer the version does not know) with their live `answers` applied. The one place the
    storefront, offers and profiles get a customer's current state from."""
    index = model.profiles.index_of(customer_id)
    stored = model.profiles.record(index) if index is not None else None
    return customer_state(customer_id, stored, answers, model.rules, today)


def customer_state(
    customer_id: str,
    stored: Mapping[str, Any] | None,
    responses: Sequence[LiveResponse],
    rules: SegmentRules,
    today: dt.date,
) -> CustomerState:
    """The current state of one customer (stored profile or, for a new customer, an empty one)."""
    record: dict[str, Any] = dict(stored) if stored is not None else {"customer_id": customer_id}
    applied = apply_live(record, responses, today)
    segments = rules.memberships(record)
    record[ct.SEGMENTS] = segments
    record[ct.PRIMARY_SEGMENT] = segments[0] if segments else None
    return CustomerState(
        customer_id=customer_id,
        known=stored is not None,
        record=record,
        segments=segments,
        primary_segment=segments[0] if segments else None,
        nps_category=str(record.get(ct.NPS_CATEGORY) or "unknown"),
        live_responses=applied,
        complaint_theme=record.get(ct.COMPLAINT_THEME),
    )
