"""NPS summaries on a five-customer answer table: one vote per customer per group (their latest
answer), live answers added without double-counting, date windows, and parameter errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.live import LiveResponse
from recsvc.domain.nps import nps_from_counts
from recsvc.errors import ArtifactError
from recsvc.service.nps_summary import (
    InvalidRequest,
    NpsSummary,
    SummaryQuery,
    parse_query,
    summarise,
)
from recsvc.version.responses import NOT_GIVEN, RESPONSE_SCORES, ResponseTable
from training.publish.responses import write_response_table

IDS = np.array(["c1", "c2", "c3", "c4", "c5"])


def _answer(rid: str, customer: str, score: int, when: str, touchpoint: str) -> dict[str, object]:
    return {
        c.RESPONSE_ID: rid,
        c.CUSTOMER_ID: customer,
        c.SCORE: score,
        c.RESPONDED_AT: dt.datetime.fromisoformat(when),
        c.TOUCHPOINT: touchpoint,
    }


ANSWERS = pl.DataFrame(
    [
        _answer(
            "r1", "c1", 3, "2024-01-05T10:00:00", "pre_delivery"
        ),  # c1 later becomes a promoter
        _answer("r2", "c1", 10, "2024-02-10T10:00:00", "post_delivery"),
        _answer("r3", "c2", 9, "2024-01-20T08:00:00", "post_delivery"),
        _answer("r4", "c3", 7, "2024-02-01T00:00:00", "relationship"),
        _answer("r5", "c4", 0, "2024-02-29T23:59:59", "post_delivery"),
    ]
)
CUSTOMERS = pl.DataFrame(
    {
        c.CUSTOMER_ID: IDS,
        ct.PRIMARY_SEGMENT: ["promoters", "promoters", "passives", "detractors", None],
        c.COUNTRY: ["DE", "DE", "FR", None, "FR"],
        c.AGE_BAND: ["25-34", "35-44", "25-34", "25-34", None],
    }
)


@pytest.fixture
def table(tmp_path: Path) -> ResponseTable:
    write_response_table(ANSWERS, CUSTOMERS, IDS, tmp_path)
    opened = ResponseTable.open(tmp_path, IDS.size)
    assert opened is not None
    return opened


def _index(customer_id: str) -> int | None:
    position = int(np.searchsorted(IDS, customer_id))
    return position if position < IDS.size and IDS[position] == customer_id else None


def _summary(
    table: ResponseTable, live: list[LiveResponse] | None = None, **query: object
) -> NpsSummary:
    return summarise(
        table,
        live if live is not None else [],
        query=SummaryQuery(**query),  # type: ignore[arg-type]
        model_version="v1",
        customer_index=_index,
        segment_order=["detractors", "promoters", "passives"],
    )


def _groups(summary: NpsSummary) -> dict[str, tuple[int, int, int]]:
    return {g.label: (g.nps.promoters, g.nps.passives, g.nps.detractors) for g in summary.groups}


def _live(
    rid: str, customer: str, score: int, when: str, touchpoint: str = "relationship"
) -> LiveResponse:
    stamp = dt.datetime.fromisoformat(when)
    return LiveResponse(
        response_id=rid,
        customer_id=customer,
        score=score,
        responded_at=stamp,
        touchpoint=touchpoint,
        received_at=stamp,
    )


def test_overall_counts_each_customers_latest_answer_once(table: ResponseTable) -> None:
    summary = _summary(table)
    # c1 (latest 10), c2 9, c3 7, c4 0: two promoters, one passive, one detractor
    assert summary.overall == nps_from_counts(2, 1, 1)
    assert summary.artifact_answers == 5 and summary.live_answers == 0
    assert summary.groups == []


def test_segments_group_by_primary_segment_in_rule_order(table: ResponseTable) -> None:
    summary = _summary(table, by="segment")
    assert [g.label for g in summary.groups] == ["detractors", "promoters", "passives"]
    assert _groups(summary) == {
        "promoters": (2, 0, 0),
        "passives": (0, 1, 0),
        "detractors": (0, 0, 1),
    }
    first = summary.groups[0]
    assert first.compared_with == "rest" and first.test is not None


def test_a_customer_counts_once_per_touchpoint_with_their_latest_answer_there(
    table: ResponseTable,
) -> None:
    summary = _summary(table, by="touchpoint")
    assert [g.label for g in summary.groups] == ["pre_delivery", "post_delivery", "relationship"]
    assert _groups(summary) == {
        "pre_delivery": (0, 0, 1),  # c1's first answer still counts at its touchpoint
        "post_delivery": (2, 0, 1),
        "relationship": (0, 1, 0),
    }


def test_countries_come_by_size_and_a_missing_one_is_not_given_and_last(
    table: ResponseTable,
) -> None:
    summary = _summary(table, by="country")
    assert [g.label for g in summary.groups] == ["DE", "FR", NOT_GIVEN]  # by answers, then name
    assert _groups(summary) == {"DE": (2, 0, 0), "FR": (0, 1, 0), NOT_GIVEN: (0, 0, 1)}


def test_months_are_chronological_and_compared_with_the_month_before(table: ResponseTable) -> None:
    summary = _summary(table, by="month")
    assert [g.label for g in summary.groups] == ["2024-01", "2024-02"]
    assert _groups(summary) == {"2024-01": (1, 0, 1), "2024-02": (1, 1, 1)}
    assert summary.groups[0].test is None
    assert summary.groups[1].compared_with == "previous_month"


def test_since_and_until_include_whole_days(table: ResponseTable) -> None:
    summary = _summary(table, since=dt.date(2024, 2, 1), until=dt.date(2024, 2, 29))
    # r4 at midnight on the first day and r5 a second before the last day's end are both inside
    assert summary.artifact_answers == 3
    assert summary.overall == nps_from_counts(1, 1, 1)
    assert _summary(table, until=dt.date(2024, 1, 31)).overall == nps_from_counts(1, 0, 1)


def test_live_answers_are_added_and_their_latest_wins(table: ResponseTable) -> None:
    live = [_live("live-1", "c2", 2, "2024-03-01T09:00:00")]  # c2 turns detractor
    summary = _summary(table, live, by="segment")
    assert summary.live_answers == 1
    assert summary.overall == nps_from_counts(1, 1, 2)
    assert _groups(summary)["promoters"] == (1, 0, 1)


def test_a_live_answer_the_version_already_holds_is_not_counted_twice(
    table: ResponseTable,
) -> None:
    # The nightly run merged r5 into the version; the store still lists it.
    live = [_live("r5", "c4", 0, "2024-02-29T23:59:59", "post_delivery")]
    summary = _summary(table, live)
    assert summary.live_answers == 0
    assert summary.overall == nps_from_counts(2, 1, 1)


def test_a_new_customers_live_answer_has_no_segment_yet(table: ResponseTable) -> None:
    live = [_live("live-2", "brand-new", 9, "2024-03-02T09:00:00")]
    summary = _summary(table, live, by="segment")
    assert _groups(summary)[NOT_GIVEN] == (1, 0, 0)
    assert summary.overall.n == 5


def test_an_unreadable_store_is_reported_as_no_live_answers(table: ResponseTable) -> None:
    summary = summarise(
        table, None, query=SummaryQuery(), model_version="v1", customer_index=_index
    )
    assert summary.live_answers is None
    assert summary.overall.n == 4


@pytest.mark.parametrize(
    ("by", "since", "until", "named"),
    [
        ("region", None, None, "by"),
        (None, "2024-02-30", None, "since"),
        (None, None, "yesterday", "until"),
        (None, "20240101", None, "since"),
        (None, "2024-03-01", "2024-02-01", "since"),
    ],
)
def test_a_bad_parameter_is_an_error_naming_it(
    by: str | None, since: str | None, until: str | None, named: str
) -> None:
    with pytest.raises(InvalidRequest, match=f"^{named}:"):
        parse_query(by, since, until)


def test_good_parameters_parse_to_dates() -> None:
    assert parse_query("month", "2024-01-01", "2024-12-31") == SummaryQuery(
        "month", dt.date(2024, 1, 1), dt.date(2024, 12, 31)
    )
    assert parse_query(None, "", None) == SummaryQuery()


def test_a_version_without_the_table_has_none(tmp_path: Path) -> None:
    assert ResponseTable.open(tmp_path, 5) is None


def test_a_table_that_does_not_match_the_artifact_is_an_artifact_error(tmp_path: Path) -> None:
    write_response_table(ANSWERS, CUSTOMERS, IDS, tmp_path)
    with pytest.raises(ArtifactError, match="customers"):
        ResponseTable.open(tmp_path, 6)
    np.save(tmp_path / RESPONSE_SCORES, np.zeros(2, dtype=np.int8))
    with pytest.raises(ArtifactError, match="disagree"):
        ResponseTable.open(tmp_path, 5)
