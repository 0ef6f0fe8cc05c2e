"""`GET /v1/nps/summary` against both stores: the numbers equal an independent polars count over the
training data (one vote per customer per group, their latest answer), live answers are added, and
bad parameters are a 400 naming the parameter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.nps import nps_from_counts
from tests.api_support import (
    STORE_KINDS,
    Artifact,
    client_for,
    published_store,
)

NOT_GIVEN = "(not given)"


def expected(
    answers: pl.DataFrame,
    customers: pl.DataFrame,
    group: pl.Expr,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> dict[str, tuple[int, int, int]]:
    """(promoters, passives, detractors) per group: each customer's latest answer in the group."""
    frame = answers.join(
        customers.select(c.CUSTOMER_ID, ct.PRIMARY_SEGMENT, c.COUNTRY, c.AGE_BAND),
        on=c.CUSTOMER_ID,
        how="left",
    )
    if since is not None:
        frame = frame.filter(pl.col(c.RESPONDED_AT).dt.date() >= since)
    if until is not None:
        frame = frame.filter(pl.col(c.RESPONDED_AT).dt.date() <= until)
    latest = (
        frame.with_columns(group.alias("group"))
        .sort(c.RESPONDED_AT, c.RESPONSE_ID)
        .group_by("group", c.CUSTOMER_ID)
        .agg(pl.col(c.SCORE).last())
    )
    counts = latest.group_by("group").agg(
        (pl.col(c.SCORE) >= 9).sum().alias("p"),
        pl.col(c.SCORE).is_between(7, 8).sum().alias("s"),
        (pl.col(c.SCORE) <= 6).sum().alias("d"),
    )
    return {row["group"]: (row["p"], row["s"], row["d"]) for row in counts.iter_rows(named=True)}


def _answers(artifact: Artifact) -> pl.DataFrame:
    return artifact.table(c.NPS_RESPONSES).select(
        c.RESPONSE_ID, c.CUSTOMER_ID, c.SCORE, c.RESPONDED_AT, c.TOUCHPOINT
    )


def _counts(result: dict[str, int]) -> tuple[int, int, int]:
    return (result["promoters"], result["passives"], result["detractors"])


def _summary(client: TestClient[Litestar], query: str = "") -> dict[str, object]:
    response = client.get(f"/v1/nps/summary?{query}")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _by_label(body: dict[str, object]) -> dict[str, tuple[int, int, int]]:
    groups = body["groups"]
    assert isinstance(groups, list)
    return {g["label"]: _counts(g["nps"]) for g in groups}


def test_the_overall_nps_counts_each_customers_latest_answer(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    body = _summary(client)
    counts = expected(_answers(artifact), artifact.customer_table(), pl.lit("all"))["all"]
    overall = body["overall"]
    assert isinstance(overall, dict)
    assert _counts(overall) == counts
    reference = nps_from_counts(*counts)
    assert overall["nps"] == pytest.approx(reference.nps)
    assert overall["margin_of_error"] == pytest.approx(reference.margin_of_error)
    assert body["model_version"] == artifact.version
    assert body["artifact_answers"] == _answers(artifact).height
    assert body["live_answers"] == 0


@pytest.mark.parametrize(
    ("by", "column"),
    [
        ("segment", pl.col(ct.PRIMARY_SEGMENT)),
        ("country", pl.col(c.COUNTRY)),
        ("age_band", pl.col(c.AGE_BAND)),
        ("touchpoint", pl.col(c.TOUCHPOINT)),
        ("month", pl.col(c.RESPONDED_AT).dt.strftime("%Y-%m")),
    ],
)
def test_groups_match_an_independent_count(
    client: TestClient[Litestar], artifact: Artifact, by: str, column: pl.Expr
) -> None:
    body = _summary(client, f"by={by}")
    want = expected(_answers(artifact), artifact.customer_table(), column.fill_null(NOT_GIVEN))
    assert _by_label(body) == want
    if by == "month":
        assert list(_by_label(body)) == sorted(want)


def test_since_and_until_filter_by_the_responded_day(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    since, until = dt.date(2024, 3, 1), dt.date(2024, 5, 31)
    body = _summary(client, f"by=country&since={since}&until={until}")
    want = expected(_answers(artifact), artifact.customer_table(), pl.col(c.COUNTRY), since, until)
    assert _by_label(body) == want
    answers = _answers(artifact).filter(pl.col(c.RESPONDED_AT).dt.date().is_between(since, until))
    assert body["artifact_answers"] == answers.height
    assert (body["since"], body["until"]) == ("2024-03-01", "2024-05-31")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("by=planet", "by"),
        ("since=2024-02-31", "since"),
        ("until=01/02/2024", "until"),
        ("since=2024-06-01&until=2024-05-01", "since"),
        ("by=" + "x" * 5000, "by"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    client: TestClient[Litestar], query: str, parameter: str
) -> None:
    response = client.get(f"/v1/nps/summary?{query}")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{parameter}:")
    assert len(response.json()["detail"]) < 300


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_live_answers_are_added_to_the_versions_answers(
    kind: str, artifact: Artifact, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else None
    table = artifact.customer_table().sort(c.CUSTOMER_ID)
    promoter = str(table.filter(pl.col(ct.NPS_CATEGORY) == "promoter")[c.CUSTOMER_ID][0])
    now = dt.datetime(2024, 12, 30, 12, 0, 0)
    live = [
        (f"live-{promoter}", promoter, 0),  # an existing promoter turns detractor
        ("live-new-1", "NEW-SUMMARY-1", 10),  # a new customer: no segment or country yet
        ("live-new-2", "NEW-SUMMARY-2", 8),
    ]
    posted = [
        {
            "response_id": rid,
            "customer_id": customer,
            "score": score,
            "responded_at": now.isoformat(),
            "touchpoint": "relationship",
        }
        for rid, customer, score in live
    ]
    # A response the version already holds, posted again: it must not count twice.
    first = _answers(artifact).row(0, named=True)
    posted.append(
        {
            **first,
            c.RESPONDED_AT: first[c.RESPONDED_AT].isoformat(),
            "touchpoint": first[c.TOUCHPOINT],
        }
    )
    with (
        published_store(kind, artifact, tmp_path, redis_url) as store,
        client_for(store) as client,
    ):
        assert client.post("/v1/nps-responses", json=posted).status_code == 202
        body = _summary(client, "by=country")
    assert body["live_answers"] == 3
    frame = pl.concat(
        [
            _answers(artifact),
            pl.DataFrame(
                {
                    c.RESPONSE_ID: [r for r, _, _ in live],
                    c.CUSTOMER_ID: [cu for _, cu, _ in live],
                    c.SCORE: [s for _, _, s in live],
                    c.RESPONDED_AT: [now] * 3,
                    c.TOUCHPOINT: ["relationship"] * 3,
                },
                schema=_answers(artifact).schema,
            ),
        ]
    )
    want = expected(frame, table, pl.col(c.COUNTRY).fill_null(NOT_GIVEN))
    assert _by_label(body) == want
    overall = body["overall"]
    assert isinstance(overall, dict)
    assert _counts(overall) == expected(frame, table, pl.lit("all"))["all"]
