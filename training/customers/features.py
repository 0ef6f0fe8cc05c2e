"""The per-customer table: NPS state, RFM, deliveries, churn risk and survey scores, from clean tables.

Each feature family is a LazyFrame -> LazyFrame function over the validated contract tables;
`training.customers.table` joins them onto the customers table (every customer, with or without
orders or answers), adds the segment memberships and collects once. Column names come from
`recsvc.domain.customer_table`.

Definitions (also in docs/segments-and-nps.md; `recsvc.domain.rfm` rescores one customer by the
same ones when a live order arrives):
- `as_of` is the run's "today": by default the latest order or survey timestamp in the data, so a
  re-run on the same data gives the same table. Events after `as_of` are ignored.
- An order is the set of lines sharing an order id. Cancelled lines are ignored; an order whose lines
  are all cancelled does not count. Monetary value is net spend: lines neither cancelled nor returned.
- RFM scores are rank-based quintiles over customers with at least one order:
  score = 1 + floor(5 * share of customers with a strictly worse value). Equal values always get
  the same score (so a score can be skipped when many customers tie, e.g. F when most bought once).
  R ranks fewer days since the last order as better, F more orders, M more net spend.
- Churn risk compares days since the last order with the customer's own typical gap (median days
  between consecutive orders; for one-order customers the median typical gap of all repeat
  customers), floored at `churn_gap_floor_days`: ratio = days / gap and
  risk = 1 / (1 + exp(-steepness * (ratio - midpoint))), by default 0.5 at twice the usual gap,
  0.12 at the usual gap, 0.88 at three times it. Levels: high >= 0.7 > medium >= 0.3 > low.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.nps import PASSIVE_MIN, PROMOTER_MIN, NpsCategory
from recsvc.domain.rfm import HIGH_CHURN_RISK, MEDIUM_CHURN_RISK
from recsvc.domain.themes import LEXICON, theme_pattern
from recsvc.errors import DataContractError

DAY_SECONDS = 86_400.0

# Order-level columns (one row per order), shared with the report.
ORDER_VALUE = "order_value"
ORDER_LINES = "order_lines"
RETURNED_LINES = "returned_lines"
DELIVERED = "delivered"
LATE = "late"
ORDER_CATEGORY = "order_category"  # category of the order's largest line by value


@dataclass(frozen=True, slots=True)
class SegmentationConfig:
    """Parameters of the segmentation step; the defaults are the documented ones."""

    as_of: dt.datetime | None = None  # None: the latest order or survey timestamp in the data
    lost_after_days: int = 365  # no order for longer than this: RFM segment `lost`
    min_n: int = 30  # report groups with fewer answers are shown but marked too small
    churn_gap_floor_days: float = 7.0  # typical gaps shorter than this count as this
    churn_midpoint: float = 2.0  # days-since-last-order / typical-gap where the risk is 0.5
    churn_steepness: float = 2.0
    default_gap_days: float = 90.0  # prior gap when no customer has ordered twice
    favourite_categories: int = 3
    churn_period: str = "1q"  # polars duration of the periods in the report's churn rate

    def __post_init__(self) -> None:
        if self.lost_after_days <= 0:
            raise ValueError("lost_after_days must be positive")
        if self.churn_gap_floor_days <= 0 or self.default_gap_days <= 0:
            raise ValueError("gap days must be positive")


# --- small expressions ---------------------------------------------------------------------------


def nps_category_expr(score: pl.Expr) -> pl.Expr:
    """promoter (9-10), passive (7-8), detractor (0-6), unknown (no answer); see recsvc.domain.nps."""
    return (
        pl.when(score >= PROMOTER_MIN)
        .then(pl.lit(NpsCategory.PROMOTER.value))
        .when(score >= PASSIVE_MIN)
        .then(pl.lit(NpsCategory.PASSIVE.value))
        .when(score.is_not_null())
        .then(pl.lit(NpsCategory.DETRACTOR.value))
        .otherwise(pl.lit(NpsCategory.UNKNOWN.value))
    )


def days_between(earlier: pl.Expr, as_of: dt.datetime) -> pl.Expr:
    """Whole days from `earlier` to `as_of` (Int64; null when `earlier` is null)."""
    return (pl.lit(as_of, dtype=pl.Datetime("us")) - earlier).dt.total_days().cast(pl.Int64)


def quintile_score(value: pl.Expr, *, higher_is_better: bool = True) -> pl.Expr:
    """1 + floor(5 * share of non-null values strictly worse than this one); null stays null."""
    worse = value.rank("min", descending=not higher_is_better).cast(pl.Int64) - 1
    return (worse * 5 // value.count().cast(pl.Int64) + 1).cast(pl.Int64)


def rfm_segment_expr(r: pl.Expr, f: pl.Expr) -> pl.Expr:
    """The standard RFM map on (R, F) 1..5 (see recsvc.domain.customer_table.RFM_CELLS)."""
    mapping = {r_ * 10 + f_: name for (r_, f_), name in ct.rfm_cell_map().items()}
    return (r * 10 + f).replace_strict(mapping, default=None, return_dtype=pl.String)


def churn_risk_expr(ratio: pl.Expr, midpoint: float, steepness: float) -> pl.Expr:
    """Logistic churn risk 0..1 of `days since last order / typical gap`."""
    return 1.0 / (1.0 + (-(ratio - midpoint) * steepness).exp())


def churn_level_expr(risk: pl.Expr) -> pl.Expr:
    return (
        pl.when(risk >= HIGH_CHURN_RISK)
        .then(pl.lit("high"))
        .when(risk >= MEDIUM_CHURN_RISK)
        .then(pl.lit("medium"))
        .when(risk.is_not_null())
        .then(pl.lit("low"))
    )


# --- as_of ---------------------------------------------------------------------------------------


def resolve_as_of(tables: Mapping[str, pl.LazyFrame], config: SegmentationConfig) -> dt.datetime:
    """The configured `as_of`, or the latest order or survey timestamp in the data."""
    if config.as_of is not None:
        return config.as_of
    stamps = [tables[c.ORDERS].select(pl.col(c.ORDERED_AT).max().alias("t"))]
    for name in (c.NPS_RESPONSES, c.CSAT_RESPONSES, c.CES_RESPONSES):
        if name in tables:
            stamps.append(tables[name].select(pl.col(c.RESPONDED_AT).max().alias("t")))
    latest = pl.concat(stamps).select(pl.col("t").max()).collect().item()
    if latest is None:
        raise DataContractError("no orders and no survey answers: nothing to date the run by")
    return latest


# --- customer keys -------------------------------------------------------------------------------

# Row number of the customer in the customers table. Grouping and sorting millions of order lines by
# an integer is several times faster than by the id text, so `index_customers` swaps every event
# table's customer_id for this number once, at the start; the customer table maps it back at the end.
CUSTOMER_ROW = "_customer_row"
_EVENT_TABLES = (c.ORDERS, c.NPS_RESPONSES, c.CSAT_RESPONSES, c.CES_RESPONSES)


def index_customers(tables: Mapping[str, pl.LazyFrame]) -> dict[str, pl.LazyFrame]:
    """The tables with customer_id in orders and answers replaced by the customer's row number.

    The customers table gains a `_customer_row` column. Events of customers missing from the
    customers table are dropped (the validator already quarantines them). Idempotent.
    """
    customers = tables[c.CUSTOMERS]
    if CUSTOMER_ROW in customers.collect_schema().names():
        return dict(tables)
    customers = customers.with_row_index(CUSTOMER_ROW)
    rows = customers.select(c.CUSTOMER_ID, CUSTOMER_ROW)
    indexed = dict(tables)
    indexed[c.CUSTOMERS] = customers
    for name in _EVENT_TABLES:
        if name in tables:
            columns = tables[name].collect_schema().names()
            indexed[name] = (
                tables[name]
                .join(rows, on=c.CUSTOMER_ID, how="inner")
                .select(
                    pl.col(CUSTOMER_ROW).alias(c.CUSTOMER_ID) if n == c.CUSTOMER_ID else n
                    for n in columns
                )
            )
    return indexed


# --- orders --------------------------------------------------------------------------------------


def order_facts(orders: pl.LazyFrame, products: pl.LazyFrame, as_of: dt.datetime) -> pl.LazyFrame:
    """One row per order placed by `as_of` with at least one line not cancelled.

    Columns: customer_id, order_id, ordered_at (earliest line), order_value (net of returns),
    order_lines (lines not cancelled), returned_lines, delivered (any line delivered), late (any
    line delivered after its promised date), delivered_at (latest line), order_category.
    """
    status = pl.col(c.STATUS).fill_null("delivered")
    value = pl.col(c.QUANTITY) * pl.col(c.UNIT_PRICE)
    lines = (
        orders.select(
            c.ORDER_ID,
            c.CUSTOMER_ID,
            c.PRODUCT_ID,
            c.QUANTITY,
            c.UNIT_PRICE,
            c.ORDERED_AT,
            c.PROMISED_DELIVERY_AT,
            c.DELIVERED_AT,
            c.STATUS,
        )
        .filter(pl.col(c.ORDERED_AT) <= as_of, status != "cancelled")
        .join(products.select(c.PRODUCT_ID, c.CATEGORY), on=c.PRODUCT_ID, how="left")
    )
    return lines.group_by(c.CUSTOMER_ID, c.ORDER_ID).agg(
        pl.col(c.ORDERED_AT).min(),
        value.filter(status != "returned").sum().alias(ORDER_VALUE),
        pl.len().cast(pl.Int64).alias(ORDER_LINES),
        (status == "returned").sum().cast(pl.Int64).alias(RETURNED_LINES),
        pl.col(c.DELIVERED_AT).is_not_null().any().alias(DELIVERED),
        (pl.col(c.DELIVERED_AT) > pl.col(c.PROMISED_DELIVERY_AT)).any().alias(LATE),
        pl.col(c.DELIVERED_AT).max(),
        pl.col(c.CATEGORY)
        .sort_by([value, pl.col(c.CATEGORY)], descending=[True, False])
        .first()
        .alias(ORDER_CATEGORY),
    )


def purchase_behaviour(
    facts: pl.LazyFrame, as_of: dt.datetime, config: SegmentationConfig
) -> pl.LazyFrame:
    """Per customer with an order: counts, recency, spend, returns, deliveries, RFM and churn risk."""
    # Sorted by customer and time once: the gap to the previous order is a plain shifted difference
    # (no per-group work) and `last(ignore_nulls=True)` picks the latest delivered order's lateness.
    same_customer = pl.col(c.CUSTOMER_ID) == pl.col(c.CUSTOMER_ID).shift(1)
    gap_days = pl.col(c.ORDERED_AT).diff().dt.total_seconds(fractional=True) / DAY_SECONDS
    by_customer = (
        facts.sort(c.CUSTOMER_ID, c.ORDERED_AT, c.ORDER_ID)
        .with_columns(
            pl.when(same_customer).then(gap_days).alias("_gap_days"),
            pl.when(pl.col(DELIVERED)).then(pl.col(LATE)).alias("_late_if_delivered"),
        )
        .group_by(c.CUSTOMER_ID)
        .agg(
            pl.len().cast(pl.Int64).alias(ct.ORDER_COUNT),
            pl.col(c.ORDERED_AT).min().alias(ct.FIRST_ORDER_AT),
            pl.col(c.ORDERED_AT).max().alias(ct.LAST_ORDER_AT),
            pl.col(ORDER_VALUE).sum().alias(ct.MONETARY_VALUE),
            pl.col(ORDER_LINES).sum().alias(ORDER_LINES),
            pl.col(RETURNED_LINES).sum().alias(RETURNED_LINES),
            pl.col(DELIVERED).sum().cast(pl.Int64).alias(ct.DELIVERED_ORDERS),
            pl.col("_late_if_delivered").sum().cast(pl.Int64).alias(ct.LATE_DELIVERIES),
            pl.col("_late_if_delivered").last(ignore_nulls=True).alias(ct.LAST_DELIVERY_LATE),
            pl.col("_gap_days").median().alias(ct.TYPICAL_GAP_DAYS),
        )
    )
    days = pl.col(ct.DAYS_SINCE_LAST_ORDER)
    prior_gap = pl.col(ct.TYPICAL_GAP_DAYS).median().fill_null(config.default_gap_days)
    gap = pl.coalesce(pl.col(ct.TYPICAL_GAP_DAYS), prior_gap).clip(
        lower_bound=config.churn_gap_floor_days
    )
    return (
        by_customer.with_columns(
            days_between(pl.col(ct.LAST_ORDER_AT), as_of).alias(ct.DAYS_SINCE_LAST_ORDER),
            (pl.col(RETURNED_LINES) / pl.col(ORDER_LINES)).alias(ct.RETURN_RATE),
            pl.when(pl.col(ct.DELIVERED_ORDERS) > 0)
            .then(pl.col(ct.LATE_DELIVERIES) / pl.col(ct.DELIVERED_ORDERS))
            .alias(ct.LATE_DELIVERY_SHARE),
        )
        .with_columns(
            quintile_score(days, higher_is_better=False).alias(ct.R_SCORE),
            quintile_score(pl.col(ct.ORDER_COUNT)).alias(ct.F_SCORE),
            quintile_score(pl.col(ct.MONETARY_VALUE)).alias(ct.M_SCORE),
            (days / gap).alias(ct.CHURN_RATIO),
        )
        .with_columns(
            pl.when(days > config.lost_after_days)
            .then(pl.lit(ct.LOST))
            .otherwise(rfm_segment_expr(pl.col(ct.R_SCORE), pl.col(ct.F_SCORE)))
            .alias(ct.RFM_SEGMENT),
            churn_risk_expr(
                pl.col(ct.CHURN_RATIO), config.churn_midpoint, config.churn_steepness
            ).alias(ct.CHURN_RISK),
        )
        .with_columns(churn_level_expr(pl.col(ct.CHURN_RISK)).alias(ct.CHURN_RISK_LEVEL))
        .drop(ORDER_LINES, RETURNED_LINES)
    )


def favourite_categories(
    orders: pl.LazyFrame, products: pl.LazyFrame, as_of: dt.datetime, top: int = 3
) -> pl.LazyFrame:
    """customer_id, favourite_categories: the `top` categories by items bought (ties by name)."""
    status = pl.col(c.STATUS).fill_null("delivered")
    # Ties in items are broken by category name: the name's rank in the (small) products table
    # sorts as fast as a number.
    categories = products.select(
        c.PRODUCT_ID, c.CATEGORY, pl.col(c.CATEGORY).rank("dense").alias("_name_rank")
    )
    return (
        orders.select(c.CUSTOMER_ID, c.PRODUCT_ID, c.QUANTITY, c.ORDERED_AT, c.STATUS)
        .filter(pl.col(c.ORDERED_AT) <= as_of, status != "cancelled")
        .join(categories, on=c.PRODUCT_ID, how="inner")
        .drop_nulls(c.CATEGORY)
        .group_by(c.CUSTOMER_ID, c.CATEGORY)
        .agg(pl.col(c.QUANTITY).sum().alias("_items"), pl.col("_name_rank").first())
        .sort([c.CUSTOMER_ID, "_items", "_name_rank"], descending=[False, True, False])
        .group_by(c.CUSTOMER_ID)
        .agg(pl.col(c.CATEGORY).head(top).alias(ct.FAVOURITE_CATEGORIES))
    )


# --- surveys -------------------------------------------------------------------------------------


def _answers_until(responses: pl.LazyFrame, as_of: dt.datetime) -> pl.LazyFrame:
    # Sorted once so that `.last()` inside a group is the latest answer (polars keeps row order
    # within groups); the response id breaks ties between answers with the same timestamp.
    return responses.filter(pl.col(c.RESPONDED_AT) <= as_of).sort(c.RESPONDED_AT, c.RESPONSE_ID)


def nps_state(responses: pl.LazyFrame, as_of: dt.datetime) -> pl.LazyFrame:
    """Per customer who answered: latest score, count, recency, pre/post-delivery scores and gap.

    The delivery gap is the latest post-delivery score minus the latest pre-delivery score, when
    the customer has both.
    """
    score = pl.col(c.SCORE)
    touchpoint = pl.col(c.TOUCHPOINT)
    return (
        _answers_until(responses, as_of)
        .group_by(c.CUSTOMER_ID)
        .agg(
            score.last().cast(pl.Int64).alias(ct.NPS_SCORE),
            pl.len().cast(pl.Int64).alias(ct.NPS_RESPONSES),
            pl.col(c.RESPONDED_AT).max().alias(ct.LAST_RESPONSE_AT),
            pl.col(c.COMMENT).filter(_has_text(pl.col(c.COMMENT))).last().alias(_LATEST_COMMENT),
            pl.when(touchpoint == "pre_delivery")
            .then(score)
            .last(ignore_nulls=True)
            .cast(pl.Int64)
            .alias(ct.PRE_DELIVERY_SCORE),
            pl.when(touchpoint == "post_delivery")
            .then(score)
            .last(ignore_nulls=True)
            .cast(pl.Int64)
            .alias(ct.POST_DELIVERY_SCORE),
        )
        .with_columns(
            days_between(pl.col(ct.LAST_RESPONSE_AT), as_of).alias(ct.DAYS_SINCE_LAST_RESPONSE),
            (pl.col(ct.POST_DELIVERY_SCORE) - pl.col(ct.PRE_DELIVERY_SCORE)).alias(ct.DELIVERY_GAP),
            first_theme(pl.col(_LATEST_COMMENT)).alias(ct.COMPLAINT_THEME),
        )
        .drop(_LATEST_COMMENT)
    )


_LATEST_COMMENT = "__latest_comment"


def _has_text(comment: pl.Expr) -> pl.Expr:
    return comment.str.strip_chars().str.len_chars() > 0


def first_theme(comment: pl.Expr) -> pl.Expr:
    """The first theme (in `LEXICON` order) a comment names, null when none: what
    `recsvc.domain.themes.themes_of(comment)[0]` says of one comment."""
    return pl.coalesce(
        pl.when(comment.str.contains(theme_pattern(words))).then(pl.lit(name))
        for name, words in LEXICON.items()
    )


def latest_score(responses: pl.LazyFrame, as_of: dt.datetime, name: str) -> pl.LazyFrame:
    """customer_id and the customer's latest score of a survey (CSAT, CES), named `name`."""
    return (
        _answers_until(responses, as_of)
        .group_by(c.CUSTOMER_ID)
        .agg(pl.col(c.SCORE).last().cast(pl.Int64).alias(name))
    )
