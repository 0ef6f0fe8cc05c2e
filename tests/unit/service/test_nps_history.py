"""One customer's NPS answers for the inspector: the version's with their comments and themes plus
the live ones not yet in it, newest first; a masked (erased) customer shows only what came after
the erasure; a version without comments still lists the answers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.live import LiveActivity, LiveResponse
from recsvc.service.nps_history import customer_answers
from recsvc.version.artifacts import load_model
from recsvc.version.opened import ActiveModel, open_version
from recsvc.version.responses import ResponseTable
from tests.artifact_factory import make_artifact
from training.publish.responses import write_response_table

ANSWERS = pl.DataFrame(
    {
        c.RESPONSE_ID: ["r1", "r2", "r3"],
        c.CUSTOMER_ID: ["c001", "c001", "c002"],
        c.SCORE: [9, 3, 10],
        c.RESPONDED_AT: [
            dt.datetime(2024, 1, 5, 10),
            dt.datetime(2024, 2, 5, 10),
            dt.datetime(2024, 1, 1, 10),
        ],
        c.TOUCHPOINT: ["relationship", "post_delivery", "relationship"],
        c.COMMENT: ["Good value", " The parcel came late ", None],
    }
)


@pytest.fixture
def model(tmp_path: Path) -> ActiveModel:
    opened = open_version(load_model(make_artifact(tmp_path / "v1", "v1", 3)))
    ids = opened.loaded.customer_ids
    # The version's answers with comments, as training writes them.
    write_response_table(ANSWERS, pl.DataFrame({c.CUSTOMER_ID: ids}), ids, tmp_path / "answers")
    table = ResponseTable.open(tmp_path / "answers", int(ids.size))
    return dataclasses.replace(opened, responses=table)


def _live(rid: str, score: int, when: str, comment: str | None) -> LiveResponse:
    at = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC)
    return LiveResponse(
        response_id=rid,
        customer_id="c001",
        score=score,
        responded_at=at,
        touchpoint="relationship",
        comment=comment,
        received_at=at,
    )


def test_the_versions_and_live_answers_newest_first_with_comments(model: ActiveModel) -> None:
    live = [
        _live("live-1", 10, "2024-03-01T09:00:00", "Refund came quickly"),
        _live("r2", 3, "2024-02-05T10:00:00", "The parcel came late"),  # the version holds it
    ]
    history = customer_answers(model, "c001", LiveActivity(answers=live))
    assert history.known and history.version_comments
    got = [(a.score, a.category, a.comment, a.themes, a.source) for a in history.answers]
    assert got == [
        (10, "promoter", "Refund came quickly", ["returns"], "live"),
        (3, "detractor", "The parcel came late", ["delivery"], "version"),
        (9, "promoter", "Good value", [], "version"),
    ]
    latest = history.answers[1]
    assert latest.responded_at == dt.datetime(2024, 2, 5, 10, tzinfo=dt.UTC)
    assert latest.touchpoint == "post_delivery"


def test_a_customer_the_version_does_not_know_has_their_live_answers_only(
    model: ActiveModel,
) -> None:
    history = customer_answers(model, "nobody", LiveActivity())
    assert not history.known and history.answers == []


def test_an_erased_customer_shows_only_what_came_after_the_erasure(model: ActiveModel) -> None:
    after = _live("live-2", 8, "2025-01-02T09:00:00", "   ")
    erased = LiveActivity(answers=[after], erased_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    history = customer_answers(model, "c001", erased)
    assert not history.known
    assert [(a.score, a.comment, a.source) for a in history.answers] == [(8, None, "live")]


def test_a_version_without_comments_lists_its_answers_without_them(model: ActiveModel) -> None:
    assert model.responses is not None
    old = dataclasses.replace(model, responses=dataclasses.replace(model.responses, comments=None))
    history = customer_answers(old, "c001", LiveActivity())
    assert not history.version_comments
    assert [(a.score, a.comment, a.themes) for a in history.answers] == [
        (3, None, []),
        (9, None, []),
    ]
    assert all(a.source == "version" for a in history.answers)
