"""Comment themes per NPS category on a hand-made answer table: counts and shares per category,
the latest distinct verbatims without who wrote them, live comments added once, the segment and
date filters, masked customers left out, parameter errors, and a version without comments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.live import LiveResponse
from recsvc.errors import InvalidRequest
from recsvc.service.nps_themes import (
    CategoryThemes,
    ThemeQuery,
    ThemeSummary,
    parse_theme_query,
    summarise_themes,
)
from recsvc.service.nps_window import DayWindow
from recsvc.version.comments import COMMENT_FILES
from recsvc.version.responses import NOT_GIVEN, RESPONSES_JSON, ResponseTable, ResponseTableFile
from training.publish.responses import write_response_table

IDS = np.array(["c1", "c2", "c3", "c4", "c5"])
SEGMENTS = ["loyal", "at_risk"]


def _answer(
    rid: str,
    customer: str,
    score: int,
    when: str,
    comment: str | None,
    touchpoint: str = "relationship",
) -> dict[str, object]:
    return {
        c.RESPONSE_ID: rid,
        c.CUSTOMER_ID: customer,
        c.SCORE: score,
        c.RESPONDED_AT: dt.datetime.fromisoformat(when),
        c.TOUCHPOINT: touchpoint,
        c.COMMENT: comment,
    }


ANSWERS = pl.DataFrame(
    [
        # promoters: c1 twice (every commented answer counts, not one per customer), c2 once
        _answer("r1", "c1", 10, "2024-01-05T10:00:00", "Fast delivery, great price"),
        _answer("r2", "c1", 9, "2024-02-10T10:00:00", "  Fast delivery  ", "post_delivery"),
        _answer("r3", "c2", 9, "2024-02-11T08:00:00", "Lovely shop"),  # no theme
        _answer("r4", "c2", 10, "2024-02-12T08:00:00", None),
        # passive
        _answer("r5", "c3", 7, "2024-02-01T00:00:00", "   "),  # blank: no comment
        # detractors
        _answer("r6", "c4", 2, "2024-02-29T23:59:59", "The parcel came late and broken"),
        _answer("r7", "c4", 0, "2024-01-15T12:00:00", "Rude customer service, no refund"),
        _answer("r8", "c5", 3, "2024-02-20T12:00:00", "Late delivery again"),
    ]
)
CUSTOMERS = pl.DataFrame(
    {
        c.CUSTOMER_ID: IDS,
        ct.PRIMARY_SEGMENT: ["loyal", "loyal", "loyal", "at_risk", None],
    }
)


@pytest.fixture
def table(tmp_path: Path) -> ResponseTable:
    write_response_table(ANSWERS, CUSTOMERS, IDS, tmp_path)
    opened = ResponseTable.open(tmp_path, IDS.size)
    assert opened is not None and opened.comments is not None
    return opened


def _index(customer_id: str) -> int | None:
    position = int(np.searchsorted(IDS, customer_id))
    return position if position < IDS.size and IDS[position] == customer_id else None


def _live(rid: str, customer: str, score: int, when: str, comment: str | None) -> LiveResponse:
    stamp = dt.datetime.fromisoformat(when)
    return LiveResponse(
        response_id=rid,
        customer_id=customer,
        score=score,
        responded_at=stamp,
        touchpoint="relationship",
        comment=comment,
        received_at=stamp,
    )


def _summary(
    table: ResponseTable,
    live: list[LiveResponse] | None = None,
    masked: list[int] | None = None,
    **query: object,
) -> ThemeSummary:
    hidden = set(masked or ())
    return summarise_themes(
        table,
        live if live is not None else [],
        query=ThemeQuery(**query),  # type: ignore[arg-type]
        model_version="v1",
        customer_index=lambda cid: None if _index(cid) in hidden else _index(cid),
        masked=np.asarray(masked or [], dtype=np.int64),
    )


def _category(summary: ThemeSummary, name: str) -> CategoryThemes:
    return next(group for group in summary.categories if group.category == name)


def _counts(group: CategoryThemes) -> dict[str, int]:
    return {t.theme: t.comments for t in group.themes if t.comments}


def test_every_commented_answer_counts_in_the_category_of_its_score(table: ResponseTable) -> None:
    summary = _summary(table)
    assert [g.category for g in summary.categories] == ["promoter", "passive", "detractor"]
    promoter, passive, detractor = summary.categories
    assert (promoter.answers, promoter.commented, promoter.unthemed) == (4, 3, 1)
    assert _counts(promoter) == {"delivery": 2, "price": 1}
    assert (passive.answers, passive.commented, passive.unthemed) == (1, 0, 0)
    assert _counts(passive) == {}
    assert (detractor.answers, detractor.commented) == (3, 3)
    assert _counts(detractor) == {"delivery": 2, "quality": 1, "support": 1, "returns": 1}
    delivery = promoter.themes[0]
    assert (delivery.theme, delivery.share) == ("delivery", pytest.approx(2 / 3))
    # every theme is listed, most mentioned first, ties in lexicon order
    assert [t.theme for t in detractor.themes][:4] == ["delivery", "quality", "support", "returns"]
    assert {t.theme for t in passive.themes} == set(summary.themes)
    assert summary.artifact_answers == 8 and summary.live_answers == 0
    assert summary.version_comments is True and summary.note is None


def test_verbatims_are_the_latest_distinct_comments_without_who_wrote_them(
    table: ResponseTable,
) -> None:
    summary = _summary(table, verbatims=1)
    delivery = _category(summary, "detractor").themes[0]
    assert [v.text for v in delivery.verbatims] == ["The parcel came late and broken"]
    verbatim = delivery.verbatims[0]
    assert verbatim.responded_at == dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=dt.UTC)
    assert verbatim.touchpoint == "relationship"
    encoded = msgspec.json.decode(msgspec.json.encode(summary))
    assert "customer_id" not in str(encoded) and "c4" not in str(encoded)
    assert encoded["categories"][2]["themes"][0]["verbatims"][0]["responded_at"] == (
        "2024-02-29T23:59:59Z"
    )
    promoter_delivery = _category(_summary(table), "promoter").themes[0]
    # stripped as stored, newest first
    assert [v.text for v in promoter_delivery.verbatims] == [
        "Fast delivery",
        "Fast delivery, great price",
    ]
    assert _category(_summary(table, verbatims=0), "detractor").themes[0].verbatims == []


def test_the_same_comment_many_times_is_one_verbatim(tmp_path: Path) -> None:
    repeated = [
        _answer(f"a{k}", "c1", 1, f"2024-03-10T10:{k:02d}:00", "Too late") for k in range(50)
    ]
    answers = pl.DataFrame(
        [
            _answer("b1", "c3", 1, "2024-03-03T10:00:00", "Late again"),
            _answer("b2", "c2", 1, "2024-03-01T10:00:00", "Late, as always"),
            *repeated,
        ]
    )
    write_response_table(answers, CUSTOMERS, IDS, tmp_path)
    table = ResponseTable.open(tmp_path, IDS.size)
    assert table is not None
    delivery = _category(_summary(table), "detractor").themes[0]
    assert delivery.comments == 52
    assert [v.text for v in delivery.verbatims] == ["Too late", "Late again", "Late, as always"]
    # A live comment equal to a stored one is the same verbatim, at its own (newer) time.
    live = [_live("live-1", "c4", 0, "2024-04-01T09:00:00", " Too late ")]
    delivery = _category(_summary(table, live), "detractor").themes[0]
    assert [v.text for v in delivery.verbatims] == ["Too late", "Late again", "Late, as always"]
    assert delivery.verbatims[0].responded_at == dt.datetime(2024, 4, 1, 9, tzinfo=dt.UTC)


def test_live_comments_are_added_once(table: ResponseTable) -> None:
    live = [
        _live("live-1", "c3", 8, "2024-03-01T09:00:00", "Checkout app kept crashing"),
        _live("live-2", "new-customer", 1, "2024-03-02T09:00:00", "Never arrived"),
        _live("live-3", "c2", 9, "2024-03-03T09:00:00", "  "),  # no comment
        # the nightly run merged r6 into the version; the store still lists it
        _live("r6", "c4", 2, "2024-02-29T23:59:59", "The parcel came late and broken"),
    ]
    summary = _summary(table, live)
    assert summary.live_answers == 3
    passive = _category(summary, "passive")
    assert (passive.answers, passive.commented) == (2, 1)
    assert _counts(passive) == {"website": 1}
    assert passive.themes[0].verbatims[0].text == "Checkout app kept crashing"
    detractor = _category(summary, "detractor")
    assert _counts(detractor)["delivery"] == 3
    assert detractor.themes[0].verbatims[0].text == "Never arrived"
    assert _category(summary, "promoter").answers == 5


def test_an_unreadable_store_counts_the_version_only(table: ResponseTable) -> None:
    summary = summarise_themes(
        table, None, query=ThemeQuery(), model_version="v1", customer_index=_index
    )
    assert summary.live_answers is None
    assert _category(summary, "detractor").commented == 3


def test_a_segment_is_the_customers_primary_segment_as_of_the_version(
    table: ResponseTable,
) -> None:
    live = [
        _live("live-1", "c4", 1, "2024-03-01T09:00:00", "Refund still missing"),
        _live("live-2", "new-customer", 1, "2024-03-02T09:00:00", "Refund please"),
    ]
    at_risk = _summary(table, live, segment="at_risk")
    assert _counts(_category(at_risk, "detractor")) == {
        "delivery": 1,
        "quality": 1,
        "support": 1,
        "returns": 2,
    }
    assert at_risk.artifact_answers == 2 and at_risk.live_answers == 1
    assert at_risk.segment == "at_risk"
    loyal = _summary(table, live, segment="loyal")
    assert _category(loyal, "detractor").answers == 0
    assert _category(loyal, "promoter").commented == 3
    # c5 has no primary segment; the new customer is unknown to the version
    unknown = _summary(table, live, segment=NOT_GIVEN)
    assert _counts(_category(unknown, "detractor")) == {"delivery": 1, "returns": 1}


def test_since_and_until_include_whole_days(table: ResponseTable) -> None:
    live = [_live("live-1", "c1", 10, "2024-03-01T00:00:00", "Fast delivery")]
    window = DayWindow(dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    summary = _summary(table, live, window=window)
    # r5 at midnight on the first day and r6 a second before the last day's end are inside
    assert summary.artifact_answers == 6 and summary.live_answers == 0
    assert _counts(_category(summary, "detractor")) == {"delivery": 2, "quality": 1}
    assert (summary.since, summary.until) == (window.since, window.until)
    march = _summary(table, live, window=DayWindow(since=dt.date(2024, 3, 1)))
    assert march.artifact_answers == 0 and march.live_answers == 1


def test_masked_customers_are_left_out(table: ResponseTable) -> None:
    c4 = _index("c4")
    assert c4 is not None
    # c4 was erased after the version, then came back: their new answer is a new relationship
    live = [_live("live-1", "c4", 1, "2024-03-01T09:00:00", "Late again")]
    summary = _summary(table, live, masked=[c4])
    detractor = _category(summary, "detractor")
    assert (detractor.answers, detractor.commented) == (2, 2)
    assert _counts(detractor) == {"delivery": 2}
    texts = {v.text for t in detractor.themes for v in t.verbatims}
    assert texts == {"Late again", "Late delivery again"}
    # and counts as a customer without a segment
    assert (
        _category(_summary(table, live, masked=[c4], segment="at_risk"), "detractor").answers == 0
    )


@pytest.mark.parametrize(
    ("segment", "since", "until", "verbatims", "named"),
    [
        ("vip", None, None, 3, "segment"),
        (None, "2024-02-30", None, 3, "since"),
        (None, None, "yesterday", 3, "until"),
        (None, "2024-03-01", "2024-02-01", 3, "since"),
        (None, None, None, -1, "verbatims"),
        (None, None, None, 21, "verbatims"),
    ],
)
def test_a_bad_parameter_is_an_error_naming_it(
    segment: str | None, since: str | None, until: str | None, verbatims: int, named: str
) -> None:
    with pytest.raises(InvalidRequest, match=f"^{named}:"):
        parse_theme_query(segment, since, until, segments=SEGMENTS, verbatims=verbatims)


def test_good_parameters_parse() -> None:
    query = parse_theme_query("loyal", "2024-01-01", dt.date(2024, 12, 31), segments=SEGMENTS)
    assert query == ThemeQuery("loyal", DayWindow(dt.date(2024, 1, 1), dt.date(2024, 12, 31)))
    assert parse_theme_query("", "", None, segments=SEGMENTS) == ThemeQuery()
    assert parse_theme_query(NOT_GIVEN, None, None, segments=SEGMENTS).segment == NOT_GIVEN


def test_a_version_without_comments_counts_live_comments_only(tmp_path: Path) -> None:
    write_response_table(ANSWERS, CUSTOMERS, IDS, tmp_path)
    # As a version written before comments were kept: no files, no theme list.
    for name in COMMENT_FILES:
        (tmp_path / name).unlink()
    info = msgspec.json.decode((tmp_path / RESPONSES_JSON).read_bytes(), type=ResponseTableFile)
    old = msgspec.to_builtins(info)
    del old["themes"]
    (tmp_path / RESPONSES_JSON).write_bytes(msgspec.json.encode(old))
    table = ResponseTable.open(tmp_path, IDS.size)
    assert table is not None and table.comments is None
    live = [_live("live-1", "c3", 1, "2024-03-01T09:00:00", "Rude agent")]
    summary = _summary(table, live)
    assert summary.version_comments is False and summary.note
    detractor = _category(summary, "detractor")
    assert (detractor.answers, detractor.commented) == (4, 1)
    assert _counts(detractor) == {"support": 1}
