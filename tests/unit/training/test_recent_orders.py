"""The training run's table of recent orders (`training.publish.recent_orders`) on a few rows:
the last days' orders only, placed at the first line, delivered at the latest, cancelled when
every line is."""

from __future__ import annotations

import datetime as dt

import polars as pl

from recsvc.domain.surveys import RECENT_ORDER_DAYS
from recsvc.version.recent_orders import RecentOrder
from training.publish.recent_orders import recent_orders


def test_the_run_keeps_orders_placed_in_the_last_days_with_placing_delivery_and_cancelling() -> (
    None
):
    end = dt.datetime(2026, 3, 1, 12)
    at = [end - dt.timedelta(days=d) for d in (50, 10, 9, 2, 1)]
    frame = pl.LazyFrame(
        {
            "order_id": ["OLD", "A", "A", "B", "X"],
            "customer_id": ["C1", "C1", "C1", "C2", "C3"],
            "ordered_at": at,
            "delivered_at": [at[0], at[1] + dt.timedelta(days=2), at[1], None, None],
            "status": ["delivered", "delivered", "delivered", "placed", "cancelled"],
        }
    )
    table = recent_orders(frame, end)
    assert table.as_of == end.replace(tzinfo=dt.UTC) and table.days == RECENT_ORDER_DAYS
    utc = dt.UTC
    assert table.orders == [
        RecentOrder(
            "C1",
            "A",
            at[1].replace(tzinfo=utc),
            (at[1] + dt.timedelta(days=2)).replace(tzinfo=utc),
            False,
        ),
        RecentOrder("C2", "B", at[3].replace(tzinfo=utc), None, False),
        RecentOrder("C3", "X", at[4].replace(tzinfo=utc), None, True),
    ]
