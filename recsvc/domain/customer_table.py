"""The per-customer table (`customers.parquet`): its columns, their kinds and meaning, and the RFM map.

Training computes this table; the service reads it and evaluates segment rules on its rows. The column
list below is also the whitelist of names a segment expression may use (plus the customers table's
extra attribute columns, which are strings). Pure Python: no polars on the serving path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from recsvc.domain import columns as c
from recsvc.domain.nps import NpsCategory
from recsvc.domain.themes import THEME_NAMES


class ValueKind(StrEnum):
    STRING = "string"
    NUMBER = "number"  # integer or float
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    STRING_LIST = "string_list"


# --- column names --------------------------------------------------------------------------------
# NPS state
NPS_SCORE: Final = "nps_score"
NPS_CATEGORY: Final = "nps_category"
NPS_RESPONSES: Final = "nps_responses"
LAST_RESPONSE_AT: Final = "last_response_at"
COMPLAINT_THEME: Final = "complaint_theme"
DAYS_SINCE_LAST_RESPONSE: Final = "days_since_last_response"
PRE_DELIVERY_SCORE: Final = "pre_delivery_score"
POST_DELIVERY_SCORE: Final = "post_delivery_score"
DELIVERY_GAP: Final = "delivery_gap"
# purchase behaviour
ORDER_COUNT: Final = "order_count"
FIRST_ORDER_AT: Final = "first_order_at"
LAST_ORDER_AT: Final = "last_order_at"
DAYS_SINCE_LAST_ORDER: Final = "days_since_last_order"
MONETARY_VALUE: Final = "monetary_value"
R_SCORE: Final = "r_score"
F_SCORE: Final = "f_score"
M_SCORE: Final = "m_score"
RFM_SEGMENT: Final = "rfm_segment"
RETURN_RATE: Final = "return_rate"
FAVOURITE_CATEGORIES: Final = "favourite_categories"
# deliveries
DELIVERED_ORDERS: Final = "delivered_orders"
LATE_DELIVERIES: Final = "late_deliveries"
LATE_DELIVERY_SHARE: Final = "late_delivery_share"
LAST_DELIVERY_LATE: Final = "last_delivery_late"
# churn
TYPICAL_GAP_DAYS: Final = "typical_gap_days"
CHURN_RATIO: Final = "churn_ratio"
CHURN_RISK: Final = "churn_risk"
CHURN_RISK_LEVEL: Final = "churn_risk_level"
# other surveys
CSAT_SCORE: Final = "csat_score"
CES_SCORE: Final = "ces_score"
# segments (added last, from the rules)
SEGMENTS: Final = "segments"
PRIMARY_SEGMENT: Final = "primary_segment"


# --- the RFM segment map -------------------------------------------------------------------------
# The de-facto standard map on the R and F scores (1..5). Every (R, F) cell belongs to exactly one
# segment; `tests/unit/training/test_customer_features.py` checks all 25. `lost` overrides the map for customers
# with no order within the configured horizon; customers who never ordered have no RFM segment.
RFM_CELLS: Final[dict[str, tuple[tuple[int, ...], tuple[int, ...]]]] = {
    # segment: (R scores, F scores)
    "champions": ((5,), (4, 5)),
    "loyal_customers": ((3, 4), (4, 5)),
    "potential_loyalists": ((4, 5), (2, 3)),
    "new_customers": ((5,), (1,)),
    "promising": ((4,), (1,)),
    "need_attention": ((3,), (3,)),
    "about_to_sleep": ((3,), (1, 2)),
    "at_risk": ((1, 2), (3, 4)),
    "cant_lose": ((1, 2), (5,)),
    "hibernating": ((1, 2), (1, 2)),
}
LOST: Final = "lost"
RFM_SEGMENT_NAMES: Final = (*RFM_CELLS, LOST)


def rfm_cell_map() -> dict[tuple[int, int], str]:
    """{(R, F): segment} for all 25 cells; raises if a cell is missing or claimed twice."""
    cells: dict[tuple[int, int], str] = {}
    for segment, (r_scores, f_scores) in RFM_CELLS.items():
        for r in r_scores:
            for f in f_scores:
                if (r, f) in cells:
                    raise ValueError(f"RFM cell R{r} F{f} is in both {cells[(r, f)]} and {segment}")
                cells[(r, f)] = segment
    missing = [(r, f) for r in range(1, 6) for f in range(1, 6) if (r, f) not in cells]
    if missing:
        raise ValueError(f"RFM cells without a segment: {missing}")
    return cells


CHURN_RISK_LEVELS: Final = ("low", "medium", "high")


# --- column specs: the whitelist for segment expressions -----------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    kind: ValueKind
    doc: str
    choices: tuple[str, ...] | None = None  # allowed values of a string column, when fixed


NPS_CATEGORIES: Final = tuple(NpsCategory)

COLUMNS: Final[dict[str, ColumnSpec]] = {
    c.CUSTOMER_ID: ColumnSpec(ValueKind.STRING, "the shop's customer id"),
    c.SIGNUP_DATE: ColumnSpec(ValueKind.DATE, "sign-up date (compare with 'YYYY-MM-DD')"),
    c.COUNTRY: ColumnSpec(ValueKind.STRING, "country as given by the shop"),
    c.AGE_BAND: ColumnSpec(ValueKind.STRING, "age band as given by the shop, e.g. '25-34'"),
    NPS_SCORE: ColumnSpec(ValueKind.NUMBER, "latest NPS answer 0..10 (missing if never answered)"),
    NPS_CATEGORY: ColumnSpec(
        ValueKind.STRING, "category of the latest NPS answer", choices=NPS_CATEGORIES
    ),
    NPS_RESPONSES: ColumnSpec(ValueKind.NUMBER, "number of NPS answers"),
    LAST_RESPONSE_AT: ColumnSpec(ValueKind.DATETIME, "time of the latest NPS answer"),
    COMPLAINT_THEME: ColumnSpec(
        ValueKind.STRING,
        "first theme of the latest NPS comment (delivery, price, ...), missing if it names none",
        choices=THEME_NAMES,
    ),
    DAYS_SINCE_LAST_RESPONSE: ColumnSpec(
        ValueKind.NUMBER, "whole days since the latest NPS answer"
    ),
    PRE_DELIVERY_SCORE: ColumnSpec(ValueKind.NUMBER, "latest NPS answer asked before delivery"),
    POST_DELIVERY_SCORE: ColumnSpec(ValueKind.NUMBER, "latest NPS answer asked after delivery"),
    DELIVERY_GAP: ColumnSpec(
        ValueKind.NUMBER, "post-delivery minus pre-delivery score, when both exist"
    ),
    ORDER_COUNT: ColumnSpec(ValueKind.NUMBER, "number of orders, cancelled ones excluded"),
    FIRST_ORDER_AT: ColumnSpec(ValueKind.DATETIME, "time of the first order"),
    LAST_ORDER_AT: ColumnSpec(ValueKind.DATETIME, "time of the latest order"),
    DAYS_SINCE_LAST_ORDER: ColumnSpec(ValueKind.NUMBER, "whole days since the latest order"),
    MONETARY_VALUE: ColumnSpec(
        ValueKind.NUMBER, "net spend: order lines not cancelled or returned"
    ),
    R_SCORE: ColumnSpec(ValueKind.NUMBER, "recency score 1..5 (5 = bought most recently)"),
    F_SCORE: ColumnSpec(ValueKind.NUMBER, "frequency score 1..5 (5 = most orders)"),
    M_SCORE: ColumnSpec(ValueKind.NUMBER, "monetary score 1..5 (5 = highest spend)"),
    RFM_SEGMENT: ColumnSpec(ValueKind.STRING, "RFM segment name", choices=RFM_SEGMENT_NAMES),
    RETURN_RATE: ColumnSpec(ValueKind.NUMBER, "share 0..1 of bought order lines returned"),
    FAVOURITE_CATEGORIES: ColumnSpec(
        ValueKind.STRING_LIST, "up to 3 most bought product categories (use 'x' in ...)"
    ),
    DELIVERED_ORDERS: ColumnSpec(ValueKind.NUMBER, "orders with a delivery date"),
    LATE_DELIVERIES: ColumnSpec(
        ValueKind.NUMBER, "delivered orders that arrived after the promise"
    ),
    LATE_DELIVERY_SHARE: ColumnSpec(ValueKind.NUMBER, "late deliveries / delivered orders, 0..1"),
    LAST_DELIVERY_LATE: ColumnSpec(ValueKind.BOOL, "the latest delivered order arrived late"),
    TYPICAL_GAP_DAYS: ColumnSpec(ValueKind.NUMBER, "the customer's usual days between orders"),
    CHURN_RATIO: ColumnSpec(ValueKind.NUMBER, "days since last order / typical gap"),
    CHURN_RISK: ColumnSpec(ValueKind.NUMBER, "churn risk score 0..1"),
    CHURN_RISK_LEVEL: ColumnSpec(
        ValueKind.STRING, "low, medium or high churn risk", choices=CHURN_RISK_LEVELS
    ),
    CSAT_SCORE: ColumnSpec(ValueKind.NUMBER, "latest CSAT answer 1..5"),
    CES_SCORE: ColumnSpec(ValueKind.NUMBER, "latest customer-effort answer 1..7"),
}
