"""A customer as the service sees them now: the stored profile of the active version, updated with
the NPS answers and order lines taken in live since that version was trained, and their segments
re-evaluated.

This is what makes a customer who just answered 3 a detractor (with a recovery offer and
detractor-aware recommendations), and a hibernating customer who just ordered a new customer again
(out of the win-back offer), before the nightly run. Pure logic over a profile record, the live
records and the version's numbers; the caller fetches them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from recsvc.domain import customer_table as ct
from recsvc.domain import times
from recsvc.domain.buy_again import LivePurchase, live_purchases
from recsvc.domain.contract import parse_datetime
from recsvc.domain.live import LiveActivity, LiveOrderLine, LiveResponse, latest_revisions
from recsvc.domain.nps import category
from recsvc.domain.rfm import Behaviour, PurchaseModel, new_orders, rescore
from recsvc.domain.segments.catalog import SegmentRules
from recsvc.domain.themes import themes_of
from recsvc.version.opened import ActiveModel


class LiveOrders(msgspec.Struct, frozen=True, kw_only=True):
    """A customer's live order lines the version does not hold (current revisions), with what
    the version knows of their earlier orders."""

    lines: list[LiveOrderLine]
    order_times: list[int] = []  # the version's counted orders of the customer (µs since 1970)
    model: PurchaseModel | None = None  # None: a version without an order history


class CustomerState(msgspec.Struct, kw_only=True):
    customer_id: str
    known: bool  # in the active version's customer table
    record: dict[str, Any]  # the profile, live answers applied
    segments: list[str]
    primary_segment: str | None
    nps_category: str
    live_responses: int  # live answers newer than the version's data
    complaint_theme: str | None  # first theme of the latest comment, when it names one
    live_orders: int = 0  # orders taken in live that the version does not hold
    # Products bought in those orders (neither cancelled nor returned): what recommendations
    # exclude and buy-again counts.
    bought: dict[str, LivePurchase] = {}

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
    model: ActiveModel,
    customer_id: str,
    activity: LiveActivity,
    now: dt.datetime,
    *,
    all_segments: bool = True,
) -> CustomerState:
    """The customer as the service sees them now: their stored profile in `model` (none for a
    customer the version does not know) with their live answers and order lines applied. The one
    place the storefront, offers and profiles get a customer's current state from.
    `all_segments=False`: only the primary segment is worked out (`segments` holds it alone),
    which is all ranking needs. A customer erased after the version's data was suppressed is one
    the version does not know."""
    index = model.profile_index(customer_id, activity.erased_at)
    stored = model.profiles.record(index) if index is not None else None
    orders = None
    if activity.orders:
        history = model.orders
        lines = unheld_lines(model, activity.orders)
        orders = LiveOrders(
            lines=lines,
            order_times=history.order_times(index) if history and index is not None else [],
            model=history.purchases if history else None,
        )
    return customer_state(
        customer_id, stored, activity.answers, model.rules, now, orders, all_segments=all_segments
    )


def unheld_lines(model: ActiveModel, lines: Sequence[LiveOrderLine]) -> list[LiveOrderLine]:
    """The current revision of each live line, without those of orders the version holds (the
    version counts them already, or the shop's own file won over them)."""
    current = latest_revisions(lines)
    if model.orders is None or not current:
        return current
    held = model.orders.holds_orders([line.order_id for line in current])
    return [line for line, h in zip(current, held, strict=True) if not h]


def customer_state(
    customer_id: str,
    stored: Mapping[str, Any] | None,
    responses: Sequence[LiveResponse],
    rules: SegmentRules,
    now: dt.datetime,
    orders: LiveOrders | None = None,
    *,
    all_segments: bool = True,
) -> CustomerState:
    """The current state of one customer (stored profile or, for a new customer, an empty one);
    `all_segments=False`: the primary segment only (the rules stop at the first that matches)."""
    record: dict[str, Any] = dict(stored) if stored is not None else {"customer_id": customer_id}
    applied = apply_live(record, responses, now.date())
    placed, bought = apply_orders(record, orders, now) if orders else (0, {})
    if all_segments:
        segments = rules.memberships(record)
    else:
        primary = rules.primary_segment(record)
        segments = [primary] if primary is not None else []
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
        live_orders=placed,
        bought=bought,
    )


def apply_orders(
    record: dict[str, Any], orders: LiveOrders, now: dt.datetime
) -> tuple[int, dict[str, LivePurchase]]:
    """Rescore the record's purchase behaviour with the live orders (when the version stores how:
    `recsvc.domain.rfm`); returns how many orders and the products they bought."""
    bought = live_purchases(orders.lines)
    placed = new_orders(orders.lines)
    if placed and orders.model is not None:
        old = Behaviour(
            order_count=int(record.get(ct.ORDER_COUNT) or 0),
            first_order_at=_as_datetime(record.get(ct.FIRST_ORDER_AT)),
            last_order_at=_as_datetime(record.get(ct.LAST_ORDER_AT)),
            monetary_value=float(record.get(ct.MONETARY_VALUE) or 0.0),
        )
        rescore(record, old, orders.order_times, placed, orders.model, now)
    return len(placed), bought
