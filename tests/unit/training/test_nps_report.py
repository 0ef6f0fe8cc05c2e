"""Report building blocks on tiny frames: one vote per customer, trend moves, churn rate, HTML."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.nps import nps_from_counts
from training.report.build import (
    churn_rates,
    compare_groups,
    monthly_trend,
    nps_answers,
    touchpoint_breakdown,
)
from training.report.html import nps_bars, nps_text, trend_chart
from training.report.model import GroupResult

T0 = dt.datetime(2025, 1, 1)


def answers(rows: list[tuple[str, str, int, dt.datetime, str]]) -> pl.LazyFrame:
    frame = pl.LazyFrame(
        {
            c.RESPONSE_ID: [r[0] for r in rows],
            c.CUSTOMER_ID: [r[1] for r in rows],
            c.SCORE: [r[2] for r in rows],
            c.RESPONDED_AT: [r[3] for r in rows],
            c.TOUCHPOINT: [r[4] for r in rows],
        },
        schema={
            c.RESPONSE_ID: pl.String,
            c.CUSTOMER_ID: pl.String,
            c.SCORE: pl.Int64,
            c.RESPONDED_AT: pl.Datetime("us"),
            c.TOUCHPOINT: pl.String,
        },
    )
    return nps_answers(frame, dt.datetime(2030, 1, 1))


def test_a_customer_votes_once_per_group_with_the_latest_answer() -> None:
    rows = [
        ("r1", "a", 0, T0, "post_delivery"),
        ("r2", "a", 10, T0 + dt.timedelta(days=1), "post_delivery"),  # a's latest post-delivery
        ("r3", "a", 3, T0, "pre_delivery"),
        ("r4", "b", 9, T0, "post_delivery"),
    ]
    breakdown = touchpoint_breakdown(answers(rows), min_n=1)
    by_label = {g.label: g.nps for g in breakdown.groups}
    assert by_label["post_delivery"] == nps_from_counts(2, 0, 0, min_n=1)
    assert by_label["pre_delivery"] == nps_from_counts(0, 0, 1, min_n=1)
    assert [g.label for g in breakdown.groups] == ["pre_delivery", "post_delivery"]


def test_a_month_that_really_moved_is_flagged_and_noise_is_not() -> None:
    rows = []
    months = [
        (dt.datetime(2025, 1, 10), 60, 20, 20),  # NPS 40
        (dt.datetime(2025, 2, 10), 58, 22, 20),  # NPS 38: noise
        (dt.datetime(2025, 3, 10), 30, 30, 40),  # NPS -10: a real drop
    ]
    for at, promoters, passives, detractors in months:
        scores = [10] * promoters + [7] * passives + [2] * detractors
        for i, score in enumerate(scores):
            rows.append((f"{at:%m}-{i:03d}", f"{at:%m}-{i}", score, at, "relationship"))
    trend = monthly_trend(answers(rows), min_n=30)
    assert [m.month for m in trend] == ["2025-01", "2025-02", "2025-03"]
    assert [m.significant_move for m in trend] == [False, False, True]
    assert trend[2].vs_previous is not None and trend[2].vs_previous.difference == pytest.approx(
        -48
    )


def test_a_group_is_compared_with_the_rest() -> None:
    total = nps_from_counts(300, 200, 200)
    groups = {"DE": nps_from_counts(100, 50, 10), "FR": nps_from_counts(5, 3, 2)}
    results = {g.label: g for g in compare_groups(groups, total, min_n=30)}
    assert results["DE"].significant  # 56 against 12 in the rest
    assert results["FR"].nps.too_small and not results["FR"].significant


def test_churn_rate_counts_customers_missing_from_the_next_period() -> None:
    """Q1: a, b, c active; in Q2 only a buys again -> 2 of 3 churned. Q2 -> Q3: a churned.
    Q3 has no complete next period before as_of, so it is not reported."""
    facts = pl.LazyFrame(
        {
            c.CUSTOMER_ID: ["a", "b", "c", "a", "a", "d"],
            c.ORDERED_AT: [
                dt.datetime(2025, 1, 5), dt.datetime(2025, 2, 5), dt.datetime(2025, 3, 5),
                dt.datetime(2025, 4, 5), dt.datetime(2025, 5, 5), dt.datetime(2025, 8, 1),
            ],
        }
    )  # fmt: skip
    periods = churn_rates(facts, dt.datetime(2025, 10, 15), "1q")
    assert [(p.period, p.active, p.churned) for p in periods] == [
        ("2025-01-01", 3, 2),
        ("2025-04-01", 1, 1),
    ]
    assert periods[0].rate == pytest.approx(2 / 3)


def test_html_marks_small_groups_and_draws_svg() -> None:
    groups = [
        GroupResult(label="big", nps=nps_from_counts(60, 20, 20), vs_rest=None, significant=False),
        GroupResult(label="tiny", nps=nps_from_counts(3, 0, 1), vs_rest=None, significant=False),
    ]
    svg = nps_bars(groups, "NPS by test")
    assert svg.startswith("<svg") and "too small" in svg
    assert nps_text(groups[0].nps) == "40.0 ± 15.7 (n = 100)"
    assert trend_chart([]).startswith("<p>")
