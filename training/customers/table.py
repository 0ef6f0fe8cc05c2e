"""The customer table: every customer of the customers table with every per-customer column.

`customer_features` joins the feature families of `training.customers.features` onto the customers
table and gives each column its documented type; `build_customer_table` adds the segment
memberships (`training.customers.segments`) and collects once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.segments.catalog import SegmentRules
from recsvc.errors import DataContractError
from training.customers.features import (
    CUSTOMER_ROW,
    SegmentationConfig,
    favourite_categories,
    index_customers,
    latest_score,
    nps_category_expr,
    nps_state,
    order_facts,
    purchase_behaviour,
    resolve_as_of,
)
from training.customers.segments import assign_segments

_COMPUTED_DTYPES: dict[str, pl.DataType] = {
    ct.NPS_SCORE: pl.Int64(),
    ct.NPS_CATEGORY: pl.String(),
    ct.NPS_RESPONSES: pl.Int64(),
    ct.LAST_RESPONSE_AT: pl.Datetime("us"),
    ct.COMPLAINT_THEME: pl.String(),
    ct.DAYS_SINCE_LAST_RESPONSE: pl.Int64(),
    ct.PRE_DELIVERY_SCORE: pl.Int64(),
    ct.POST_DELIVERY_SCORE: pl.Int64(),
    ct.DELIVERY_GAP: pl.Int64(),
    ct.ORDER_COUNT: pl.Int64(),
    ct.FIRST_ORDER_AT: pl.Datetime("us"),
    ct.LAST_ORDER_AT: pl.Datetime("us"),
    ct.DAYS_SINCE_LAST_ORDER: pl.Int64(),
    ct.MONETARY_VALUE: pl.Float64(),
    ct.R_SCORE: pl.Int64(),
    ct.F_SCORE: pl.Int64(),
    ct.M_SCORE: pl.Int64(),
    ct.RFM_SEGMENT: pl.String(),
    ct.RETURN_RATE: pl.Float64(),
    ct.FAVOURITE_CATEGORIES: pl.List(pl.String()),
    ct.DELIVERED_ORDERS: pl.Int64(),
    ct.LATE_DELIVERIES: pl.Int64(),
    ct.LATE_DELIVERY_SHARE: pl.Float64(),
    ct.LAST_DELIVERY_LATE: pl.Boolean(),
    ct.TYPICAL_GAP_DAYS: pl.Float64(),
    ct.CHURN_RATIO: pl.Float64(),
    ct.CHURN_RISK: pl.Float64(),
    ct.CHURN_RISK_LEVEL: pl.String(),
    ct.CSAT_SCORE: pl.Int64(),
    ct.CES_SCORE: pl.Int64(),
}
_BASE_DTYPES: dict[str, pl.DataType] = {
    c.CUSTOMER_ID: pl.String(),
    c.SIGNUP_DATE: pl.Date(),
    c.COUNTRY: pl.String(),
    c.AGE_BAND: pl.String(),
}


def extra_attribute_columns(customers: pl.LazyFrame) -> list[str]:
    """The customers table's additional attribute columns (beyond the contract's)."""
    names = customers.collect_schema().names()
    extras = [n for n in names if n not in _BASE_DTYPES and n != CUSTOMER_ROW]
    clashes = sorted(set(extras) & set(ct.COLUMNS))
    if clashes:
        raise DataContractError(
            f"customers column(s) {', '.join(clashes)} clash with computed customer-table "
            "columns; rename them"
        )
    return extras


def customer_features(
    tables: Mapping[str, pl.LazyFrame],
    as_of: dt.datetime,
    config: SegmentationConfig,
    facts: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """All customers with every per-customer column (no segments yet), as a LazyFrame.

    `facts` is the `order_facts` frame when the caller already has it (the run shares it with the
    report); it must come from `index_customers(tables)`. Otherwise it is computed here.
    """
    tables = index_customers(tables)
    customers = tables[c.CUSTOMERS]
    extras = extra_attribute_columns(customers)
    if facts is None:
        facts = order_facts(tables[c.ORDERS], tables[c.PRODUCTS], as_of)
    parts = [
        nps_state(tables[c.NPS_RESPONSES], as_of),
        purchase_behaviour(facts, as_of, config),
        favourite_categories(
            tables[c.ORDERS], tables[c.PRODUCTS], as_of, config.favourite_categories
        ),
    ]
    for table, name in ((c.CSAT_RESPONSES, ct.CSAT_SCORE), (c.CES_RESPONSES, ct.CES_SCORE)):
        if table in tables:
            parts.append(latest_score(tables[table], as_of, name))
    frame = customers
    for part in parts:
        frame = frame.join(part, left_on=CUSTOMER_ROW, right_on=c.CUSTOMER_ID, how="left")
    have = set(frame.collect_schema().names())
    no_favourites = pl.lit([], dtype=pl.List(pl.String))
    fills = {
        ct.NPS_RESPONSES: pl.col(ct.NPS_RESPONSES).fill_null(0),
        ct.ORDER_COUNT: pl.col(ct.ORDER_COUNT).fill_null(0),
        ct.MONETARY_VALUE: pl.col(ct.MONETARY_VALUE).fill_null(0.0),
        ct.DELIVERED_ORDERS: pl.col(ct.DELIVERED_ORDERS).fill_null(0),
        ct.LATE_DELIVERIES: pl.col(ct.LATE_DELIVERIES).fill_null(0),
        ct.FAVOURITE_CATEGORIES: pl.col(ct.FAVOURITE_CATEGORIES).fill_null(no_favourites),
        ct.NPS_CATEGORY: nps_category_expr(pl.col(ct.NPS_SCORE)),
    }
    customer_columns = customers.collect_schema().names()
    columns = [
        pl.col(n) if n in customer_columns else pl.lit(None).cast(dtype).alias(n)
        for n, dtype in _BASE_DTYPES.items()
    ]
    columns += [pl.col(n).cast(pl.String) for n in extras]
    for name, dtype in _COMPUTED_DTYPES.items():
        if name in fills:
            expr = fills[name]
        elif name in have:
            expr = pl.col(name)
        else:
            expr = pl.lit(None)
        columns.append(expr.cast(dtype).alias(name))
    # Rows in the customers table's order, whatever order the joins produced.
    return frame.sort(CUSTOMER_ROW).select(columns)


def build_customer_table(
    tables: Mapping[str, pl.LazyFrame],
    rules: SegmentRules,
    config: SegmentationConfig | None = None,
    *,
    facts: pl.LazyFrame | None = None,
) -> pl.DataFrame:
    """One row per customer in the customers table, with all features, `segments` and `primary_segment`.

    The rules are checked against the available columns first, so a segment using an attribute this
    shop does not have fails before any data is read.
    """
    config = config or SegmentationConfig()
    extras = extra_attribute_columns(tables[c.CUSTOMERS])
    rules.check_columns([*ct.COLUMNS, *extras])
    as_of = resolve_as_of(tables, config)
    features = customer_features(tables, as_of, config, facts)
    return assign_segments(features, rules).collect()
