"""RFM scores, the RFM segment and churn risk of one customer, in plain Python: what the service
works out when a live order changes a customer, from numbers the version stores.

The training job computes the same definitions over the whole customer table in polars
(`training.customers.features`, whose docstring states them);
`tests/unit/training/test_rfm_agreement.py` checks that both give the same values on the same data.
Pure Python: no polars, no numpy.

**Quintile scores without the table.** A batch score is 1 + floor(5 * W / N): W customers with
orders are strictly worse than this one, N customers have orders. Score s or more means W >= t(s) =
ceil((s - 1) * N / 5), which holds exactly when the customer beats the t(s)-th worst value. So a
version stores, per measure and per score 2..5, the few order statistics of its customers that
decide it (`QuintileEdges`): the t(s)-th worst value, the one after it (for a customer already
counted, whose old value is among the worse ones and leaves), and the one for N + 1 customers (a
customer ordering for the first time joins). Other customers' values are the version's; a live
customer's new value is ranked among them exactly as a batch run on the same data would rank it.

**Recency** ranks days since the last order at the moment of asking (`now`), not at the version's
`as_of`: the edges are last-order times, and whole days between them and `now` are compared.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from recsvc.domain import customer_table as ct
from recsvc.domain.live import LiveOrderLine
from recsvc.domain.times import EPOCH, iso

HIGH_CHURN_RISK: Final = 0.7
MEDIUM_CHURN_RISK: Final = 0.3
DAY_MICROS: Final = 86_400_000_000
SCORES: Final = (2, 3, 4, 5)  # the scores an edge decides (1 needs nothing)


def ranks_needed(n: int) -> list[tuple[int, int | None, int | None]]:
    """Per score 2..5, the 0-based positions (ascending, worst first) of the values that decide
    it among `n` customers: (t - 1, t for a customer already counted, t' - 1 for one joining);
    None where the position is past the end (that score cannot be reached that way)."""
    needed: list[tuple[int, int | None, int | None]] = []
    for s in SCORES:
        t = math.ceil((s - 1) * n / 5)
        grown = math.ceil((s - 1) * (n + 1) / 5)
        needed.append(
            (max(t - 1, 0), t if t < n else None, grown - 1 if 0 <= grown - 1 < n else None)
        )
    return needed


class QuintileEdges(msgspec.Struct, frozen=True, kw_only=True):
    """The values deciding one measure's quintile scores 2..5 (see the module docstring), worst
    first order; `None`: that score cannot be reached that way. Built by `edges_of`."""

    n: int  # customers with a value
    at: list[float | None]  # the t(s)-th worst value (1-based): beat it to score s
    after: list[
        float | None
    ]  # the next one: what a counted customer whose old value was worse beats
    joined: list[float | None]  # the t'(s)-th worst of N + 1: what a newly counted customer beats


def edges_of(sorted_values: Sequence[float]) -> QuintileEdges:
    """The edges of values sorted worst first (ascending goodness)."""
    n = len(sorted_values)
    if n == 0:
        return QuintileEdges(n=0, at=[None] * 4, after=[None] * 4, joined=[None] * 4)
    needed = ranks_needed(n)
    return QuintileEdges(
        n=n,
        at=[float(sorted_values[at]) for at, _after, _joined in needed],
        after=[None if after is None else float(sorted_values[after]) for _at, after, _ in needed],
        joined=[None if j is None else float(sorted_values[j]) for _at, _after, j in needed],
    )


def quintile_score(
    edges: QuintileEdges, beats: Callable[[float], bool], old_was_worse: bool | None
) -> int:
    """The customer's score 1..5. `beats(edge)`: their value is strictly better than `edge`.
    `old_was_worse`: None when the version did not count the customer (no order then), else
    whether their old value is strictly worse than their new one."""
    score = 1
    for k, s in enumerate(SCORES):
        if old_was_worse is None:
            edge = edges.joined[k]
        elif old_was_worse:
            edge = edges.after[k]
        else:
            edge = edges.at[k]
        if edge is None or not beats(edge):
            break
        score = s
    return score


def micros(moment: dt.datetime) -> int:
    """Microseconds since 1970 (UTC): how the version stores order times."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: float) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=int(value))


def whole_days(later: dt.datetime, earlier: dt.datetime) -> int:
    """Whole days from `earlier` to `later`, truncated toward zero (polars' `total_days`)."""
    delta = later - earlier
    seconds = delta.days * 86_400 + delta.seconds
    return int(seconds / 86_400) if seconds >= 0 else -int(-seconds // 86_400)


class ChurnModel(msgspec.Struct, frozen=True, kw_only=True):
    """The churn and RFM parameters of a run (`training.customers.features.SegmentationConfig`)
    and the prior gap it found: the median typical gap of its repeat customers."""

    lost_after_days: int
    gap_floor_days: float
    midpoint: float
    steepness: float
    prior_gap_days: float


class PurchaseModel(msgspec.Struct, frozen=True, kw_only=True):
    """What a version stores to rescore one customer's purchase behaviour live."""

    recency: QuintileEdges  # last-order times, microseconds since 1970 (older is worse)
    frequency: QuintileEdges  # order counts
    monetary: QuintileEdges  # net spend
    churn: ChurnModel


_RFM_CELLS: Final = ct.rfm_cell_map()


def rfm_segment(r: int, f: int, days: int, lost_after_days: int) -> str:
    if days > lost_after_days:
        return ct.LOST
    return _RFM_CELLS[(r, f)]


def churn_risk(ratio: float, midpoint: float, steepness: float) -> float:
    """Logistic churn risk 0..1 of `days since last order / typical gap`."""
    return 1.0 / (1.0 + math.exp(-(ratio - midpoint) * steepness))


def churn_level(risk: float) -> str:
    if risk >= HIGH_CHURN_RISK:
        return "high"
    return "medium" if risk >= MEDIUM_CHURN_RISK else "low"


class NewOrder(msgspec.Struct, frozen=True):
    """An order the version does not hold, from the customer's live lines."""

    order_id: str
    ordered_at: dt.datetime  # its earliest line that is not cancelled
    value: float  # net spend: lines neither cancelled nor returned


def new_orders(lines: Sequence[LiveOrderLine]) -> list[NewOrder]:
    """The orders of live lines (current revisions of orders the version does not hold), as the
    batch counts them: an order is its lines that are not cancelled (none left: no order), placed
    at the earliest of them, worth those neither cancelled nor returned."""
    by_order: dict[str, list[LiveOrderLine]] = {}
    for line in lines:
        if line.status != "cancelled":
            by_order.setdefault(line.order_id, []).append(line)
    return [
        NewOrder(
            order_id,
            min(line.ordered_at for line in kept),
            sum(line.quantity * line.unit_price for line in kept if line.bought),
        )
        for order_id, kept in by_order.items()
    ]


class Behaviour(msgspec.Struct, frozen=True, kw_only=True):
    """A customer's purchase behaviour as the customer table states it."""

    order_count: int
    first_order_at: dt.datetime | None
    last_order_at: dt.datetime | None
    monetary_value: float


def rescore(
    record: dict[str, object],
    old: Behaviour,
    order_times: Sequence[int],
    new_orders: Sequence[NewOrder],
    model: PurchaseModel,
    now: dt.datetime,
) -> None:
    """Set the record's purchase columns (counts, recency, spend, R/F/M, RFM segment, typical
    gap, churn) for its stored orders (`order_times`, the version's, in microseconds since 1970)
    plus `new_orders`, at `now`. Times stay integers until the two that are written: a customer
    may have hundreds of orders, and this runs on the request path."""
    if not new_orders:
        return
    times = sorted([*order_times, *(micros(o.ordered_at) for o in new_orders)])
    count = old.order_count + len(new_orders)
    spend = old.monetary_value + sum(o.value for o in new_orders)
    last = from_micros(times[-1])
    days = whole_days(now, last)
    counted = old.order_count > 0 and old.last_order_at is not None
    old_days = whole_days(now, old.last_order_at) if old.last_order_at is not None else None

    def later(edge: float) -> bool:
        return whole_days(now, from_micros(edge)) > days

    r = quintile_score(
        model.recency, later, (old_days is not None and old_days > days) if counted else None
    )
    f = quintile_score(
        model.frequency, lambda edge: edge < count, old.order_count < count if counted else None
    )
    m = quintile_score(
        model.monetary, lambda edge: edge < spend, old.monetary_value < spend if counted else None
    )
    # The same float as timedelta / timedelta, which divides whole microseconds too.
    gaps = [(b - a) / DAY_MICROS for a, b in itertools.pairwise(times)]
    typical = statistics.median(gaps) if gaps else None
    churn = model.churn
    gap = max(typical if typical is not None else churn.prior_gap_days, churn.gap_floor_days)
    ratio = days / gap
    risk = churn_risk(ratio, churn.midpoint, churn.steepness)
    record.update(
        {
            ct.ORDER_COUNT: count,
            ct.FIRST_ORDER_AT: iso(from_micros(times[0])),  # as a stored profile spells them
            ct.LAST_ORDER_AT: iso(last),
            ct.DAYS_SINCE_LAST_ORDER: days,
            ct.MONETARY_VALUE: spend,
            ct.R_SCORE: r,
            ct.F_SCORE: f,
            ct.M_SCORE: m,
            ct.RFM_SEGMENT: rfm_segment(r, f, days, churn.lost_after_days),
            ct.TYPICAL_GAP_DAYS: typical,
            ct.CHURN_RATIO: ratio,
            ct.CHURN_RISK: risk,
            ct.CHURN_RISK_LEVEL: churn_level(risk),
        }
    )
