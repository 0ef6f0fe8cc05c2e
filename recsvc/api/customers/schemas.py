"""What the customers endpoint answers: one customer's profile, grouped for people."""

from __future__ import annotations

from typing import Any

import msgspec


class NpsHistory(msgspec.Struct, frozen=True, kw_only=True):
    responses: int
    latest_score: int | None
    latest_category: str | None
    last_response_at: str | None
    days_since_last_response: int | None
    pre_delivery_score: int | None
    post_delivery_score: int | None
    delivery_gap: int | None  # post-delivery minus pre-delivery score


class RfmSummary(msgspec.Struct, frozen=True, kw_only=True):
    segment: str | None
    recency_score: int | None
    frequency_score: int | None
    monetary_score: int | None
    order_count: int | None
    monetary_value: float | None
    first_order_at: str | None
    last_order_at: str | None
    days_since_last_order: int | None


class ChurnSummary(msgspec.Struct, frozen=True, kw_only=True):
    risk: float | None  # 0..1
    level: str | None  # low, medium, high
    ratio: float | None  # days since last order / typical gap
    typical_gap_days: float | None


class CustomerProfile(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    model_version: str
    primary_segment: str | None
    segments: list[str]
    nps: NpsHistory
    rfm: RfmSummary
    churn: ChurnSummary
    attributes: dict[str, Any]  # every column of the customer table, as stored (or overlaid)
