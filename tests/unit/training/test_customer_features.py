"""The per-customer table on tiny hand-built tables: NPS state, RFM, churn, deliveries, surveys."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.segments.catalog import load_segments, parse_segments
from recsvc.errors import ConfigError, DataContractError
from training.customers.features import (
    SegmentationConfig,
    churn_risk_expr,
    quintile_score,
    resolve_as_of,
    rfm_segment_expr,
)
from training.customers.table import build_customer_table

T0 = dt.datetime(2025, 1, 1)


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


CUSTOMER_SCHEMA = pl.Schema(
    {
        c.CUSTOMER_ID: pl.String(),
        c.SIGNUP_DATE: pl.Date(),
        c.COUNTRY: pl.String(),
        c.AGE_BAND: pl.String(),
    }
)
PRODUCT_SCHEMA = pl.Schema({
    c.PRODUCT_ID: pl.String(), c.NAME: pl.String(), c.CATEGORY: pl.String(), c.BRAND: pl.String(),
    c.PRICE: pl.Float64(), c.IN_STOCK: pl.Boolean(),
})  # fmt: skip
ORDER_SCHEMA = pl.Schema({
    c.ORDER_ID: pl.String(), c.CUSTOMER_ID: pl.String(), c.PRODUCT_ID: pl.String(), c.QUANTITY: pl.Int64(),
    c.UNIT_PRICE: pl.Float64(), c.ORDERED_AT: pl.Datetime("us"),
    c.PROMISED_DELIVERY_AT: pl.Datetime("us"), c.DELIVERED_AT: pl.Datetime("us"), c.STATUS: pl.String(),
})  # fmt: skip
SURVEY_SCHEMA = pl.Schema({
    c.RESPONSE_ID: pl.String(), c.CUSTOMER_ID: pl.String(), c.SCORE: pl.Int64(),
    c.RESPONDED_AT: pl.Datetime("us"), c.TOUCHPOINT: pl.String(), c.ORDER_ID: pl.String(),
    c.COMMENT: pl.String(),
})  # fmt: skip


def line(
    order: str,
    customer: str,
    at: float,
    *,
    product: str = "P1",
    quantity: int = 1,
    price: float = 10.0,
    late_days: float | None = 0.0,
    status: str = "delivered",
) -> dict[str, Any]:
    promised = day(at + 3)
    delivered = None if late_days is None else promised + dt.timedelta(days=late_days)
    return {
        c.ORDER_ID: order, c.CUSTOMER_ID: customer, c.PRODUCT_ID: product, c.QUANTITY: quantity,
        c.UNIT_PRICE: price, c.ORDERED_AT: day(at), c.PROMISED_DELIVERY_AT: promised,
        c.DELIVERED_AT: delivered, c.STATUS: status,
    }  # fmt: skip


def answer(
    rid: str, customer: str, score: int, at: float, touchpoint: str = "relationship"
) -> dict[str, Any]:
    return {
        c.RESPONSE_ID: rid, c.CUSTOMER_ID: customer, c.SCORE: score, c.RESPONDED_AT: day(at),
        c.TOUCHPOINT: touchpoint, c.ORDER_ID: None, c.COMMENT: None,
    }  # fmt: skip


def make_tables(
    customers: list[str],
    orders: list[dict[str, Any]],
    nps: list[dict[str, Any]] = (),  # type: ignore[assignment]
    csat: list[dict[str, Any]] | None = None,
    products: list[dict[str, Any]] | None = None,
) -> dict[str, pl.LazyFrame]:
    product_rows = products or [
        {
            c.PRODUCT_ID: "P1",
            c.NAME: "a",
            c.CATEGORY: "books",
            c.BRAND: "x",
            c.PRICE: 10.0,
            c.IN_STOCK: True,
        }
    ]
    tables = {
        c.CUSTOMERS: pl.LazyFrame(
            {c.CUSTOMER_ID: customers, c.SIGNUP_DATE: [None] * len(customers),
             c.COUNTRY: ["DE"] * len(customers), c.AGE_BAND: ["25-34"] * len(customers)},
            schema=CUSTOMER_SCHEMA,
        ),
        c.PRODUCTS: pl.LazyFrame(product_rows, schema=PRODUCT_SCHEMA),
        c.ORDERS: pl.LazyFrame(orders, schema=ORDER_SCHEMA),
        c.NPS_RESPONSES: pl.LazyFrame(list(nps), schema=SURVEY_SCHEMA),
    }  # fmt: skip
    if csat is not None:
        tables[c.CSAT_RESPONSES] = pl.LazyFrame(csat, schema=SURVEY_SCHEMA)
    return tables


def build(tables: dict[str, pl.LazyFrame], **config: Any) -> dict[str, dict[str, Any]]:
    table = build_customer_table(tables, load_segments(), SegmentationConfig(**config))
    return {row[c.CUSTOMER_ID]: row for row in table.iter_rows(named=True)}


# --- RFM -------------------------------------------------------------------------------------------


def test_quintile_boundaries_on_distinct_values() -> None:
    """Ten distinct values: score = 1 + floor(5 * share strictly below) -> two customers per score."""
    frame = pl.DataFrame({"v": list(range(1, 11))})
    assert frame.select(quintile_score(pl.col("v")))["v"].to_list() == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
    ]


def test_quintile_ties_share_a_score() -> None:
    """Six customers with one order share F1; two orders: 6 of 10 below -> 1 + floor(3.0) = 4."""
    frame = pl.DataFrame({"v": [1, 1, 1, 1, 1, 1, 2, 3, 4, 5]})
    assert frame.select(quintile_score(pl.col("v")))["v"].to_list() == [
        1,
        1,
        1,
        1,
        1,
        1,
        4,
        4,
        5,
        5,
    ]


def test_recency_scores_fewer_days_higher() -> None:
    frame = pl.DataFrame({"days": [0, 10, 20, 30, 40]})
    scores = frame.select(quintile_score(pl.col("days"), higher_is_better=False))["days"]
    assert scores.to_list() == [5, 4, 3, 2, 1]


def test_every_rf_cell_belongs_to_exactly_one_segment() -> None:
    cells = ct.rfm_cell_map()
    assert sorted(cells) == [(r, f) for r in range(1, 6) for f in range(1, 6)]
    grid = pl.DataFrame([{"r": r, "f": f} for r in range(1, 6) for f in range(1, 6)])
    mapped = grid.with_columns(rfm_segment_expr(pl.col("r"), pl.col("f")).alias("s"))
    for r, f, segment in mapped.iter_rows():
        assert segment == cells[(r, f)]


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [
        (5, 5, "champions"), (5, 4, "champions"), (4, 4, "loyal_customers"),
        (3, 5, "loyal_customers"), (5, 2, "potential_loyalists"), (4, 3, "potential_loyalists"),
        (5, 1, "new_customers"), (4, 1, "promising"), (3, 3, "need_attention"),
        (3, 1, "about_to_sleep"), (3, 2, "about_to_sleep"), (2, 3, "at_risk"), (1, 4, "at_risk"),
        (1, 5, "cant_lose"), (2, 5, "cant_lose"), (1, 1, "hibernating"), (2, 2, "hibernating"),
    ],
)  # fmt: skip
def test_the_standard_rfm_map(r: int, f: int, segment: str) -> None:
    assert ct.rfm_cell_map()[(r, f)] == segment


def test_rfm_scores_and_lost_horizon_on_a_small_shop() -> None:
    # Five buyers: a..e ordered 1..5 times, last orders at days 100, 200, ... (e most recent).
    orders = []
    for k, customer in enumerate("abcde", start=1):
        for n in range(k):
            orders.append(line(f"{customer}{n}", customer, 100.0 * k - n * 5, price=10.0 * k))
    rows = build(make_tables([*"abcde", "z"], orders), lost_after_days=350)
    assert [rows[x][ct.F_SCORE] for x in "abcde"] == [1, 2, 3, 4, 5]
    assert [rows[x][ct.R_SCORE] for x in "abcde"] == [1, 2, 3, 4, 5]
    assert [rows[x][ct.M_SCORE] for x in "abcde"] == [1, 2, 3, 4, 5]
    assert rows["e"][ct.RFM_SEGMENT] == "champions"
    assert rows["d"][ct.RFM_SEGMENT] == "loyal_customers"
    # as_of is the last order (day 500): a (day 100) and b (day 200, 300 days ago)...
    assert rows["a"][ct.DAYS_SINCE_LAST_ORDER] == 400
    assert rows["a"][ct.RFM_SEGMENT] == "lost"
    assert rows["b"][ct.RFM_SEGMENT] == "hibernating"
    # ...and z never ordered: no RFM at all, counts are zero, not missing.
    assert rows["z"][ct.RFM_SEGMENT] is None and rows["z"][ct.R_SCORE] is None
    assert rows["z"][ct.ORDER_COUNT] == 0 and rows["z"][ct.MONETARY_VALUE] == 0.0
    assert rows["z"][ct.PRIMARY_SEGMENT] == "never_purchased"


# --- churn risk ------------------------------------------------------------------------------------


def test_churn_risk_formula() -> None:
    """Logistic in days-since / typical-gap: 0.5 at twice the gap, 0.12 at the gap, 0.88 at 3x."""
    defaults = SegmentationConfig()
    ratios = pl.DataFrame({"ratio": [2.0, 1.0, 3.0, 0.0]})
    risk = (
        ratios.select(
            churn_risk_expr(pl.col("ratio"), defaults.churn_midpoint, defaults.churn_steepness)
        )
        .to_series()
        .to_list()
    )
    assert risk[0] == pytest.approx(0.5)
    assert risk[1] == pytest.approx(0.1192, abs=1e-4)
    assert risk[2] == pytest.approx(0.8808, abs=1e-4)
    assert risk[3] < 0.02


def test_churn_rule_compares_with_the_customers_own_rhythm() -> None:
    """a orders every 10 days and last bought 20 days ago (ratio 2 -> 0.5, medium);
    b orders every 100 days, last bought 20 days ago (ratio 0.2 -> low);
    c ordered once, 300 days ago: no rhythm of its own, so the median typical gap of repeat
    customers (55 days) is used -> ratio 5.45 -> high. as_of = day 320 (the last event)."""
    orders = [
        line("a1", "a", 280), line("a2", "a", 290), line("a3", "a", 300),
        line("b1", "b", 100), line("b2", "b", 200), line("b3", "b", 300),
        line("c1", "c", 20),
    ]  # fmt: skip
    nps = [answer("r1", "a", 9, 320)]
    rows = build(make_tables(["a", "b", "c"], orders, nps))
    assert rows["a"][ct.TYPICAL_GAP_DAYS] == pytest.approx(10.0)
    assert rows["a"][ct.CHURN_RATIO] == pytest.approx(2.0)
    assert rows["a"][ct.CHURN_RISK] == pytest.approx(0.5)
    assert rows["a"][ct.CHURN_RISK_LEVEL] == "medium"
    assert rows["b"][ct.CHURN_RISK_LEVEL] == "low"
    assert rows["c"][ct.TYPICAL_GAP_DAYS] is None
    assert rows["c"][ct.CHURN_RATIO] == pytest.approx(300 / 55)
    assert rows["c"][ct.CHURN_RISK_LEVEL] == "high"


def test_a_very_short_rhythm_is_floored() -> None:
    orders = [line("a1", "a", 0), line("a2", "a", 1), line("b1", "b", 14)]
    rows = build(make_tables(["a", "b"], orders), churn_gap_floor_days=7.0)
    assert rows["a"][ct.CHURN_RATIO] == pytest.approx(13 / 7)


# --- NPS state -------------------------------------------------------------------------------------


def test_nps_state_latest_answer_counts_and_delivery_gap() -> None:
    nps = [
        answer("r1", "a", 10, 1, "pre_delivery"),
        answer("r2", "a", 4, 5, "post_delivery"),
        answer("r3", "a", 8, 9, "relationship"),
        answer("r4", "b", 6, 3),
        answer("r6", "c", 9, 7),
        answer("r5", "c", 3, 7),  # same time as r6: the larger response id is the later one
    ]
    rows = build(make_tables(["a", "b", "c", "d"], [line("o", "a", 0)], nps))
    a = rows["a"]
    assert (a[ct.NPS_SCORE], a[ct.NPS_CATEGORY], a[ct.NPS_RESPONSES]) == (8, "passive", 3)
    assert (a[ct.PRE_DELIVERY_SCORE], a[ct.POST_DELIVERY_SCORE], a[ct.DELIVERY_GAP]) == (10, 4, -6)
    assert a[ct.DAYS_SINCE_LAST_RESPONSE] == 0
    assert rows["b"][ct.NPS_CATEGORY] == "detractor" and rows["b"][ct.DELIVERY_GAP] is None
    assert rows["c"][ct.NPS_SCORE] == 9
    # No answer is "unknown", never "passive".
    assert (rows["d"][ct.NPS_CATEGORY], rows["d"][ct.NPS_RESPONSES]) == ("unknown", 0)
    assert rows["d"][ct.PRIMARY_SEGMENT] == "never_purchased"
    assert "unknown_nps" in rows["d"][ct.SEGMENTS]


# --- purchases, deliveries, surveys ------------------------------------------------------------------


def test_spend_returns_cancellations_deliveries_and_favourites() -> None:
    products = [
        {c.PRODUCT_ID: p, c.NAME: p, c.CATEGORY: cat, c.BRAND: "x", c.PRICE: 1.0, c.IN_STOCK: True}
        for p, cat in [("B", "books"), ("T", "toys"), ("G", "garden"), ("F", "food")]
    ]
    orders = [
        line("o1", "a", 0, product="B", quantity=2, price=10.0, late_days=2.0),
        line("o1", "a", 0, product="T", quantity=1, price=50.0, late_days=2.0, status="returned"),
        line("o2", "a", 10, product="G", quantity=2, price=5.0, late_days=-1.0),
        line("o2", "a", 10, product="F", quantity=1, price=5.0, late_days=-1.0),
        line("o3", "a", 20, product="T", quantity=9, price=1.0, late_days=None, status="cancelled"),
        line("o4", "a", 30, product="T", quantity=1, price=1.0, late_days=None, status="placed"),
    ]
    rows = build(make_tables(["a"], orders, products=products))
    a = rows["a"]
    assert a[ct.ORDER_COUNT] == 3  # o3 was cancelled entirely
    assert a[ct.MONETARY_VALUE] == pytest.approx(20.0 + 10.0 + 5.0 + 1.0)  # returned line excluded
    assert a[ct.RETURN_RATE] == pytest.approx(1 / 5)
    assert (a[ct.DELIVERED_ORDERS], a[ct.LATE_DELIVERIES]) == (2, 1)
    assert a[ct.LATE_DELIVERY_SHARE] == pytest.approx(0.5)
    assert a[ct.LAST_DELIVERY_LATE] is False  # o2, the latest delivered order, was early
    # Items bought: books 2, garden 2, toys 2 (1 returned + 1 placed; cancelled ignored), food 1;
    # ties go by name.
    assert a[ct.FAVOURITE_CATEGORIES] == ["books", "garden", "toys"]


def test_latest_csat_and_missing_ces_table() -> None:
    csat = [answer("c1", "a", 2, 1), answer("c2", "a", 5, 4)]
    rows = build(make_tables(["a", "b"], [line("o", "a", 0)], csat=csat))
    assert rows["a"][ct.CSAT_SCORE] == 5
    assert rows["b"][ct.CSAT_SCORE] is None
    assert rows["a"][ct.CES_SCORE] is None


def test_every_customer_appears_once_in_the_customers_order() -> None:
    orders = [line("o1", "b", 0), line("o2", "b", 5), line("o3", "c", 9)]
    nps = [answer("r1", "c", 9, 1), answer("r2", "c", 2, 2)]
    table = build_customer_table(make_tables(["c", "a", "b"], orders, nps), load_segments())
    assert table[c.CUSTOMER_ID].to_list() == ["c", "a", "b"]
    assert table.schema[ct.SEGMENTS] == pl.List(pl.String)


# --- as_of -----------------------------------------------------------------------------------------


def test_as_of_defaults_to_the_latest_event_and_later_events_are_ignored() -> None:
    orders = [line("o1", "a", 0), line("o2", "a", 50)]
    nps = [answer("r1", "a", 10, 60)]
    tables = make_tables(["a"], orders, nps)
    assert resolve_as_of(tables, SegmentationConfig()) == day(60)
    rows = build(tables, as_of=day(30))
    assert rows["a"][ct.ORDER_COUNT] == 1
    assert rows["a"][ct.DAYS_SINCE_LAST_ORDER] == 30
    assert rows["a"][ct.NPS_CATEGORY] == "unknown"


def test_no_events_at_all_cannot_be_dated() -> None:
    with pytest.raises(DataContractError, match="nothing to date"):
        resolve_as_of(make_tables(["a"], []), SegmentationConfig())


# --- rules against the data ----------------------------------------------------------------------------


def test_a_rule_on_an_attribute_the_shop_lacks_fails_before_any_work() -> None:
    rules = parse_segments(
        [("shop.toml", "[segments]\ngold = \"loyalty_tier == 'gold'\"\n")],
        extra_columns=("loyalty_tier",),
    )
    with pytest.raises(ConfigError, match="segment 'gold'"):
        build_customer_table(make_tables(["a"], [line("o", "a", 0)]), rules)


def test_extra_attributes_are_kept_and_usable_in_rules() -> None:
    tables = make_tables(["a", "b"], [line("o", "a", 0)])
    tables[c.CUSTOMERS] = tables[c.CUSTOMERS].with_columns(
        pl.Series("loyalty_tier", ["gold", None], dtype=pl.String)
    )
    rules = parse_segments(
        [("shop.toml", "[segments]\ngold = \"loyalty_tier == 'gold'\"\n")],
        extra_columns=("loyalty_tier",),
    )
    table = build_customer_table(tables, rules)
    assert table["loyalty_tier"].to_list() == ["gold", None]
    assert table[ct.SEGMENTS].to_list() == [["gold"], []]


def test_an_attribute_named_like_a_computed_column_is_refused() -> None:
    tables = make_tables(["a"], [line("o", "a", 0)])
    tables[c.CUSTOMERS] = tables[c.CUSTOMERS].with_columns(pl.lit("x").alias(ct.NPS_SCORE))
    with pytest.raises(DataContractError, match="nps_score"):
        build_customer_table(tables, load_segments())
