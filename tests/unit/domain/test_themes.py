"""Comment themes: the keyword lexicon, its polars twin, and the per-category summary."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.themes import THEME_NAMES, keyword_pattern, themes_of
from training.report.themes import theme_summary, with_themes


@pytest.mark.parametrize(
    ("comment", "themes"),
    [
        ("The delivery was late and nobody told me why.", ["delivery"]),
        ("My parcel ARRIVED days after the promised date", ["delivery"]),
        ("Far too expensive for what you get.", ["price"]),
        ("Customer   service never answered", ["support"]),
        ("Item was damaged, had to return it for a refund", ["quality", "returns"]),
        ("The checkout kept crashing", ["website"]),
        ("Half the range is out of stock", ["selection"]),
        ("Shipping costs are too high", ["delivery", "price"]),
        ("I love the new template", []),  # "late" only counts as a whole word
        ("", []),
        (None, []),
    ],
)
def test_themes_of_a_comment(comment: str | None, themes: list[str]) -> None:
    assert themes_of(comment) == themes


def test_keyword_forms() -> None:
    assert keyword_pattern("deliver*") == r"deliver\w*"
    assert keyword_pattern("out of stock") == r"out\s+of\s+stock"
    assert keyword_pattern("c++") == r"c\+\+"


def test_polars_and_python_tag_the_same_themes() -> None:
    comments = [
        "Fast delivery, arrived a day early!",
        "Support was unhelpful and the refund took weeks.",
        "Great value for money.",
        "Website is simple and ordering was quick.",
        "Nothing to add",
        None,
    ]
    tagged = with_themes(
        pl.LazyFrame({c.COMMENT: comments}, schema={c.COMMENT: pl.String})
    ).collect()
    for row in tagged.iter_rows(named=True):
        found = [name for name in THEME_NAMES if row[f"theme_{name}"]]
        assert found == themes_of(row[c.COMMENT])


def test_theme_summary_counts_shares_and_recent_examples() -> None:
    t0 = dt.datetime(2025, 1, 1)
    rows = [
        ("r1", "detractor", "Delivery was late", 1),
        ("r2", "detractor", "delivery was late", 2),
        ("r3", "detractor", "Too expensive", 3),
        ("r4", "detractor", "The parcel arrived broken", 4),
        ("r5", "detractor", "   ", 5),  # blank: not a comment
        ("r6", "promoter", "Great prices", 6),
    ]
    frame = pl.LazyFrame(
        {
            c.RESPONSE_ID: [r[0] for r in rows],
            "category": [r[1] for r in rows],
            c.COMMENT: [r[2] for r in rows],
            c.RESPONDED_AT: [t0 + dt.timedelta(days=r[3]) for r in rows],
        }
    )
    groups = {g.category: g for g in theme_summary(frame, "category", examples=2)}
    detractors = groups["detractor"]
    assert detractors.commented == 4
    top = detractors.themes[0]
    assert (top.theme, top.comments, top.share) == ("delivery", 3, 0.75)
    assert top.examples == ["The parcel arrived broken", "delivery was late"]  # newest first
    assert {t.theme for t in detractors.themes} == {"delivery", "price", "quality"}
    assert [t.theme for t in groups["promoter"].themes] == ["price"]
