"""What the recommender learns from in one run: order lines indexed once, split at the hold-out cut-off.

The last `holdout_days` of orders are the test set. The hold-out model fits on the lines before the
cut-off, with customers' features as they stood at the cut-off (no peeking at the hold-out); the
served model fits on every line, with today's features.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsvc.domain import columns as c
from recsvc.domain.segments.catalog import SegmentRules
from recsvc.version.scoring import Purchases
from training.config import TrainingConfig
from training.customers.features import SegmentationConfig
from training.customers.table import build_customer_table
from training.recommender import dataset as ds
from training.recommender.dataset import FeatureSpace

# Popularity (the artifact's `item_popularity`) counts the purchases of the last this many days.
POPULARITY_DAYS = 90


@dataclass(frozen=True, slots=True)
class HoldOut:
    """The data split at the cut-off: what the hold-out model fits on and is evaluated against."""

    cutoff_day: int  # first day held out (days since the epoch)
    customers: pl.DataFrame  # the customer table as it stood at the cut-off
    users: FeatureSpace  # customers' features at the cut-off, indexed as `TrainingData.users`
    train_lines: pl.DataFrame  # order lines before the cut-off
    train: Purchases  # purchases before the cut-off
    test: Purchases  # purchases from the cut-off on
    interactions: sp.coo_matrix  # weighted interactions before the cut-off


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Products, customers and order lines as the recommender sees them, indexed once."""

    products: pl.DataFrame  # the products table with each product's price band
    price_edges: list[float]  # the price bands' edges
    items: FeatureSpace
    users: FeatureSpace  # customers' features at the end of the data
    lines: pl.DataFrame  # order lines that count as interactions: u, i, day, returned
    last_day: int  # the latest order's day
    holdout: HoldOut

    @property
    def rows(self) -> int:
        return self.lines.height

    def purchases(self) -> Purchases:
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
) -> TrainingData:
    """Index products, customers (from the customer table) and order lines, and split at the cut-off."""
    products = tables[c.PRODUCTS].collect()
    edges = ds.price_edges(products[c.PRICE])
    products = ds.with_price_band(products, edges)
    items = ds.item_space(products)
    users = ds.user_space(customer_table)
    lines = ds.indexed_lines(tables[c.ORDERS], users, items)
    last_day = int(lines["day"].max() or 0) if lines.height else 0  # type: ignore[arg-type]
    holdout = hold_out(
        tables, rules, users, items, lines, last_day - config.holdout_days + 1, config
    )
    return TrainingData(products, edges, items, users, lines, last_day, holdout)


def hold_out(
    tables: Mapping[str, pl.LazyFrame],
    rules: SegmentRules,
    users: FeatureSpace,
    items: FeatureSpace,
    lines: pl.DataFrame,
    cutoff_day: int,
    config: TrainingConfig,
) -> HoldOut:
    """Split at `cutoff_day`; customers' features are rebuilt from the data before the cut-off."""
    cutoff = ds.EPOCH + dt.timedelta(days=cutoff_day)
    before = build_customer_table(
        tables_before(tables, cutoff), rules, SegmentationConfig(as_of=cutoff)
    )
    eval_users = ds.user_space(
        pl.DataFrame({c.CUSTOMER_ID: users.ids}).join(before, on=c.CUSTOMER_ID, how="left")
    )
    train_lines = lines.filter(pl.col("day") < cutoff_day)
    n_users, n_items = len(users.ids), len(items.ids)
    return HoldOut(
        cutoff_day=cutoff_day,
        customers=before,
        users=eval_users,
        train_lines=train_lines,
        train=ds.purchases(train_lines, n_users),
        test=ds.purchases(lines.filter(pl.col("day") >= cutoff_day), n_users),
        interactions=ds.interaction_matrix(
            train_lines, n_users, n_items, config.weights, cutoff_day
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
