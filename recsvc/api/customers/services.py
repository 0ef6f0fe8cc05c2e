"""One customer's profile as of the active version, with their live answers and orders applied."""

from __future__ import annotations

import datetime as dt
from typing import Any

from recsvc.api.customers.schemas import ChurnSummary, CustomerProfile, NpsHistory, RfmSummary
from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain import times
from recsvc.domain.live import LiveActivity
from recsvc.errors import NotFoundError, shown
from recsvc.service.customer_state import current_state
from recsvc.version.opened import ActiveModel


def profile_of(model: ActiveModel, customer_id: str, activity: LiveActivity) -> CustomerProfile:
    """The stored profile, live answers and orders taken since the version applied; NotFoundError
    for a customer the version does not know."""
    index = model.profile_index(customer_id, activity.erased_at)
    if index is None:
        raise NotFoundError(f"no customer {shown(customer_id)} in model version {model.version}")
    if activity:
        record = current_state(model, customer_id, activity, times.now()).record
    else:
        record = model.profiles.record(index)
    return customer_profile(record, model.version)


def customer_profile(record: dict[str, Any], model_version: str) -> CustomerProfile:
    """Shape one (possibly overlaid) profile record for the API."""
    get = record.get
    return CustomerProfile(
        customer_id=str(get(c.CUSTOMER_ID)),
        model_version=model_version,
        primary_segment=get(ct.PRIMARY_SEGMENT),
        segments=list(get(ct.SEGMENTS) or ()),
        nps=NpsHistory(
            responses=int(get(ct.NPS_RESPONSES) or 0),
            latest_score=get(ct.NPS_SCORE),
            latest_category=get(ct.NPS_CATEGORY),
            last_response_at=_iso(get(ct.LAST_RESPONSE_AT)),
            days_since_last_response=get(ct.DAYS_SINCE_LAST_RESPONSE),
            pre_delivery_score=get(ct.PRE_DELIVERY_SCORE),
            post_delivery_score=get(ct.POST_DELIVERY_SCORE),
            delivery_gap=get(ct.DELIVERY_GAP),
        ),
        rfm=RfmSummary(
            segment=get(ct.RFM_SEGMENT),
            recency_score=get(ct.R_SCORE),
            frequency_score=get(ct.F_SCORE),
            monetary_score=get(ct.M_SCORE),
            order_count=get(ct.ORDER_COUNT),
            monetary_value=get(ct.MONETARY_VALUE),
            first_order_at=_iso(get(ct.FIRST_ORDER_AT)),
            last_order_at=_iso(get(ct.LAST_ORDER_AT)),
            days_since_last_order=get(ct.DAYS_SINCE_LAST_ORDER),
        ),
        churn=ChurnSummary(
            risk=get(ct.CHURN_RISK),
            level=get(ct.CHURN_RISK_LEVEL),
            ratio=get(ct.CHURN_RATIO),
            typical_gap_days=get(ct.TYPICAL_GAP_DAYS),
        ),
        attributes={k: _iso(v) for k, v in record.items()},
    )


def _iso(value: Any) -> Any:
    # An overlay may put date/datetime objects back into a record; the API shows ISO text.
    if isinstance(value, dt.datetime):
        return times.iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
