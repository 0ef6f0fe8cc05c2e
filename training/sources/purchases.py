"""Order lines of simulated customers: baskets at random times, reorders of consumables,
deliveries (late more often in the holiday peak and far away), returns and cancellations
(docs/demo-data.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recsvc.domain import columns as c
from training.sources.draws import pick, readable_ids, to_datetime
from training.sources.feedback_model import US_PER_DAY, US_PER_HOUR
from training.sources.shop import CATEGORIES, TASTE_GROUPS, Catalogue, Window

# Where a line's product comes from: the customer's own taste group, their second one, or the shop's
# overall bestsellers.
OWN_TASTE, SECOND_TASTE = 0.75, 0.10
EXTRA_LINES_MEAN = 1.2  # a basket has 1 + Poisson(1.2) distinct products
CANCELLED = 0.025
REORDER_SHARE = 0.45
# Extra promised shipping days and extra chance of a late delivery, by country (`shop.COUNTRIES`;
# the shop ships from DE).
COUNTRY_SHIPPING_DAYS = np.array([0, 1, 2, 1, 2, 2, 1, 2, 0, 5])
COUNTRY_LATE_EXTRA = np.array([0.0, 0.02, 0.05, 0.01, 0.03, 0.04, 0.02, 0.02, 0.0, 0.08])
_STATUSES = ("placed", "delivered", "returned", "cancelled")


@dataclass(frozen=True, slots=True)
class Customers:
    """A chunk's customers as far as their orders go (arrays aligned with the chunk's customers)."""

    customer_id: pl.Series
    taste: np.ndarray
    second: np.ndarray  # second taste group
    country: np.ndarray
    active_from: np.ndarray  # microseconds: the first instant they may order
    n_orders: np.ndarray  # baskets (before reorders)


@dataclass(frozen=True, slots=True)
class _Baskets:
    owner: np.ndarray  # per basket: the customer (index into the chunk)
    ordered_at: np.ndarray  # per basket, microseconds
    cancelled: np.ndarray  # per basket
    line_order: np.ndarray  # per line: the basket
    line_product: np.ndarray  # per line


@dataclass(frozen=True, slots=True)
class _Timeline:
    """Every order (baskets, then reorders) sorted by customer and time: order numbers follow it."""

    owner: np.ndarray  # per order
    ordered_at: np.ndarray  # per order
    cancelled: np.ndarray  # per order
    line_rank: np.ndarray  # per line: its order's number in the timeline
    line_product: np.ndarray  # per line


def order_lines(
    catalogue: Catalogue,
    window: Window,
    rng: np.random.Generator,
    customers: Customers,
    order_offset: int,
) -> pl.DataFrame:
    """Order lines of a chunk: baskets at random times, then reorders of consumables."""
    baskets = _baskets(catalogue, window, rng, customers)
    source, reorder_at = _reorders(
        catalogue,
        window,
        rng,
        baskets.ordered_at,
        baskets.cancelled,
        baskets.line_order,
        baskets.line_product,
    )
    timeline = _timeline(rng, baskets, source, reorder_at)
    return _lines_frame(catalogue, window, rng, customers, timeline, order_offset)


def _baskets(
    catalogue: Catalogue, window: Window, rng: np.random.Generator, customers: Customers
) -> _Baskets:
    # Times uniform over each customer's active span, some pulled into the holiday peak.
    active_from = customers.active_from
    owner = np.repeat(np.arange(len(customers.n_orders)), customers.n_orders)
    span = window.end_us - active_from[owner]
    ordered_at = active_from[owner] + (rng.random(len(owner)) * span).astype(np.int64)
    year_start = (
        ordered_at.astype("datetime64[us]").astype("datetime64[Y]").astype("datetime64[us]")
    )
    peak = year_start.astype(np.int64) + ((319 + rng.random(len(owner)) * 40) * US_PER_DAY).astype(
        np.int64
    )
    to_peak = (
        (rng.random(len(owner)) < 0.12) & (peak >= active_from[owner]) & (peak <= window.end_us)
    )
    ordered_at = np.where(to_peak, peak, ordered_at)

    lines_per_order = 1 + rng.poisson(EXTRA_LINES_MEAN, len(owner))
    line_order = np.repeat(np.arange(len(owner)), lines_per_order)
    line_product = _choose_products(
        catalogue,
        rng,
        customers.taste[owner[line_order]],
        customers.second[owner[line_order]],
    )
    # The same product twice in one basket is one line.
    n_products = len(catalogue.price)
    _, first = np.unique(line_order * n_products + line_product, return_index=True)
    first.sort()
    cancelled = rng.random(len(owner)) < CANCELLED
    return _Baskets(owner, ordered_at, cancelled, line_order[first], line_product[first])


def _timeline(
    rng: np.random.Generator, baskets: _Baskets, source: np.ndarray, reorder_at: np.ndarray
) -> _Timeline:
    """Baskets and reorders (single-line orders repeating line `source`) in one timeline."""
    owner = np.concatenate([baskets.owner, baskets.owner[baskets.line_order[source]]])
    ordered_at = np.concatenate([baskets.ordered_at, reorder_at])
    cancelled = np.concatenate([baskets.cancelled, rng.random(len(source)) < CANCELLED])
    line_order = np.concatenate([baskets.line_order, len(baskets.owner) + np.arange(len(source))])
    line_product = np.concatenate([baskets.line_product, baskets.line_product[source]])
    # Order numbers follow each customer's timeline.
    by_time = np.lexsort((ordered_at, owner))
    rank = np.empty_like(by_time)
    rank[by_time] = np.arange(len(by_time))
    line_rank = rank[line_order]
    line_sort = np.lexsort((line_product, line_rank))
    return _Timeline(
        owner=owner[by_time],
        ordered_at=ordered_at[by_time],
        cancelled=cancelled[by_time],
        line_rank=line_rank[line_sort],
        line_product=line_product[line_sort],
    )


def _lines_frame(
    catalogue: Catalogue,
    window: Window,
    rng: np.random.Generator,
    customers: Customers,
    timeline: _Timeline,
    order_offset: int,
) -> pl.DataFrame:
    """The contract's order lines: deliveries, returns (more of late ones), quantities, discounts."""
    line_rank, line_product = timeline.line_rank, timeline.line_product
    owner_o, cancelled_o = timeline.owner, timeline.cancelled
    promised_o, delivered_o, late_o = _delivery(
        rng, timeline.ordered_at, customers.country[owner_o]
    )
    placed_o = ~cancelled_o & (delivered_o > window.end_us)
    delivered_known = ~cancelled_o & ~placed_o
    return_rate = np.array([cat.return_rate for cat in CATEGORIES])[
        catalogue.category[line_product]
    ]
    returned = delivered_known[line_rank] & (
        rng.random(len(line_rank)) < return_rate * np.where(late_o[line_rank], 1.6, 1.0)
    )
    status_code = np.select(
        [cancelled_o[line_rank], placed_o[line_rank], returned], [3, 0, 2], default=1
    )
    consumable = catalogue.consumable[line_product]
    quantity = 1 + np.where(
        consumable, rng.poisson(0.6, len(line_rank)), rng.random(len(line_rank)) < 0.06
    )
    discount = np.where(
        rng.random(len(line_rank)) < 0.12, rng.uniform(0.1, 0.3, len(line_rank)), 0.0
    )
    unit_price = np.round(catalogue.price[line_product] * (1.0 - discount), 2)
    delivered = to_datetime(delivered_o[line_rank])
    return pl.DataFrame(
        {
            c.ORDER_ID: readable_ids("O", order_offset + 1 + line_rank, 9),
            c.CUSTOMER_ID: customers.customer_id.gather(owner_o[line_rank]),
            c.PRODUCT_ID: catalogue.product_id.gather(line_product),
            c.QUANTITY: pl.Series(quantity, dtype=pl.Int64),
            c.UNIT_PRICE: unit_price,
            c.ORDERED_AT: to_datetime(timeline.ordered_at[line_rank]),
            c.PROMISED_DELIVERY_AT: to_datetime(promised_o[line_rank]),
            c.DELIVERED_AT: delivered.scatter(np.flatnonzero(~delivered_known[line_rank]), None),
            c.STATUS: pl.Series(_STATUSES, dtype=pl.String).gather(status_code),
        }
    ).select(
        # The shop's own line id (what the live intake and the nightly run dedupe by): the
        # order id and the line's number in it.
        pl.concat_str(
            c.ORDER_ID, pl.lit("-"), (pl.int_range(pl.len()).over(c.ORDER_ID) + 1).cast(pl.String)
        ).alias(c.LINE_ID),
        pl.all(),
    )


def _choose_products(
    catalogue: Catalogue, rng: np.random.Generator, taste: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """One product per line, for customers of the given taste groups (arrays aligned with lines)."""
    u = rng.random(len(taste))
    source = rng.random(len(taste))
    group = np.where(
        source < OWN_TASTE, taste, np.where(source < OWN_TASTE + SECOND_TASTE, second, -1)
    )
    product = np.empty(len(taste), dtype=np.int64)
    bestsellers = group < 0
    product[bestsellers] = pick(catalogue.global_cdf, u[bestsellers])
    for g in range(TASTE_GROUPS):
        mask = group == g
        product[mask] = pick(catalogue.group_cdf[g], u[mask])
    return product


def _reorders(
    catalogue: Catalogue,
    window: Window,
    rng: np.random.Generator,
    ordered_at: np.ndarray,
    cancelled: np.ndarray,
    line_order: np.ndarray,
    line_product: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchases of consumables: many consumable lines start a chain of single-line orders at
    the product's typical interval (each customer a little faster or slower). Returns the line each
    reorder repeats and its time."""
    starts = np.flatnonzero(
        catalogue.consumable[line_product]
        & ~cancelled[line_order]
        & (rng.random(len(line_order)) < REORDER_SHARE)
    )
    interval_days = catalogue.reorder_days[line_product[starts]] * rng.lognormal(
        0.0, 0.2, len(starts)
    )
    interval_us = (interval_days * US_PER_DAY).astype(np.int64)
    room = (window.end_us - ordered_at[line_order[starts]]) // np.maximum(interval_us, 1)
    repeats = np.maximum(np.minimum(rng.geometric(0.35, len(starts)), room), 0)
    source = np.repeat(starts, repeats)
    step = np.arange(len(source)) - np.repeat(np.cumsum(repeats) - repeats, repeats) + 1
    reorder_at = ordered_at[line_order[source]] + (
        step * np.repeat(interval_us, repeats) * rng.lognormal(0.0, 0.06, len(source))
    ).astype(np.int64)
    keep = reorder_at <= window.end_us
    return source[keep], reorder_at[keep]


def _delivery(
    rng: np.random.Generator, ordered_at: np.ndarray, country: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Promised and actual delivery per order: late more often in the holiday peak and far away."""
    n = len(ordered_at)
    promised_days = 2 + rng.poisson(1.0, n) + COUNTRY_SHIPPING_DAYS[country]
    # Promised by 20:00 on the promised day.
    promised = (ordered_at // US_PER_DAY + promised_days) * US_PER_DAY + 20 * US_PER_HOUR
    day_of_year = (
        (
            ordered_at.astype("datetime64[us]")
            - ordered_at.astype("datetime64[us]").astype("datetime64[Y]")
        )
        .astype("timedelta64[D]")
        .astype(np.int64)
    )
    in_peak = day_of_year >= 318
    late = rng.random(n) < 0.09 + 0.15 * in_peak + COUNTRY_LATE_EXTRA[country]
    late_by = ((0.15 + rng.exponential(1.8, n)) * US_PER_DAY).astype(np.int64)
    early_by = (rng.random(n) * np.maximum(promised - ordered_at - 12 * US_PER_HOUR, 0)).astype(
        np.int64
    )
    delivered = np.where(late, promised + late_by, promised - early_by)
    return promised, delivered, late
