"""What the recommender learns from in one run: order lines indexed once, split into training and test.

Two splits (docs/recommender.md, "Evaluation"). By default the last `holdout_days` of orders are the
test set. When that holds fewer than `min_holdout_customers` customers who bought on both sides of
the cut-off (and a last-orders split would hold more), each customer's last `holdout_orders` orders
are the test set instead, whole baskets, for customers with more orders than that; everything else,
other customers' later lines included, is training (as RecTools' `LastNSplitter`). The hold-out
model fits on the training lines, with customers' features rebuilt without what was held out (no
peeking at the test set); the served model fits on every line, with today's features.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import msgspec
import numpy as np
import polars as pl
import scipy.sparse as sp

from recsvc.domain import columns as c
from recsvc.domain.segments.catalog import SegmentRules
from recsvc.version.scoring import Purchases
from training.config import TrainingConfig
from training.customers.features import SegmentationConfig, resolve_as_of
from training.customers.table import build_customer_table
from training.recommender import dataset as ds
from training.recommender.dataset import FeatureSpace, TrainingPurchases

# Popularity (the artifact's `item_popularity`) counts the purchases of the last this many days.
POPULARITY_DAYS = 90


SplitKind = Literal["time", "last_orders"]


class HoldOutSplit(msgspec.Struct, frozen=True, kw_only=True):
    """Which split a run evaluated on and why: kept in the evaluation report and the run record."""

    kind: SplitKind  # "time": the last `holdout_days`; "last_orders": each customer's last orders
    # Customers it holds out who also bought in the training lines: the evaluated customers are
    # these (up to `max_eval_users` of them).
    customers: int
    time_customers: int  # what the time-based split held: below `min_customers`, it was not used
    min_customers: int  # `min_holdout_customers` of the run's config
    holdout_days: int
    orders: int = 0  # "last_orders": orders held out per customer


@dataclass(frozen=True, slots=True)
class HoldOut:
    """The data split into training and test: what the hold-out model fits on and is evaluated
    against."""

    split: HoldOutSplit
    # First day held out: every customer's ("time"); the earliest of any customer ("last_orders").
    cutoff_day: int
    # Each customer's first day held out (int32, by user index): the buy-again timing counts from
    # it. "time": the cut-off for everyone; "last_orders": the day of their first held-out order.
    test_from_day: np.ndarray
    customers: pl.DataFrame  # the customer table without what was held out
    users: FeatureSpace  # customers' features without it, indexed as `TrainingData.users`
    train_lines: pl.DataFrame  # order lines the hold-out model fits on
    test_lines: pl.DataFrame  # order lines held out (the gate scores on those neither model saw)
    train: TrainingPurchases  # purchases in the training lines
    test: Purchases  # purchases held out
    interactions: sp.coo_matrix  # weighted interactions of the training lines


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Products, customers and order lines as the recommender sees them, indexed once."""

    products: pl.DataFrame  # the products table with each product's price band
    price_edges: list[float]  # the price bands' edges
    items: FeatureSpace
    users: FeatureSpace  # customers' features at the end of the data
    lines: pl.DataFrame  # order lines that count as interactions: u, i, day, returned, order
    last_day: int  # the latest order's day
    holdout: HoldOut

    @property
    def rows(self) -> int:
        return self.lines.height

    def purchases(self) -> TrainingPurchases:
        return ds.purchases(self.lines, len(self.users.ids))

    def interactions(self, config: TrainingConfig) -> sp.coo_matrix:
        """Weighted interactions of every line, as of the day after the last."""
        return ds.interaction_matrix(
            self.lines, len(self.users.ids), len(self.items.ids), config.weights, self.last_day + 1
        )

    def popularity(self) -> np.ndarray:
        """Lines per item over the last `POPULARITY_DAYS` days."""
        recent = self.lines.filter(pl.col("day") > self.last_day - POPULARITY_DAYS)
        return np.bincount(recent["i"].to_numpy(), minlength=len(self.items.ids)).astype(np.float32)


def training_data(
    tables: Mapping[str, pl.LazyFrame],
    customer_table: pl.DataFrame,
    rules: SegmentRules,
    config: TrainingConfig,
    as_of: dt.datetime | None = None,
) -> TrainingData:
    """Index products, customers (from the customer table, built `as_of`: by default the latest
    order or answer) and order lines, and split them for the hold-out model."""
    products = tables[c.PRODUCTS].collect()
    edges = ds.price_edges(products[c.PRICE])
    products = ds.with_price_band(products, edges)
    items = ds.item_space(products)
    users = ds.user_space(customer_table)
    lines = ds.indexed_lines(tables[c.ORDERS], users, items)
    last_day = int(lines["day"].max() or 0) if lines.height else 0  # type: ignore[arg-type]
    if as_of is None:
        as_of = resolve_as_of(tables, SegmentationConfig())
    holdout = hold_out(tables, rules, users, items, lines, last_day, as_of, config)
    return TrainingData(products, edges, items, users, lines, last_day, holdout)


def hold_out(
    tables: Mapping[str, pl.LazyFrame],
    rules: SegmentRules,
    users: FeatureSpace,
    items: FeatureSpace,
    lines: pl.DataFrame,
    last_day: int,
    as_of: dt.datetime,
    config: TrainingConfig,
) -> HoldOut:
    """The time-based split, unless it holds too few customers and the last-orders split more."""
    cutoff_day = last_day - config.holdout_days + 1
    time_customers = customers_on_both_sides(
        lines["u"].to_numpy(),
        lines["returned"].to_numpy(),
        (lines["day"] >= cutoff_day).to_numpy(),
        len(users.ids),
    )
    split = HoldOutSplit(
        kind="time",
        customers=time_customers,
        time_customers=time_customers,
        min_customers=config.min_holdout_customers,
        holdout_days=config.holdout_days,
    )
    if time_customers < config.min_holdout_customers:
        # Only then are order ids read: a shop whose last weeks hold enough customers never pays.
        ordered = ds.indexed_lines(tables[c.ORDERS], users, items, with_orders=True)
        held = last_orders(ordered, config.holdout_orders)
        eligible = int(held["u"].n_unique())
        # "Enough" is the minimum, or every customer a last-orders split can hold when fewer exist.
        if time_customers < min(config.min_holdout_customers, eligible):
            split = msgspec.structs.replace(
                split, kind="last_orders", customers=eligible, orders=config.holdout_orders
            )
            return _last_orders_hold_out(
                tables, rules, users, items, ordered, held, last_day, as_of, split, config
            )
    return _time_hold_out(tables, rules, users, items, lines, cutoff_day, split, config)


def customers_on_both_sides(
    users: np.ndarray, returned: np.ndarray, held: np.ndarray, n_users: int
) -> int:
    """Customers with a purchase (a line not returned) both in training and held out."""
    kept = ~returned
    before = np.bincount(users[kept & ~held], minlength=n_users) > 0
    after = np.bincount(users[kept & held], minlength=n_users) > 0
    return int((before & after).sum())


def last_orders(lines: pl.DataFrame, k: int) -> pl.DataFrame:
    """Each customer's last `k` orders, for customers with more than `k`: (u, order_id, at).

    Lines need `order_id` and `at` (`indexed_lines(with_orders=True)`). An order is a customer's
    lines with one order id, whole (a basket is never split), at its earliest line's time; only
    orders with a line not returned count (an order returned whole is no purchase to predict, and
    stays in training). Later first; ties in time by the larger order id, so the choice repeats.
    """
    return (
        lines.group_by("u", c.ORDER_ID)
        .agg(pl.col("at").min(), (~pl.col("returned")).any().alias("kept"))
        .filter(pl.col("kept"))
        .sort(["u", "at", c.ORDER_ID], descending=[False, True, True])
        .with_columns(
            pl.int_range(pl.len()).over("u").alias("latest"), pl.len().over("u").alias("orders")
        )
        .filter((pl.col("latest") < k) & (pl.col("orders") > k))
        .select("u", c.ORDER_ID, "at")
    )


def _time_hold_out(
    tables: Mapping[str, pl.LazyFrame],
    rules: SegmentRules,
    users: FeatureSpace,
    items: FeatureSpace,
    lines: pl.DataFrame,
    cutoff_day: int,
    split: HoldOutSplit,
    config: TrainingConfig,
) -> HoldOut:
    """Split at `cutoff_day`; customers' features are rebuilt from the data before the cut-off."""
    cutoff = ds.EPOCH + dt.timedelta(days=cutoff_day)
    before = build_customer_table(
        tables_before(tables, cutoff), rules, SegmentationConfig(as_of=cutoff)
    )
    train_lines = lines.filter(pl.col("day") < cutoff_day)
    test_lines = lines.filter(pl.col("day") >= cutoff_day)
    return _split(
        split,
        cutoff_day,
        np.full(len(users.ids), cutoff_day, dtype=np.int32),
        before,
        users,
        items,
        train_lines,
        test_lines,
        cutoff_day,
        config,
    )


def _last_orders_hold_out(
    tables: Mapping[str, pl.LazyFrame],
    rules: SegmentRules,
    users: FeatureSpace,
    items: FeatureSpace,
    ordered: pl.DataFrame,
    held: pl.DataFrame,
    last_day: int,
    as_of: dt.datetime,
    split: HoldOutSplit,
    config: TrainingConfig,
) -> HoldOut:
    """Hold out the orders `held` (whole); customers' features are rebuilt as of `as_of` without
    them, nor their customer's survey answers from the first of them on."""
    marked = ordered.join(
        held.select("u", c.ORDER_ID, pl.lit(True).alias("test")),
        on=["u", c.ORDER_ID],
        how="left",
    ).with_columns(pl.col("test").fill_null(False))
    columns = ("u", "i", "day", "returned", "order")
    train_lines = marked.filter(~pl.col("test")).select(columns)
    test_lines = marked.filter(pl.col("test")).select(columns)
    first = test_lines.group_by("u").agg(pl.col("day").min())
    test_from_day = np.full(len(users.ids), last_day + 1, dtype=np.int32)
    test_from_day[first["u"].to_numpy()] = first["day"].to_numpy()
    customer_ids = pl.Series(c.CUSTOMER_ID, users.ids[held["u"].to_numpy()], dtype=pl.String)
    without = build_customer_table(
        tables_without(tables, held.with_columns(customer_ids).drop("u")),
        rules,
        SegmentationConfig(as_of=as_of),
    )
    return _split(
        split,
        int(first["day"].min() or last_day + 1),  # type: ignore[arg-type]
        test_from_day,
        without,
        users,
        items,
        train_lines,
        test_lines,
        last_day + 1,
        config,
    )


def _split(
    split: HoldOutSplit,
    cutoff_day: int,
    test_from_day: np.ndarray,
    customers: pl.DataFrame,
    users: FeatureSpace,
    items: FeatureSpace,
    train_lines: pl.DataFrame,
    test_lines: pl.DataFrame,
    as_of_day: int,
    config: TrainingConfig,
) -> HoldOut:
    eval_users = ds.user_space(
        pl.DataFrame({c.CUSTOMER_ID: users.ids}).join(customers, on=c.CUSTOMER_ID, how="left")
    )
    n_users, n_items = len(users.ids), len(items.ids)
    return HoldOut(
        split=split,
        cutoff_day=cutoff_day,
        test_from_day=test_from_day,
        customers=customers,
        users=eval_users,
        train_lines=train_lines,
        test_lines=test_lines,
        train=ds.purchases(train_lines, n_users),
        test=ds.purchases(test_lines, n_users),
        interactions=ds.interaction_matrix(
            train_lines, n_users, n_items, config.weights, as_of_day
        ),
    )


def tables_before(
    tables: Mapping[str, pl.LazyFrame], cutoff: dt.datetime
) -> dict[str, pl.LazyFrame]:
    """The tables as they stood at the cut-off: later orders and survey answers removed."""
    out = dict(tables)
    out[c.ORDERS] = tables[c.ORDERS].filter(pl.col(c.ORDERED_AT) < cutoff)
    for name in (c.NPS_RESPONSES, c.CSAT_RESPONSES, c.CES_RESPONSES):
        if name in tables:
            out[name] = tables[name].filter(pl.col(c.RESPONDED_AT) < cutoff)
    return out


def tables_without(
    tables: Mapping[str, pl.LazyFrame], held: pl.DataFrame
) -> dict[str, pl.LazyFrame]:
    """The tables without the held-out orders (`held`: customer_id, order_id, at), every line of
    them, and without their customers' survey answers from the first of them on."""
    out = dict(tables)
    orders = held.select(c.CUSTOMER_ID, c.ORDER_ID).lazy()
    out[c.ORDERS] = tables[c.ORDERS].join(orders, on=[c.CUSTOMER_ID, c.ORDER_ID], how="anti")
    first = held.group_by(c.CUSTOMER_ID).agg(pl.col("at").min().alias("_held_from")).lazy()
    for name in (c.NPS_RESPONSES, c.CSAT_RESPONSES, c.CES_RESPONSES):
        if name in tables:
            out[name] = (
                tables[name]
                .join(first, on=c.CUSTOMER_ID, how="left")
                .filter(
                    pl.col("_held_from").is_null() | (pl.col(c.RESPONDED_AT) < pl.col("_held_from"))
                )
                .drop("_held_from")
            )
    return out


@dataclass(frozen=True, slots=True)
class Validation:
    """A second split inside the hold-out's training lines, for choosing settings (the search)
    without touching the hold-out that reports and gates: the last `holdout_days` of the training
    lines when they hold `min_holdout_customers` customers on both sides, otherwise each
    customer's last purchase day (for customers who bought on two days or more)."""

    kind: SplitKind
    customers: int  # customers who bought on both sides
    interactions: sp.coo_matrix  # weighted interactions of the lines before it
    train: Purchases
    test: Purchases


def validation_split(
    lines: pl.DataFrame, n_users: int, n_items: int, config: TrainingConfig
) -> Validation:
    """`Validation` of the training lines `lines` (u, i, day, returned)."""
    last_day = int(lines["day"].max() or 0)  # type: ignore[arg-type]
    cutoff_day = last_day - config.holdout_days + 1
    users, returned = lines["u"].to_numpy(), lines["returned"].to_numpy()
    held = (lines["day"] >= cutoff_day).to_numpy()
    kind: SplitKind = "time"
    customers = customers_on_both_sides(users, returned, held, n_users)
    as_of_day = cutoff_day
    if customers < config.min_holdout_customers:
        kept_day = pl.col("day").filter(~pl.col("returned"))
        by_day_held = (
            lines.select(
                (
                    (pl.col("day") == kept_day.max().over("u"))
                    & (kept_day.n_unique().over("u") > 1)
                ).fill_null(False)
            )
            .to_series()
            .to_numpy()
        )
        by_day_customers = customers_on_both_sides(users, returned, by_day_held, n_users)
        if by_day_customers > customers:
            kind, held, customers, as_of_day = (
                "last_orders",
                by_day_held,
                by_day_customers,
                last_day + 1,
            )
    before = lines.filter(pl.Series(~held))
    after = lines.filter(pl.Series(held))
    return Validation(
        kind=kind,
        customers=customers,
        interactions=ds.interaction_matrix(before, n_users, n_items, config.weights, as_of_day),
        train=ds.purchases(before, n_users),
        test=ds.purchases(after, n_users),
    )
