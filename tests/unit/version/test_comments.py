"""A version's comment files: written row for row with the answer table, read back memory-mapped
as written (stripped, any script), each distinct text stored once, theme bits that agree with
`themes_of`, and files that do not match the table refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.live import stable_key
from recsvc.domain.themes import THEME_NAMES, comment_text, themes_of
from recsvc.errors import ArtifactError
from recsvc.version.comments import (
    COMMENT_BIN,
    COMMENT_FILES,
    COMMENT_INDEX,
    COMMENT_OFFSETS,
    COMMENT_THEMES,
    mask_themes,
    theme_mask,
)
from recsvc.version.responses import RESPONSE_FILES, ResponseTable
from training.publish.responses import write_response_table

COMMENTS = [
    "The delivery was late and nobody told me why.",
    "  Customer   service never answered\n",
    "Item was damaged, had to return it for a refund",
    "I love the new template",
    "Shipping costs are too high",
    "Die Lieferung kam zu spät 📦, aber der Preis stimmt",
    "配送が遅い late",
    "Das Paket kam spät",
    "CHECKOUT crashed; deals* expensive!",
    "",
    "   ",
    None,
]
IDS = np.array([f"c{i:02d}" for i in range(len(COMMENTS))])


def _answers(comments: list[str | None]) -> pl.DataFrame:
    n = len(comments)
    return pl.DataFrame(
        {
            c.RESPONSE_ID: [f"r{i}" for i in range(n)],
            c.CUSTOMER_ID: IDS[:n].tolist(),
            c.SCORE: [i % 11 for i in range(n)],
            c.RESPONDED_AT: [dt.datetime(2024, 1, 1 + i) for i in range(n)],
            c.TOUCHPOINT: ["relationship"] * n,
            c.COMMENT: comments,
        },
        schema={
            c.RESPONSE_ID: pl.String,
            c.CUSTOMER_ID: pl.String,
            c.SCORE: pl.Int64,
            c.RESPONDED_AT: pl.Datetime("us"),
            c.TOUCHPOINT: pl.String,
            c.COMMENT: pl.String,
        },
    )


def _written(tmp_path: Path, answers: pl.DataFrame) -> ResponseTable:
    files = write_response_table(answers, pl.DataFrame({c.CUSTOMER_ID: IDS}), IDS, tmp_path)
    assert sorted(files) == sorted(p.name for p in tmp_path.iterdir())
    table = ResponseTable.open(tmp_path, IDS.size)
    assert table is not None
    return table


def test_comments_and_themes_come_back_row_for_row(tmp_path: Path) -> None:
    table = _written(tmp_path, _answers(COMMENTS))
    comments = table.comments
    assert comments is not None and comments.theme_names == THEME_NAMES
    # The table's rows are sorted by response key: find each answer's row by its key.
    for i, comment in enumerate(COMMENTS):
        row = int(np.flatnonzero(np.asarray(table.keys) == stable_key(f"r{i}"))[0])
        assert comments.comment(row) == comment_text(comment)
        # The writer's polars regular expressions agree with the service's Python ones.
        assert comments.themes_at(row) == themes_of(comment), comment
        assert bool(comments.commented()[row]) == (comment_text(comment) is not None)


def test_the_same_text_is_stored_once(tmp_path: Path) -> None:
    table = _written(tmp_path, _answers(["Great!", " Great! ", "Late", "Great!", None]))
    comments = table.comments
    assert comments is not None
    # Two texts, in the order of their first answer (rows are in response-key order).
    assert sorted([comments.text(0), comments.text(1)]) == ["Great!", "Late"]
    assert len(comments.offsets) == 3 and len(comments.data) == len("Great!Late")
    great = [i for i in range(len(table)) if comments.comment(i) == "Great!"]
    assert len(great) == 3 and len({int(comments.index[i]) for i in great}) == 1
    assert sorted(comments.comment(i) or "" for i in range(len(table))) == [
        "",
        "Great!",
        "Great!",
        "Great!",
        "Late",
    ]


def test_a_table_without_the_comment_column_has_no_comments(tmp_path: Path) -> None:
    table = _written(tmp_path, _answers(COMMENTS[:3]).drop(c.COMMENT))
    assert table.comments is not None
    assert [table.comments.comment(i) for i in range(len(table))] == [None] * 3
    assert not table.comments.commented().any() and not np.asarray(table.comments.themes).any()


def test_an_empty_table_opens(tmp_path: Path) -> None:
    table = _written(tmp_path, _answers([]))
    assert table.comments is not None and len(table) == 0
    assert (tmp_path / COMMENT_BIN).stat().st_size == 0


def test_the_files_are_listed_with_the_answer_table() -> None:
    assert set(COMMENT_FILES) <= set(RESPONSE_FILES)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        (COMMENT_OFFSETS, lambda p: np.save(p, np.zeros(3, dtype=np.int64))),
        (COMMENT_INDEX, lambda p: np.save(p, np.full(len(COMMENTS), 99, dtype=np.int32))),
        (COMMENT_INDEX, lambda p: np.save(p, np.zeros(3, dtype=np.int32))),
        (COMMENT_THEMES, lambda p: np.save(p, np.zeros(2, dtype=np.uint32))),
        (COMMENT_THEMES, lambda p: np.save(p, np.zeros(len(COMMENTS), dtype=np.int64))),
        (COMMENT_BIN, lambda p: p.write_bytes(p.read_bytes()[:-1])),
        (COMMENT_BIN, lambda p: p.unlink()),
    ],
)
def test_comment_files_that_do_not_match_the_table_are_refused(
    tmp_path: Path, name: str, damage: object
) -> None:
    _written(tmp_path, _answers(COMMENTS))
    damage(tmp_path / name)  # type: ignore[operator]
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        ResponseTable.open(tmp_path, IDS.size)


def test_theme_bits_follow_the_names_given() -> None:
    names = ["price", "delivery"]
    assert theme_mask(["delivery", "website"], names) == 0b10
    assert mask_themes(0b11, names) == ["price", "delivery"]
    assert mask_themes(theme_mask(THEME_NAMES, THEME_NAMES), THEME_NAMES) == list(THEME_NAMES)
