"""Who to survey next: the rules (throttle, triggers, experiment re-survey, sampling, daily cap),
the reasons a customer is due, the survey log's records, and the stratified allocation. Pure
Python: the service reads the version, the live records and the store's survey log, then asks
these functions.

The rules file is `recsvc/defaults/surveys.toml` (documented there and in docs/surveys.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from recsvc.domain.times import utc

Touchpoint = Literal["pre_delivery", "post_delivery", "relationship"]
TOUCHPOINTS: Final[tuple[Touchpoint, ...]] = ("pre_delivery", "post_delivery", "relationship")
EventKind = Literal["sent", "declined"]
# How far back a send or a decline may be dated: the Redis store keeps a day's idempotency set
# this long, so an older one could be counted twice.
MAX_BACKDATE_DAYS: Final = 365
# The reason for a re-survey of an experiment's arms (the same word for both arms).
EXPERIMENT_RESURVEY: Final = "experiment_resurvey"
RELATIONSHIP_CADENCE: Final = "relationship_cadence"
# How far back a training run keeps orders for the delivery triggers: orders placed this many days
# before the data's end (`recsvc.version.recent_orders`). It covers the default rules' horizon (14
# days: pre-delivery's maximum; post-delivery's 7 days plus its 7-day window) with 31 days to spare
# for an order's delivery and for a version served a few days after its data ended. A shop whose
# rules reach further back still gets the orders its live lines bring, not older ones from its
# files (docs/surveys.md).
RECENT_ORDER_DAYS: Final = 45


# --- the rules ----------------------------------------------------------------------------------


class ThrottleRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    throttle_days: Annotated[int, Meta(ge=0, le=3650)] = 90
    decline_throttle_days: Annotated[int, Meta(ge=0, le=3650)] = 30


class TriggerRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    post_delivery_days: Annotated[int, Meta(ge=0, le=365)] = 7
    post_delivery_window_days: Annotated[int, Meta(ge=1, le=365)] = 7
    pre_delivery_after_hours: Annotated[int, Meta(ge=0, le=24 * 60)] = 24
    pre_delivery_max_days: Annotated[int, Meta(ge=1, le=365)] = 14
    relationship_cadence_days: Annotated[int, Meta(ge=1, le=3650)] = 180


class ExperimentRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    resurvey_after_days: Annotated[int, Meta(ge=0, le=365)] = 21


class SamplingRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    daily_cap: Annotated[int, Meta(ge=0, le=10_000_000)] = 1000
    unknown_margin: Annotated[float, Meta(gt=0, le=200)] = 100.0


class SurveyRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The survey rules file (`recsvc/defaults/surveys.toml`), each table optional."""

    throttle: ThrottleRules = ThrottleRules()
    triggers: TriggerRules = TriggerRules()
    experiments: ExperimentRules = ExperimentRules()
    sampling: SamplingRules = SamplingRules()

    @property
    def delivery_horizon_days(self) -> int:
        """How many days after an order's placing (pre-delivery) or delivery (post-delivery) a
        delivery trigger may still fire."""
        triggers = self.triggers
        return max(
            triggers.pre_delivery_max_days,
            triggers.post_delivery_days + triggers.post_delivery_window_days,
        )

    @property
    def post_delivery_reason(self) -> str:
        return f"post_delivery_{self.triggers.post_delivery_days}d"

    @property
    def pre_delivery_reason(self) -> str:
        return f"pre_delivery_{self.triggers.pre_delivery_after_hours}h"


def reasons(rules: SurveyRules) -> dict[Touchpoint, tuple[str, ...]]:
    """Every reason a touchpoint's due list may give: trigger names only, never an answer or a
    segment."""
    return {
        "pre_delivery": (rules.pre_delivery_reason,),
        "post_delivery": (rules.post_delivery_reason,),
        "relationship": (EXPERIMENT_RESURVEY, RELATIONSHIP_CADENCE),
    }


# --- the throttle -------------------------------------------------------------------------------


def held_until(
    asked: dt.datetime | None, declined: dt.datetime | None, rules: SurveyRules
) -> dt.datetime | None:
    """Until when a customer may not be asked: `throttle_days` after they were last asked (a send
    or an answer), or `decline_throttle_days` after a decline that is their latest contact. None:
    never contacted."""
    if asked is None and declined is None:
        return None
    if declined is not None and (asked is None or declined >= asked):
        return declined + dt.timedelta(days=rules.throttle.decline_throttle_days)
    assert asked is not None
    return asked + dt.timedelta(days=rules.throttle.throttle_days)


def throttled(
    asked: dt.datetime | None, declined: dt.datetime | None, now: dt.datetime, rules: SurveyRules
) -> bool:
    until = held_until(asked, declined, rules)
    return until is not None and now < until


# --- the survey log's records -------------------------------------------------------------------


class SurveyEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One line of the survey log: a customer was sent a survey, or declined one."""

    kind: EventKind
    customer_id: str
    touchpoint: Touchpoint
    at: dt.datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is not dt.UTC:
            msgspec.structs.force_setattr(self, "at", utc(self.at))

    @property
    def day(self) -> dt.date:
        return self.at.date()

    @property
    def key(self) -> str:
        """Idempotency: one send (or decline) per customer, touchpoint and UTC day. A digest, so
        the store's idempotency sets hold no customer id."""
        text = f"{self.kind}\x1f{self.customer_id}\x1f{self.touchpoint}\x1f{self.day.isoformat()}"
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class Contact(msgspec.Struct, kw_only=True, gc=False):
    """A customer's latest send and latest decline in the survey log."""

    asked: dt.datetime | None = None
    declined: dt.datetime | None = None

    def add(self, event: SurveyEvent) -> None:
        if event.kind == "sent":
            if self.asked is None or event.at > self.asked:
                self.asked = event.at
        elif self.declined is None or event.at > self.declined:
            self.declined = event.at


# --- stratified allocation ----------------------------------------------------------------------


def allocate(
    available: Sequence[int], margins: Sequence[float | None], total: int, unknown_margin: float
) -> list[int]:
    """How many of `total` places each stratum gets: in proportion to its NPS margin of error
    (None: no answers, `unknown_margin`), never more than it has due; what a small stratum cannot
    use goes to the others in the same proportions. Whole numbers by largest remainder, ties to
    the lower stratum index, so the split is deterministic."""
    weights = [
        unknown_margin if m is None or not math.isfinite(m) else max(m, 0.0) for m in margins
    ]
    quota = [0] * len(available)
    remaining = min(total, sum(available))
    open_ = [k for k, n in enumerate(available) if n > 0]
    while remaining > 0 and open_:
        weight = sum(weights[k] for k in open_)
        share = {
            k: remaining * (weights[k] / weight if weight > 0 else 1 / len(open_)) for k in open_
        }
        full = [k for k in open_ if share[k] >= available[k] - quota[k]]
        if full:  # strata that can take all they have due: give it, then share the rest again
            for k in full:
                remaining -= available[k] - quota[k]
                quota[k] = available[k]
            open_ = [k for k in open_ if k not in full]
            continue
        floors = {k: math.floor(share[k]) for k in open_}
        for k in open_:
            quota[k] += floors[k]
        left = remaining - sum(floors.values())
        for k in sorted(open_, key=lambda k: (-(share[k] - floors[k]), k))[:left]:
            quota[k] += 1
        remaining = 0
    return quota


def margins_by_label(
    labels: Sequence[str], known: Mapping[str, float | None]
) -> list[float | None]:
    """Each stratum's margin of error by its label (None where the version has none)."""
    return [known.get(label) for label in labels]
