"""The report's experiments section: a forest plot row per experiment, a table row per
experiment, and nothing at all when there are no experiments."""

from __future__ import annotations

import datetime as dt
import re

import msgspec

from recsvc.charts import ForestRow, forest_plot
from recsvc.domain.experiments import OUTCOMES, ArmSummary, ExperimentResult, OutcomeResult
from recsvc.domain.nps import nps_from_counts
from training.report.html import render_html
from training.report.model import DeliveryReport, NpsReport, encode_report


def experiment(offer_id: str, lift: float, p_value: float, status: str) -> ExperimentResult:
    outcomes = [
        OutcomeResult(
            outcome=name,
            primary=name == "conversion",
            treatment=0.2 + lift,
            holdout=0.2,
            lift=lift,
            ci_low=lift - 0.02,
            ci_high=lift + 0.02,
            relative_lift=lift / 0.2,
            p_value=p_value,
            p_adjusted=p_value,
        )
        for name in OUTCOMES
    ]
    return msgspec.convert(
        {
            "experiment": offer_id,
            "offer_id": offer_id,
            "primary": "conversion",
            "status": status,
            "status_detail": f"{offer_id} detail",
            "holdout_share": 0.1,
            "observed_holdout_share": 0.1,
            "srm_p_value": 0.4,
            "mde": 0.015,
            "window_days": 30,
            "first_assigned": None,
            "arms": [
                ArmSummary(arm="treatment", assigned=9000, exposed=8000, analysed=8500),
                ArmSummary(arm="holdout", assigned=1000, exposed=0, analysed=950),
            ],
            "outcomes": outcomes,
        },
        ExperimentResult,
        from_attributes=True,
    )


def report(experiments: list[ExperimentResult]) -> NpsReport:
    empty = nps_from_counts(0, 0, 0)
    return NpsReport(
        as_of=dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
        min_n=30,
        customers=0,
        respondents=0,
        responses=0,
        overall=empty,
        trend=[],
        breakdowns=[],
        segments=[],
        delivery=DeliveryReport(
            pre_delivery=empty,
            post_delivery=empty,
            post_vs_pre=None,
            by_category=[],
            post_on_time=empty,
            post_late=empty,
            late_vs_on_time=None,
            late_share=[],
            customer_gap_mean=None,
            customer_gap_n=0,
        ),
        csat=None,
        ces=None,
        churn_period="month",
        churn=[],
        themes=[],
        method_notes=[],
        experiments=experiments,
    )


def section(html: str) -> str:
    return html[html.index("<h2>Experiments</h2>") :]


def test_the_report_shows_each_experiment_in_the_forest_plot_and_the_table() -> None:
    results = [
        experiment("free_shipping", 0.04, 0.002, "significant"),
        experiment("ten_off", -0.005, 0.6, "no effect detected"),
    ]
    part = section(render_html(report(results)))
    svg = part[part.index("<svg") : part.index("</svg>")]
    assert len(re.findall("<circle ", svg)) == 2
    assert "free_shipping · conversion" in svg and "ten_off · conversion" in svg
    table = part[part.index("<table>") : part.index("</table>")]
    assert table.count("<tr>") == 3  # header and one row per experiment
    assert "+4.00 (+2.00 to +6.00)" in table  # the lift in percentage points with its interval
    assert "free_shipping detail" in part


def test_a_report_without_experiments_has_no_section_and_old_reports_still_load() -> None:
    assert "<h2>Experiments</h2>" not in render_html(report([]))
    old = msgspec.json.decode(encode_report(report([])))
    del old["experiments"]
    assert msgspec.convert(old, NpsReport).experiments == []


def test_a_forest_row_without_an_estimate_says_so() -> None:
    svg = forest_plot(
        [ForestRow("a", 1.0, 0.5, 1.5, significant=True), ForestRow("b", None, None, None)],
        "t",
        "points",
    )
    assert "no estimate yet" in svg and svg.count("<circle ") == 1
