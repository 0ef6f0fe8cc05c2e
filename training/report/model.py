"""The NPS report's shape: `nps_report.json` is an `NpsReport`, and the HTML page is rendered from
the same object (`training.report.html`), so the two never disagree.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from recsvc.domain.experiments import ExperimentResult
from recsvc.domain.nps import NpsResult, ZTest
from training.report.themes import ThemeGroup

REPORT_SCHEMA_VERSION = 1


class GroupResult(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    nps: NpsResult
    vs_rest: ZTest | None  # this group against everyone else in the breakdown
    significant: bool  # differs from the rest beyond noise (p < 0.05, neither side too small)


class Breakdown(msgspec.Struct, frozen=True, kw_only=True):
    dimension: str  # segment, country, age_band, touchpoint
    title: str
    groups: list[GroupResult]


class MonthResult(msgspec.Struct, frozen=True, kw_only=True):
    month: str  # YYYY-MM
    nps: NpsResult
    vs_previous: ZTest | None
    significant_move: bool  # differs from the previous month beyond noise


class CategoryGap(msgspec.Struct, frozen=True, kw_only=True):
    category: str  # product category of the order the answer is about
    pre_delivery: NpsResult
    post_delivery: NpsResult
    post_vs_pre: ZTest | None


class LateShare(msgspec.Struct, frozen=True, kw_only=True):
    category: str  # NPS category of the post-delivery answer
    answers: int  # customers' latest post-delivery answers about a delivered order
    late: int  # of which the order arrived after its promised date
    share: float | None


class DeliveryReport(msgspec.Struct, frozen=True, kw_only=True):
    pre_delivery: NpsResult
    post_delivery: NpsResult
    post_vs_pre: ZTest | None
    by_category: list[CategoryGap]
    post_on_time: NpsResult  # post-delivery answers about orders delivered on time
    post_late: NpsResult  # ... and about late orders
    late_vs_on_time: ZTest | None
    late_share: list[LateShare]
    customer_gap_mean: float | None  # mean of the per-customer delivery gap, score points
    customer_gap_n: int


class SurveyGroup(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    n: int
    value: float | None  # CSAT: % answering 4-5; CES: mean score


class SurveyReport(msgspec.Struct, frozen=True, kw_only=True):
    metric: str  # csat or ces
    description: str
    overall: SurveyGroup
    by_segment: list[SurveyGroup]


class ChurnPeriod(msgspec.Struct, frozen=True, kw_only=True):
    period: str  # first day of the period, YYYY-MM-DD
    active: int  # customers with an order in the period
    churned: int  # of which no order in the next period
    rate: float


class SegmentSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str
    priority: int | None
    customers: int
    primary_customers: int
    share: float  # of all customers


class NpsReport(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int = REPORT_SCHEMA_VERSION
    as_of: dt.datetime
    min_n: int
    customers: int
    respondents: int  # customers with at least one NPS answer
    responses: int
    overall: NpsResult
    trend: list[MonthResult]
    breakdowns: list[Breakdown]
    segments: list[SegmentSummary]
    delivery: DeliveryReport
    csat: SurveyReport | None
    ces: SurveyReport | None
    churn_period: str
    churn: list[ChurnPeriod]
    themes: list[ThemeGroup]
    method_notes: list[str]
    # Offer experiments' results (the version's experiments.json); empty in reports written
    # before experiments existed, so they still load.
    experiments: list[ExperimentResult] = []


_ENCODER = msgspec.json.Encoder()


def encode_report(report: NpsReport) -> bytes:
    return _ENCODER.encode(report)
