"""Who to survey next (`GET /v1/surveys/due`) and the record of who was asked or declined
(`POST /v1/surveys/sent`, `POST /v1/surveys/declined`).

A customer is due at a touchpoint when a trigger fires and the throttle lets them be asked:

- the throttle (`recsvc.domain.surveys.held_until`) reads their latest contact: a send or a decline
  in the store's survey log, or an NPS answer (the version's, or one taken in live: an answer is an
  ask even when its send was never recorded);
- pre- and post-delivery triggers read orders: the version's recent orders (`recent_orders.json`,
  every order placed in the last `RECENT_ORDER_DAYS` before its data's end, from the shop's files
  and the live lines the run took in), and orders from the live order lines and the recently
  archived ones. An order in both is the version's unless one of its lines has a revision the
  version did not take in (sent live after the run: newer), which then wins;
- relationship: the customer's latest contact (or first order) is `relationship_cadence_days`
  old; before that, the experiments' re-survey: a customer assigned to an experiment's arm
  `resurvey_after_days` ago who has not answered since. The arm plays no part in either.

When more are due than the request's limit or what is left of the daily cap, the places are
shared across the customers' primary segments in proportion to each segment's NPS margin of error
(`recsvc.domain.surveys.allocate`), the oldest trigger first within a segment. The reply names
the trigger, never the segment or an answer.

What a version contributes (first order, latest answer, primary segment per customer, the
experiments' assignments, its recent orders, the archived lines) is computed once per version,
under a lock, as numpy arrays; a request then overlays the live answers and the survey log on them
without a loop over the customers.
"""

from __future__ import annotations

import datetime as dt
import threading
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import msgspec
import numpy as np
from msgspec import Meta

from recsvc.domain import times
from recsvc.domain.contract import FUTURE_SKEW, ID_RULE, MAX_ID_LENGTH, id_problem
from recsvc.domain.live import LiveOrderLine, LiveResponse, latest_revisions
from recsvc.domain.surveys import (
    EXPERIMENT_RESURVEY,
    MAX_BACKDATE_DAYS,
    RELATIONSHIP_CADENCE,
    Contact,
    EventKind,
    SurveyEvent,
    SurveyRules,
    Touchpoint,
    allocate,
)
from recsvc.errors import ConfigError, InvalidRequest, StoreUnavailable
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store
from recsvc.version.experiments import read_assignments
from recsvc.version.opened import ActiveModel
from recsvc.version.recent_orders import RecentOrdersFile, read_recent_orders

DEFAULT_SURVEYS_PATH = Path(__file__).parents[1] / "defaults" / "surveys.toml"
MAX_LIMIT: Final = 1000
MAX_EVENTS: Final = 1000
NOT_IN_VERSION: Final = "(not in the version)"  # the stratum of customers the version lacks
DAY: Final = 86_400
NONE: Final = np.iinfo(np.int64).min // 4  # "never" in the arrays of seconds


# --- the rules file ---------------------------------------------------------------------------


def load_survey_rules(path: Path | None = None) -> SurveyRules:
    """Read and check a survey rules file (None: the shipped defaults); a ConfigError names the
    file and the key at fault."""
    path = path or DEFAULT_SURVEYS_PATH
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the survey rules: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return msgspec.convert(raw, SurveyRules)
    except msgspec.ValidationError as exc:
        problem, _, where = str(exc).partition(" - at ")
        field = where.strip("`").removeprefix("$.") or "the file"
        raise ConfigError(f"{path}: survey rules: {problem} (at {field})") from None


# --- the API's shapes -------------------------------------------------------------------------


class SurveyDue(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    customer_id: str
    touchpoint: Touchpoint
    reason: str  # the trigger, e.g. post_delivery_7d, experiment_resurvey, relationship_cadence
    due_since: dt.datetime
    order_id: str | None = None  # the order of a delivery trigger


class SurveysDue(msgspec.Struct, frozen=True, kw_only=True):
    touchpoint: Touchpoint
    as_of: dt.datetime
    model_version: str
    due: int  # customers due now at this touchpoint, before the limit and the cap
    daily_cap: int
    sent_today: int  # sends recorded for today (UTC), every touchpoint
    remaining_today: int
    items: list[SurveyDue]


CustomerIdField = Annotated[
    str, Meta(min_length=1, max_length=MAX_ID_LENGTH, description=f"the shop's id: {ID_RULE}")
]


class SurveySend(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    customer_id: CustomerIdField
    touchpoint: Touchpoint
    sent_at: Annotated[
        dt.datetime | None,
        Meta(description="when it was sent (ISO 8601 with a zone; default: now)"),
    ] = None


class SurveyDecline(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    customer_id: CustomerIdField
    touchpoint: Touchpoint
    declined_at: Annotated[
        dt.datetime | None,
        Meta(description="when they declined (ISO 8601 with a zone; default: now)"),
    ] = None


class SendsBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sends: Annotated[list[SurveySend], Meta(min_length=1, max_length=MAX_EVENTS)]


class DeclinesBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    declines: Annotated[list[SurveyDecline], Meta(min_length=1, max_length=MAX_EVENTS)]


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    recorded: int  # new sends (declines) stored
    duplicates: int  # already recorded for that customer, touchpoint and day


# --- what a version contributes, computed once ------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecentOrders:
    """A version's recent orders (`recsvc.version.recent_orders`) as arrays, in UTC seconds."""

    customer_ids: np.ndarray  # str
    rows: np.ndarray  # the customer's row in the version, -1 when it does not hold them
    order_ids: np.ndarray  # str
    placed: np.ndarray
    delivered: np.ndarray  # NONE: not delivered
    cancelled: np.ndarray  # bool
    held: frozenset[str]  # its order ids

    @classmethod
    def of(cls, recent: RecentOrdersFile | None, customer_ids: np.ndarray) -> RecentOrders:
        orders = recent.orders if recent is not None else []
        who = [o.customer_id for o in orders]
        ids = [o.order_id for o in orders]
        return cls(
            customer_ids=np.asarray(who, dtype=str),
            rows=_indices(customer_ids, who),
            order_ids=np.asarray(ids, dtype=str),
            placed=np.asarray([times.epoch_seconds(o.placed_at) for o in orders], dtype=np.int64),
            delivered=np.asarray([_secs(o.delivered_at) for o in orders], dtype=np.int64),
            cancelled=np.asarray([o.cancelled for o in orders], dtype=bool),
            held=frozenset(ids),
        )


@dataclass(frozen=True, slots=True)
class VersionFacts:
    """Per customer of one version (its index order), in UTC seconds (NONE: never)."""

    version: str
    customer_ids: np.ndarray
    first_order: np.ndarray
    last_answer: np.ndarray
    assigned: np.ndarray  # latest experiment assignment
    stratum: np.ndarray  # code into `strata`
    strata: tuple[str, ...]  # primary segments, then NOT_IN_VERSION
    margins: tuple[float | None, ...]  # each stratum's NPS margin of error
    archived_lines: tuple[LiveOrderLine, ...]  # recent order lines the store archived
    recent_orders: RecentOrders  # the version's orders that may still trigger a delivery survey


def _seconds(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def version_facts(
    model: ActiveModel, archived: Iterable[LiveOrderLine], since: dt.datetime
) -> VersionFacts:
    ids = model.loaded.customer_ids
    n = int(ids.size)
    first_order = np.full(n, NONE, dtype=np.int64)
    if model.orders is not None:
        indptr = np.asarray(model.orders.indptr)
        has = indptr[1:] > indptr[:-1]
        # µs since 1970 -> seconds
        first_order[has] = _seconds(np.asarray(model.orders.times)[indptr[:-1][has]]) // 1_000_000
    last_answer = np.full(n, NONE, dtype=np.int64)
    stratum = np.zeros(n, dtype=np.int64)
    segments = model.profiles.segments()
    margin_of = {s.name: s.nps.margin_of_error for s in segments}
    if model.responses is not None:
        table = model.responses
        who = np.asarray(table.customers, dtype=np.int64)
        known = who >= 0
        np.maximum.at(last_answer, who[known], _seconds(np.asarray(table.times))[known])
        labels = list(table.group_labels["segment"])
        stratum = np.asarray(table.customer_groups[:, 0], dtype=np.int64).copy()
    else:
        # The primary segment is the first in rule order a customer belongs to.
        labels = [s.name for s in segments]
        unset = np.ones(n, dtype=bool)
        for k, name in enumerate(labels):
            members = np.asarray(model.profiles.members(name), dtype=np.int64)
            fresh = members[unset[members]]
            stratum[fresh] = k
            unset[fresh] = False
        labels.append(NOT_IN_VERSION)
        stratum[unset] = len(labels) - 1
    if NOT_IN_VERSION not in labels:
        labels.append(NOT_IN_VERSION)
    assigned = np.full(n, NONE, dtype=np.int64)
    assignments = read_assignments(model.loaded.directory)
    if assignments:
        rows = _indices(ids, [a.customer_id for a in assignments])
        at = np.asarray([times.epoch_seconds(a.assigned_at) for a in assignments], dtype=np.int64)
        np.maximum.at(assigned, rows[rows >= 0], at[rows >= 0])
    recent = tuple(line for line in archived if line.ordered_at >= since)
    return VersionFacts(
        version=model.version,
        customer_ids=ids,
        first_order=first_order,
        last_answer=last_answer,
        assigned=assigned,
        stratum=stratum,
        strata=tuple(labels),
        margins=tuple(margin_of.get(label) for label in labels),
        archived_lines=recent,
        recent_orders=RecentOrders.of(read_recent_orders(model.loaded.directory), ids),
    )


def _indices(customer_ids: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """Each id's row in the version's sorted id array, -1 for one it does not hold (vectorised;
    ids longer than the array's width are answered -1 before numpy would widen it)."""
    out = np.full(len(ids), -1, dtype=np.int64)
    if not ids or customer_ids.size == 0:
        return out
    width = customer_ids.dtype.itemsize // 4
    fits = np.fromiter((len(i) <= width for i in ids), dtype=bool, count=len(ids))
    if not fits.any():
        return out
    wanted = np.asarray(
        [i for i, f in zip(ids, fits.tolist(), strict=True) if f], dtype=customer_ids.dtype
    )
    pos = np.searchsorted(customer_ids, wanted)
    found = pos < customer_ids.size
    found[found] = customer_ids[pos[found]] == wanted[found]
    out[np.flatnonzero(fits)[found]] = pos[found]
    return out


# --- choosing ---------------------------------------------------------------------------------


def pick(
    strata: np.ndarray,
    due_since: np.ndarray,
    tiebreak: np.ndarray,
    margins: Sequence[float | None],
    places: int,
    unknown_margin: float,
) -> np.ndarray:
    """Positions of the candidates chosen for `places`: per stratum its share (`allocate`), the
    oldest trigger first (ties by `tiebreak`), returned oldest first overall."""
    if places <= 0 or strata.size == 0:
        return np.zeros(0, dtype=np.int64)
    available = np.bincount(strata, minlength=len(margins)).tolist()
    quota = allocate(available, margins, places, unknown_margin)
    chosen = []
    for k, q in enumerate(quota):
        if q <= 0:
            continue
        members = np.flatnonzero(strata == k)
        if q < members.size:
            order = np.lexsort((tiebreak[members], due_since[members]))[:q]
            members = members[order]
        chosen.append(members)
    picked = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return picked[np.lexsort((tiebreak[picked], due_since[picked]))]


@dataclass(frozen=True, slots=True)
class DeliveryOrder:
    order_id: str
    customer_id: str
    placed: dt.datetime
    delivered: dt.datetime | None
    cancelled: bool
    line_keys: tuple[str, ...]  # its lines' current revisions (`LiveOrderLine.key`)


def orders_from_lines(lines: Iterable[LiveOrderLine]) -> list[DeliveryOrder]:
    """Orders from their lines' current revisions: placed at the first line's time, delivered
    when a line was (at the latest line's delivery), cancelled when every line is."""
    by_order: dict[str, list[LiveOrderLine]] = {}
    for line in latest_revisions(lines):
        by_order.setdefault(line.order_id, []).append(line)
    orders = []
    for order_id, group in by_order.items():
        delivered = [line.delivered_at for line in group if line.delivered_at is not None]
        orders.append(
            DeliveryOrder(
                order_id=order_id,
                customer_id=group[0].customer_id,
                placed=min(line.ordered_at for line in group),
                delivered=max(delivered) if delivered else None,
                cancelled=all(line.status == "cancelled" for line in group),
                line_keys=tuple(line.key for line in group),
            )
        )
    return orders


class SurveyPlanner:
    """One worker's survey planning: the rules, the per-version facts (built once per version),
    the store's survey log."""

    def __init__(self, rules: SurveyRules, store: Store, holder: ModelHolder) -> None:
        self.rules = rules
        self.store = store
        self.holder = holder
        self._lock = threading.Lock()
        self._facts: VersionFacts | None = None

    def facts(self, model: ActiveModel, now: dt.datetime) -> VersionFacts:
        held = self._facts
        if held is not None and held.version == model.version:
            return held
        with self._lock:
            held = self._facts
            if held is None or held.version != model.version:
                # Lines ordered long before their delivery window opens are of no use.
                since = now - dt.timedelta(days=self.rules.delivery_horizon_days + 60)
                held = version_facts(model, self.store.orders.iter_archived(), since)
                self._facts = held
            return held

    # --- recording ----------------------------------------------------------------------------

    def record(
        self,
        kind: EventKind,
        items: Sequence[SurveySend | SurveyDecline],
        now: dt.datetime,
    ) -> Recorded:
        field = "sends" if kind == "sent" else "declines"
        events = []
        for position, item in enumerate(items):
            where = f"{field}[{position}]"
            problem = id_problem(item.customer_id)
            if problem:
                raise InvalidRequest(f"{where}.customer_id: {problem} (an id is {ID_RULE})")
            at = item.sent_at if isinstance(item, SurveySend) else item.declined_at
            name = "sent_at" if isinstance(item, SurveySend) else "declined_at"
            if at is None:
                at = now
            elif at.tzinfo is None:
                raise InvalidRequest(f"{where}.{name}: give a time zone (e.g. a Z)")
            at = times.utc(at)
            if at > now + FUTURE_SKEW:
                raise InvalidRequest(f"{where}.{name}: in the future")
            if at < now - dt.timedelta(days=MAX_BACKDATE_DAYS):
                raise InvalidRequest(f"{where}.{name}: more than {MAX_BACKDATE_DAYS} days ago")
            erased = self.holder.suppression().erased_at(item.customer_id)
            if erased is not None and at <= erased:
                continue  # older than the customer's erasure: not kept (counted as a duplicate)
            events.append(
                SurveyEvent(
                    kind=kind, customer_id=item.customer_id, touchpoint=item.touchpoint, at=at
                )
            )
        new = sum(self.store.surveys.record(events))
        return Recorded(recorded=new, duplicates=len(items) - new)

    # --- the due list -------------------------------------------------------------------------

    def due(
        self, model: ActiveModel, touchpoint: Touchpoint, limit: int, now: dt.datetime
    ) -> SurveysDue:
        facts = self.facts(model, now)
        rules = self.rules
        live_answers = self.holder.all_live_answers()
        if live_answers is None:
            raise StoreUnavailable("cannot read the live NPS answers")
        contacts = self.store.surveys.contacts()
        sent_today = self.store.surveys.sent_on(now.date())
        remaining = max(rules.sampling.daily_cap - sent_today, 0)
        places = min(limit, remaining)
        state = _Contacts.build(facts, live_answers, contacts)
        masked = self.holder.masked_rows(model)
        if touchpoint == "relationship":
            total, items = self._relationship(facts, state, masked, now, places)
        else:
            total, items = self._delivery(
                model, facts, state, masked, touchpoint, now, places, live_answers
            )
        return SurveysDue(
            touchpoint=touchpoint,
            as_of=now,
            model_version=model.version,
            due=total,
            daily_cap=rules.sampling.daily_cap,
            sent_today=sent_today,
            remaining_today=remaining,
            items=items,
        )

    def _free(self, asked: np.ndarray, declined: np.ndarray, now_s: int) -> np.ndarray:
        """Which customers the throttle lets be asked at `now_s` (vectorised `held_until`)."""
        throttle = self.rules.throttle
        by_decline = (declined != NONE) & (declined >= asked)
        until = np.where(
            by_decline,
            declined + throttle.decline_throttle_days * DAY,
            np.where(asked != NONE, asked + throttle.throttle_days * DAY, NONE),
        )
        free: np.ndarray = now_s >= until
        return free

    def _relationship(
        self,
        facts: VersionFacts,
        state: _Contacts,
        masked: np.ndarray,
        now: dt.datetime,
        places: int,
    ) -> tuple[int, list[SurveyDue]]:
        rules = self.rules
        now_s = times.epoch_seconds(now)
        free = self._free(state.asked, state.declined, now_s)
        if masked.size:
            free[masked] = False
        # Experiments: assigned long enough ago and no answer since; both arms alike.
        resurvey_since = facts.assigned + rules.experiments.resurvey_after_days * DAY
        resurvey = (
            (facts.assigned != NONE)
            & (resurvey_since <= now_s)
            & (state.answered < facts.assigned)
            & free
        )
        latest = np.maximum(np.maximum(state.asked, state.declined), facts.first_order)
        cadence_since = latest + rules.triggers.relationship_cadence_days * DAY
        cadence = (facts.first_order != NONE) & (cadence_since <= now_s) & free & ~resurvey
        first = np.flatnonzero(resurvey)
        second = np.flatnonzero(cadence)
        total = int(first.size + second.size)
        # Re-surveys first, oldest first, never by segment or arm; then the cadence, stratified.
        first = first[np.lexsort((first, resurvey_since[first]))][:places]
        chosen_cadence = pick(
            facts.stratum[second],
            cadence_since[second],
            second,
            facts.margins,
            places - int(first.size),
            rules.sampling.unknown_margin,
        )
        second = second[chosen_cadence]
        items = [
            SurveyDue(
                customer_id=str(facts.customer_ids[i]),
                touchpoint="relationship",
                reason=EXPERIMENT_RESURVEY,
                due_since=_moment(int(resurvey_since[i])),
            )
            for i in first.tolist()
        ] + [
            SurveyDue(
                customer_id=str(facts.customer_ids[i]),
                touchpoint="relationship",
                reason=RELATIONSHIP_CADENCE,
                due_since=_moment(int(cadence_since[i])),
            )
            for i in second.tolist()
        ]
        return total, items

    def _trigger(
        self,
        placed: dt.datetime,
        delivered: dt.datetime | None,
        cancelled: bool,
        touchpoint: Touchpoint,
        now: dt.datetime,
    ) -> dt.datetime | None:
        """Since when an order is due at a delivery touchpoint; None when it is not due now."""
        triggers = self.rules.triggers
        if cancelled:
            return None
        if touchpoint == "post_delivery":
            if delivered is None:
                return None
            since = delivered + dt.timedelta(days=triggers.post_delivery_days)
            window = dt.timedelta(days=triggers.post_delivery_window_days)
            return since if since <= now < since + window else None
        if delivered is not None:
            return None
        since = placed + dt.timedelta(hours=triggers.pre_delivery_after_hours)
        oldest = now - dt.timedelta(days=triggers.pre_delivery_max_days)
        return since if since <= now and placed >= oldest else None

    def _version_triggered(
        self, recent: RecentOrders, left_out: set[str], touchpoint: Touchpoint, now: dt.datetime
    ) -> np.ndarray:
        """Positions of the version's recent orders due now at a delivery touchpoint (`_trigger`,
        vectorised), but those `left_out` (replaced by newer lines, or answered)."""
        triggers = self.rules.triggers
        now_s = times.epoch_seconds(now)
        due = ~recent.cancelled
        if left_out:
            due &= ~np.isin(recent.order_ids, list(left_out))
        if touchpoint == "post_delivery":
            since = recent.delivered + triggers.post_delivery_days * DAY
            window = triggers.post_delivery_window_days * DAY
            due &= (recent.delivered != NONE) & (since <= now_s) & (now_s < since + window)
        else:
            since = recent.placed + triggers.pre_delivery_after_hours * 3600
            oldest = now_s - triggers.pre_delivery_max_days * DAY
            due &= (recent.delivered == NONE) & (since <= now_s) & (recent.placed >= oldest)
        return np.flatnonzero(due)

    def _since(self, recent: RecentOrders, k: int, touchpoint: Touchpoint) -> dt.datetime:
        triggers = self.rules.triggers
        if touchpoint == "post_delivery":
            return _moment(int(recent.delivered[k]) + triggers.post_delivery_days * DAY)
        return _moment(int(recent.placed[k]) + triggers.pre_delivery_after_hours * 3600)

    def _delivery(
        self,
        model: ActiveModel,
        facts: VersionFacts,
        state: _Contacts,
        masked: np.ndarray,
        touchpoint: Touchpoint,
        now: dt.datetime,
        places: int,
        live_answers: Sequence[LiveResponse],
    ) -> tuple[int, list[SurveyDue]]:
        rules = self.rules
        suppression = self.holder.suppression()
        lines = [
            line
            for line in (*facts.archived_lines, *self.store.orders.iter_live())
            if not suppression.suppresses(line.customer_id, line.occurred_at)
        ]
        answered = {r.order_id for r in live_answers if r.order_id and r.touchpoint == touchpoint}
        holds_lines = model.orders.holds_lines if model.orders is not None else None
        orders, replaced = merge_with_version(
            orders_from_lines(lines), facts.recent_orders, holds_lines
        )
        # Per customer, the order whose trigger is oldest: (since, order id).
        best: dict[str, tuple[dt.datetime, str]] = {}

        def offer(customer: str, since: dt.datetime, order_id: str) -> None:
            held = best.get(customer)
            if held is None or (since, order_id) < held:
                best[customer] = (since, order_id)

        for order in orders:
            since = self._trigger(order.placed, order.delivered, order.cancelled, touchpoint, now)
            if since is not None and order.order_id not in answered:
                offer(order.customer_id, since, order.order_id)
        recent = facts.recent_orders
        for k in self._version_triggered(recent, replaced | answered, touchpoint, now).tolist():
            customer = str(recent.customer_ids[k])
            placed = _moment(int(recent.placed[k]))
            if recent.rows[k] < 0 and suppression.suppresses(customer, placed):
                continue  # erased; the version's own customers are masked by row below
            offer(customer, self._since(recent, k, touchpoint), str(recent.order_ids[k]))
        customers = sorted(best)
        rows = _indices(facts.customer_ids, customers)
        now_s = times.epoch_seconds(now)
        asked, declined = state.of(customers, rows)
        free = self._free(asked, declined, now_s) & ~((rows >= 0) & np.isin(rows, masked))
        keep = np.flatnonzero(free)
        unknown = len(facts.strata) - 1
        strata = np.where(rows[keep] >= 0, facts.stratum[np.maximum(rows[keep], 0)], unknown)
        due_since = np.asarray(
            [times.epoch_seconds(best[customers[k]][0]) for k in keep.tolist()], dtype=np.int64
        )
        chosen = keep[
            pick(strata, due_since, keep, facts.margins, places, rules.sampling.unknown_margin)
        ]
        reason = (
            rules.post_delivery_reason
            if touchpoint == "post_delivery"
            else rules.pre_delivery_reason
        )
        items = [
            SurveyDue(
                customer_id=customers[k],
                touchpoint=touchpoint,
                reason=reason,
                due_since=best[customers[k]][0],
                order_id=best[customers[k]][1],
            )
            for k in chosen.tolist()
        ]
        return int(keep.size), items


def merge_with_version(
    orders: list[DeliveryOrder],
    recent: RecentOrders,
    holds_lines: Callable[[list[str]], list[bool]] | None,
) -> tuple[list[DeliveryOrder], set[str]]:
    """The orders from live and archived lines that count beside the version's recent orders, and
    which of the version's they replace. An order the version also holds is replaced when one of
    its lines has a revision the version did not take in (sent live after the run: newer); when
    the version took in every one, its own record is as new or newer (the shop's files may have
    moved the order on since) and the lines' order is left out."""
    if not recent.held:
        return orders, set()
    shared = [order for order in orders if order.order_id in recent.held]
    if not shared:
        return orders, set()
    keys = [key for order in shared for key in order.line_keys]
    # A version without an order history cannot say which revisions it took in: the lines win.
    held = holds_lines(keys) if holds_lines is not None else [False] * len(keys)
    held_keys = {key for key, h in zip(keys, held, strict=True) if h}
    stale = {order.order_id for order in shared if all(key in held_keys for key in order.line_keys)}
    replaced = {order.order_id for order in shared} - stale
    return [order for order in orders if order.order_id not in stale], replaced


def _moment(seconds: int) -> dt.datetime:
    return times.EPOCH + dt.timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class _Contacts:
    """Every customer's latest ask and decline and latest answer, in seconds: the version's
    answers overlaid with the live answers and the survey log. The version's customers by row;
    the others (only seen live) by id."""

    asked: np.ndarray  # latest send or answer
    declined: np.ndarray
    answered: np.ndarray  # latest answer
    others: dict[str, tuple[int, int]]  # customer not in the version -> (asked, declined)

    @classmethod
    def build(
        cls, facts: VersionFacts, answers: Sequence[LiveResponse], contacts: dict[str, Contact]
    ) -> _Contacts:
        answered = facts.last_answer.copy()
        declined = np.full(answered.size, NONE, dtype=np.int64)
        others: dict[str, tuple[int, int]] = {}

        def other(customer: str, asked: int = NONE, decline: int = NONE) -> None:
            a, d = others.get(customer, (NONE, NONE))
            others[customer] = (max(a, asked), max(d, decline))

        answer_rows = _indices(facts.customer_ids, [r.customer_id for r in answers])
        answer_at = np.asarray(
            [times.epoch_seconds(r.responded_at) for r in answers], dtype=np.int64
        )
        inside = answer_rows >= 0
        np.maximum.at(answered, answer_rows[inside], answer_at[inside])
        for k in np.flatnonzero(~inside).tolist():
            other(answers[k].customer_id, asked=int(answer_at[k]))
        asked = answered.copy()
        ids = list(contacts)
        rows = _indices(facts.customer_ids, ids)
        sent = np.asarray([_secs(contacts[i].asked) for i in ids], dtype=np.int64).reshape(-1)
        dec = np.asarray([_secs(contacts[i].declined) for i in ids], dtype=np.int64).reshape(-1)
        inside = rows >= 0
        np.maximum.at(asked, rows[inside], sent[inside])
        np.maximum.at(declined, rows[inside], dec[inside])
        for k in np.flatnonzero(~inside).tolist():
            other(ids[k], asked=int(sent[k]), decline=int(dec[k]))
        return cls(asked, declined, answered, others)

    def of(self, customers: Sequence[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked = np.full(len(customers), NONE, dtype=np.int64)
        declined = np.full(len(customers), NONE, dtype=np.int64)
        inside = rows >= 0
        asked[inside] = self.asked[rows[inside]]
        declined[inside] = self.declined[rows[inside]]
        for k in np.flatnonzero(~inside).tolist():
            asked[k], declined[k] = self.others.get(customers[k], (NONE, NONE))
        return asked, declined


def _secs(moment: dt.datetime | None) -> int:
    return NONE if moment is None else times.epoch_seconds(moment)
