"""A version's recent orders (format: `recsvc.version.recent_orders`): per order placed in the last
`RECENT_ORDER_DAYS` before the data's end, when it was placed and delivered and whether it was
cancelled, for the service's delivery survey triggers.

Built from the run's orders table (the shop's files with the live lines merged, erased customers'
rows already left out), as the service builds an order from its live lines
(`recsvc.service.surveys`): placed at the earliest line's `ordered_at`, delivered at the latest
`delivered_at` of its lines (None when no line has one), cancelled when every line is.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.surveys import RECENT_ORDER_DAYS
from recsvc.domain.times import naive_utc, utc
from recsvc.version.recent_orders import RecentOrder, RecentOrdersFile, write_recent_orders

_PLACED, _DELIVERED, _CANCELLED = "_placed", "_delivered", "_cancelled"


def recent_order_frame(
    orders: pl.LazyFrame, as_of: dt.datetime, days: int = RECENT_ORDER_DAYS
) -> pl.LazyFrame:
    """One row per order placed at most `days` before `as_of`: customer id, order id, placed,
    delivered (null: not yet), cancelled; by order id."""
    since = naive_utc(as_of) - dt.timedelta(days=days)
    return (
        orders.group_by(c.ORDER_ID)
        .agg(
            pl.col(c.CUSTOMER_ID).first(),
            pl.col(c.ORDERED_AT).min().alias(_PLACED),
            pl.col(c.DELIVERED_AT).max().alias(_DELIVERED),
            (pl.col(c.STATUS) == "cancelled").fill_null(False).all().alias(_CANCELLED),
        )
        .filter(pl.col(_PLACED) >= since)
        .select(c.CUSTOMER_ID, c.ORDER_ID, _PLACED, _DELIVERED, _CANCELLED)
        .sort(c.ORDER_ID)
    )


def recent_orders(
    orders: pl.LazyFrame, as_of: dt.datetime, days: int = RECENT_ORDER_DAYS
) -> RecentOrdersFile:
    """The recent orders of the run's `orders` as of the data's end `as_of`."""
    frame = recent_order_frame(orders, as_of, days).collect()
    return RecentOrdersFile(
        as_of=utc(as_of),
        days=days,
        orders=[
            RecentOrder(customer, order, placed, delivered, cancelled)
            for customer, order, placed, delivered, cancelled in frame.iter_rows()
        ],
    )


def write_recent_order_file(
    directory: Path, orders: pl.LazyFrame, as_of: dt.datetime
) -> RecentOrdersFile:
    """Build the recent orders and write them into the artifact `directory`."""
    recent = recent_orders(orders, as_of)
    write_recent_orders(directory, recent)
    return recent
