"""Delivery triggers' orders without I/O: a version's recent orders merged with the live and
archived order lines (a live revision the version never took in wins; one it took in does not
undo the version's newer record)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from recsvc.domain.live import LiveOrderLine
from recsvc.domain.surveys import RECENT_ORDER_DAYS, SurveyRules
from recsvc.service.surveys import RecentOrders, merge_with_version, orders_from_lines
from recsvc.version.recent_orders import RecentOrder, RecentOrdersFile

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
CUSTOMERS = np.asarray(["C1", "C2", "C3"])


def line(
    order: str, customer: str, status: str, delivered: dt.datetime | None = None, n: int = 1
) -> LiveOrderLine:
    return LiveOrderLine(
        line_id=f"{order}-{n}",
        order_id=order,
        customer_id=customer,
        product_id="P1",
        quantity=1,
        unit_price=10.0,
        ordered_at=T0,
        delivered_at=delivered,
        status=status,
        received_at=T0,
    )


def version_orders(*orders: RecentOrder) -> RecentOrders:
    return RecentOrders.of(RecentOrdersFile(as_of=T0, days=45, orders=list(orders)), CUSTOMERS)


def test_a_live_revision_the_version_never_took_in_replaces_the_versions_order() -> None:
    recent = version_orders(RecentOrder("C1", "O1", T0, None, False))
    delivered = line("O1", "C1", "delivered", T0 + dt.timedelta(days=2))
    orders, replaced = merge_with_version(orders_from_lines([delivered]), recent, lambda k: [False])
    assert replaced == {"O1"}
    assert [(o.order_id, o.delivered) for o in orders] == [("O1", T0 + dt.timedelta(days=2))]


def test_a_revision_the_version_took_in_leaves_the_versions_newer_record_standing() -> None:
    # The run took the live "placed" line in, then the shop's file said delivered: the version's.
    recent = version_orders(RecentOrder("C2", "O2", T0, T0 + dt.timedelta(days=3), False))
    placed = line("O2", "C2", "placed")
    orders, replaced = merge_with_version(orders_from_lines([placed]), recent, lambda k: [True])
    assert orders == [] and replaced == set()


def test_orders_the_version_lacks_count_and_without_a_history_the_lines_win() -> None:
    recent = version_orders(RecentOrder("C1", "O1", T0, None, False))
    lines = [line("O1", "C1", "cancelled"), line("O3", "C3", "placed")]
    orders, replaced = merge_with_version(orders_from_lines(lines), recent, None)
    assert {o.order_id: o.cancelled for o in orders} == {"O1": True, "O3": False}
    assert replaced == {"O1"}
    # A version without the file: every line's order counts as before.
    none = RecentOrders.of(None, CUSTOMERS)
    assert merge_with_version(orders_from_lines(lines), none, None) == (
        orders_from_lines(lines),
        set(),
    )


def test_the_recent_orders_reach_past_the_default_rules_horizon() -> None:
    assert SurveyRules().delivery_horizon_days + 30 <= RECENT_ORDER_DAYS
