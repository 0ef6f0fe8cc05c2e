"""`GET /v1/nps/themes` on a version the real training run wrote: per NPS category the answers,
the commented ones and each theme's count equal an independent count over the shop's input file
(Python's `themes_of` on every comment, against the training job's polars regular expressions);
a live comment appears at once; segment and period filters narrow it; an erased customer's
comments disappear (and the subject access export shows the version's comments before); a bad
parameter is a 400 naming it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.nps import category
from recsvc.domain.themes import THEME_NAMES, comment_text, themes_of
from recsvc.version.responses import NOT_GIVEN
from tests.api_support import Artifact, client_for, published_store

Counts = dict[str, dict[str, Any]]


def _answers(artifact: Artifact) -> pl.DataFrame:
    """The shop's answers with each customer's primary segment as of the version."""
    segments = artifact.customer_table().select(c.CUSTOMER_ID, ct.PRIMARY_SEGMENT)
    return (
        artifact.table(c.NPS_RESPONSES)
        .join(segments, on=c.CUSTOMER_ID, how="left")
        .with_columns(pl.col(ct.PRIMARY_SEGMENT).fill_null(NOT_GIVEN))
    )


def expected(answers: pl.DataFrame) -> Counts:
    """Per category: answers, commented, unthemed and per-theme counts, one answer at a time."""
    counts: Counts = {
        name: {"answers": 0, "commented": 0, "unthemed": 0, "themes": Counter()}
        for name in ("promoter", "passive", "detractor")
    }
    for score, comment in answers.select(c.SCORE, c.COMMENT).iter_rows():
        group = counts[category(score).value]
        group["answers"] += 1
        text = comment_text(comment)
        if text is None:
            continue
        group["commented"] += 1
        themes = themes_of(text)
        group["unthemed"] += not themes
        group["themes"].update(themes)
    return counts


def got(body: dict[str, Any]) -> Counts:
    return {
        group["category"]: {
            "answers": group["answers"],
            "commented": group["commented"],
            "unthemed": group["unthemed"],
            "themes": Counter(
                {t["theme"]: t["comments"] for t in group["themes"] if t["comments"]}
            ),
        }
        for group in body["categories"]
    }


def themes(client: TestClient[Litestar], query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/nps/themes?{query}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def now_iso(offset_seconds: float = 0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.fixture
def fresh_client(artifact: Artifact, tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    """A client on a store of its own: for tests that add answers or erase a customer."""
    with published_store("file", artifact, tmp_path) as store, client_for(store) as client:
        yield client


def test_counts_match_an_independent_count_of_the_shops_answers(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    body = themes(client)
    answers = _answers(artifact)
    want = expected(answers)
    assert got(body) == want
    assert sum(g["commented"] for g in want.values()) > 500, "the demo data has comments"
    assert body["model_version"] == artifact.version
    assert body["version_comments"] is True and body["note"] is None
    assert body["artifact_answers"] == answers.height and body["live_answers"] == 0
    assert body["themes"] == list(THEME_NAMES)
    # Verbatims: the newest comments of the category mentioning the theme, distinct, newest first.
    by_category = {
        name: answers.filter(
            pl.col(c.SCORE).map_elements(lambda s: category(s).value, return_dtype=pl.String)
            == name
        )
        for name in want
    }
    for group in body["categories"]:
        rows = [
            (comment_text(comment), when)
            for comment, when in by_category[group["category"]]
            .select(c.COMMENT, c.RESPONDED_AT)
            .iter_rows()
            if comment_text(comment)
        ]
        for theme in group["themes"]:
            mentioning = [(text, when) for text, when in rows if theme["theme"] in themes_of(text)]
            shown = theme["verbatims"]
            assert len(shown) == min(3, len({text for text, _ in mentioning})), theme
            if not shown:
                continue
            assert theme["share"] == pytest.approx(theme["comments"] / group["commented"])
            texts = [v["text"] for v in shown]
            assert len(set(texts)) == len(texts)
            stamps = [dt.datetime.fromisoformat(v["responded_at"]) for v in shown]
            assert stamps == sorted(stamps, reverse=True)
            newest = max(when for _, when in mentioning).replace(tzinfo=dt.UTC)
            assert stamps[0] == newest
            assert set(shown[0]) == {"text", "responded_at", "touchpoint"}  # nobody's id


def test_a_live_comment_counts_at_once(
    fresh_client: TestClient[Litestar], artifact: Artifact
) -> None:
    before = got(themes(fresh_client))
    customer = str(artifact.table(c.NPS_RESPONSES)[c.CUSTOMER_ID][0])
    posted = [
        {
            "response_id": "themes-live-1",
            "customer_id": customer,
            "score": 1,
            "responded_at": now_iso(-60),
            "touchpoint": "post_delivery",
            "comment": "The courier lost my parcel and support never answered",
        },
        {
            "response_id": "themes-live-2",
            "customer_id": "THEMES-NEW-1",
            "score": 8,
            "responded_at": now_iso(-60),
            "touchpoint": "relationship",
        },
    ]
    assert fresh_client.post("/v1/nps-responses", json=posted).status_code == 202
    body = themes(fresh_client)
    assert body["live_answers"] == 2
    after = got(body)
    assert after["detractor"]["commented"] == before["detractor"]["commented"] + 1
    assert after["detractor"]["themes"] - before["detractor"]["themes"] == Counter(
        {"delivery": 1, "support": 1}
    )
    assert after["passive"]["answers"] == before["passive"]["answers"] + 1
    assert after["passive"]["commented"] == before["passive"]["commented"]
    detractor = next(g for g in body["categories"] if g["category"] == "detractor")
    delivery = next(t for t in detractor["themes"] if t["theme"] == "delivery")
    assert delivery["verbatims"][0]["text"] == posted[0]["comment"]
    assert delivery["verbatims"][0]["touchpoint"] == "post_delivery"
    # The new customer has no segment in the version.
    unknown = got(themes(fresh_client, f"segment={NOT_GIVEN}"))
    assert unknown["passive"]["answers"] == 1 and unknown["passive"]["commented"] == 0


def test_a_segment_and_a_period_narrow_the_count(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    answers = _answers(artifact)
    segment = str(answers[ct.PRIMARY_SEGMENT].value_counts(sort=True)[ct.PRIMARY_SEGMENT][0])
    body = themes(client, f"segment={segment}")
    narrowed = answers.filter(pl.col(ct.PRIMARY_SEGMENT) == segment)
    assert 0 < narrowed.height < answers.height
    assert got(body) == expected(narrowed)
    assert body["segment"] == segment and body["artifact_answers"] == narrowed.height

    since, until = dt.date(2025, 3, 1), dt.date(2025, 5, 31)
    body = themes(client, f"since={since}&until={until}&segment={segment}")
    window = narrowed.filter(pl.col(c.RESPONDED_AT).dt.date().is_between(since, until))
    assert 0 < window.height < narrowed.height
    assert got(body) == expected(window)
    assert (body["since"], body["until"]) == ("2025-03-01", "2025-05-31")


def test_an_erased_customers_comments_disappear(
    fresh_client: TestClient[Litestar], artifact: Artifact
) -> None:
    answers = _answers(artifact)
    commented = answers.filter(
        pl.col(c.COMMENT).str.strip_chars().str.len_chars() > 0, pl.col(c.SCORE) <= 6
    )
    customer = str(commented[c.CUSTOMER_ID][0])
    theirs = answers.filter(pl.col(c.CUSTOMER_ID) == customer)
    # Their live comment, too.
    live = {
        "response_id": "themes-erased-1",
        "customer_id": customer,
        "score": 0,
        "responded_at": now_iso(-120),
        "touchpoint": "relationship",
        "comment": "Refund refused, never again",
    }
    assert fresh_client.post("/v1/nps-responses", json=[live]).status_code == 202
    # Before: the subject access export shows the version's comments of theirs.
    data = fresh_client.get(f"/v1/customers/{customer}/data").json()
    exported = sorted(comment_text(a["comment"]) or "" for a in data["version_nps_answers"])
    assert exported == sorted(comment_text(t) or "" for t in theirs[c.COMMENT].to_list())
    assert all(a["themes"] == themes_of(a["comment"]) for a in data["version_nps_answers"])
    assert got(themes(fresh_client))["detractor"]["themes"]["returns"] == (
        expected(answers)["detractor"]["themes"]["returns"] + 1
    )

    assert fresh_client.delete(f"/v1/customers/{customer}").status_code == 202
    body = themes(fresh_client)
    without = answers.filter(pl.col(c.CUSTOMER_ID) != customer)
    assert got(body) == expected(without)
    assert body["artifact_answers"] == without.height and body["live_answers"] == 0


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("since=2024-02-31", "since"),
        ("since=yesterday", "since"),
        ("until=01/02/2024", "until"),
        ("since=2024-06-01&until=2024-05-01", "since"),
        ("segment=no-such-segment", "segment"),
        ("segment=" + "x" * 5000, "segment"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    client: TestClient[Litestar], query: str, parameter: str
) -> None:
    response = client.get(f"/v1/nps/themes?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{parameter}:")
    assert len(response.json()["detail"]) < 600
