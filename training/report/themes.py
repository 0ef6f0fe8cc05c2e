"""Comment themes: a transparent keyword lexicon, applied to survey comments.

How it works: each theme has a short list of keywords. A keyword is a word ("courier"), a phrase
("customer service", matched with any spacing) or a word stem ending in `*` ("deliver*" matches
deliver, delivery, delivered). Matching ignores case and only counts whole words, so "late" does not
match "template". A comment belongs to every theme with at least one keyword in it, or to none.
No model, no training: what you read in `LEXICON` is all there is, and a marketer can check any
example comment by eye. The same regular expressions run in polars for the batch report
(`with_themes`) and in plain Python for one comment (`themes_of`).

The report counts, per NPS category, the share of commented answers mentioning each theme: a theme
counts whether the comment praises or criticises it ("fast delivery" and "late delivery" are both
delivery), which is why the themes are read per category (what detractors talk about).
"""

from __future__ import annotations

import msgspec
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.themes import LEXICON, THEME_NAMES, theme_pattern

EXAMPLES_PER_THEME = 3


def with_themes(responses: pl.LazyFrame) -> pl.LazyFrame:
    """Add one boolean column per theme (`theme_<name>`): does the comment mention it."""
    return responses.with_columns(
        pl.col(c.COMMENT).str.contains(theme_pattern(words)).fill_null(False).alias(f"theme_{name}")
        for name, words in LEXICON.items()
    )


class ThemeCount(msgspec.Struct, frozen=True, kw_only=True):
    theme: str
    comments: int  # commented answers mentioning the theme
    share: float  # of all commented answers in the group, 0..1
    examples: list[str]  # the most recent distinct comments mentioning it


class ThemeGroup(msgspec.Struct, frozen=True, kw_only=True):
    category: str  # detractor, passive or promoter
    commented: int  # answers with a non-empty comment
    themes: list[ThemeCount]  # most mentioned first; themes nobody mentioned are left out


def theme_summary(
    responses: pl.LazyFrame, category_column: str, examples: int = EXAMPLES_PER_THEME
) -> list[ThemeGroup]:
    """Theme counts and example comments per category (e.g. detractor, passive, promoter).

    `responses` needs `comment`, `responded_at`, `response_id` and the category column.
    """
    commented = (
        responses.select(category_column, c.COMMENT, c.RESPONDED_AT, c.RESPONSE_ID)
        .with_columns(pl.col(c.COMMENT).str.strip_chars())
        .filter(pl.col(c.COMMENT).str.len_chars() > 0)
        .pipe(with_themes)
        .sort([c.RESPONDED_AT, c.RESPONSE_ID], descending=True)
        .collect()
        .lazy()
    )
    theme_columns = [f"theme_{name}" for name in THEME_NAMES]
    counts = (
        commented.group_by(category_column)
        .agg(pl.len().alias("_commented"), *[pl.col(t).sum() for t in theme_columns])
        .collect()
    )
    # Rows are newest first and polars keeps row order within a group: the first distinct
    # comments of a group are its most recent ones.
    example_frame = pl.concat(
        commented.filter(pl.col(t))
        .group_by(category_column)
        .agg(pl.col(c.COMMENT).unique(maintain_order=True).head(examples).alias("examples"))
        .with_columns(pl.lit(t).alias("theme"))
        for t in theme_columns
    ).collect()
    example_lists = {
        (row[category_column], row["theme"]): row["examples"]
        for row in example_frame.iter_rows(named=True)
    }
    groups: list[ThemeGroup] = []
    for row in counts.sort(category_column).iter_rows(named=True):
        total = row["_commented"]
        found = [
            ThemeCount(
                theme=name,
                comments=int(row[f"theme_{name}"]),
                share=row[f"theme_{name}"] / total,
                examples=list(example_lists.get((row[category_column], f"theme_{name}"), [])),
            )
            for name in THEME_NAMES
            if row[f"theme_{name}"]
        ]
        found.sort(key=lambda t: (-t.comments, t.theme))
        groups.append(ThemeGroup(category=row[category_column], commented=total, themes=found))
    return groups
