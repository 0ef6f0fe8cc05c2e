"""The NPS answer arrays of a version, with each answer's comment and themes, which the service's
`GET /v1/nps/summary` and `GET /v1/nps/themes` map (format: `recsvc.version.responses`,
`recsvc.version.comments`).

Written into the artifact directory before the manifest, so the manifest lists and hashes them.
Vectorised except for the response-id keys (one hash per answer: about a second per million).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.contract import TOUCHPOINTS
from recsvc.domain.themes import THEME_NAMES
from recsvc.version.artifacts import id_keys
from recsvc.version.comments import (
    COMMENT_BIN,
    COMMENT_INDEX,
    COMMENT_OFFSETS,
    COMMENT_THEMES,
    MAX_THEMES,
    NO_COMMENT,
)
from recsvc.version.responses import (
    CUSTOMER_GROUPS,
    GROUP_COLUMNS,
    NOT_GIVEN,
    RESPONSE_CUSTOMERS,
    RESPONSE_FILES,
    RESPONSE_KEYS,
    RESPONSE_SCORES,
    RESPONSE_TIMES,
    RESPONSE_TOUCHPOINTS,
    RESPONSES_JSON,
    ResponseTableFile,
)
from training.report.themes import with_themes

# Where each group column of the summary comes from in the customer table.
_SOURCES = {"segment": ct.PRIMARY_SEGMENT, "country": c.COUNTRY, "age_band": c.AGE_BAND}
_INDEX = "_index"
_THEMES = "_themes"
_TEXT = "_text"
BLOCK_ROWS = 100_000  # comments per write: bounds the writer's extra memory


def _customer_groups(
    customer_table: pl.DataFrame, customer_ids: np.ndarray
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Per artifact customer, the code of their primary segment, country and age band."""
    ids = pl.Series(c.CUSTOMER_ID, customer_ids, dtype=pl.String).to_frame()
    present = [_SOURCES[name] for name in GROUP_COLUMNS if _SOURCES[name] in customer_table.columns]
    aligned = ids.join(
        customer_table.select(c.CUSTOMER_ID, *present),
        on=c.CUSTOMER_ID,
        how="left",
        maintain_order="left",
    )
    codes = np.empty((aligned.height, len(GROUP_COLUMNS)), dtype=np.int32)
    labels: dict[str, list[str]] = {}
    for j, name in enumerate(GROUP_COLUMNS):
        source = _SOURCES[name]
        values = (
            aligned[source].cast(pl.String).fill_null(NOT_GIVEN)
            if source in aligned.columns
            else pl.Series(source, [NOT_GIVEN] * aligned.height, dtype=pl.String)
        )
        names = sorted(set(values.unique().to_list()) | {NOT_GIVEN})
        labels[name] = names
        codes[:, j] = values.replace_strict(
            {label: k for k, label in enumerate(names)}, return_dtype=pl.Int32
        ).to_numpy()
    return codes, labels


def _theme_bits() -> pl.Expr:
    """Each answer's themes as a uint32 of bits in `THEME_NAMES` order, from the report's theme
    columns (`with_themes`), so the service reads the themes the report counts."""
    if len(THEME_NAMES) > MAX_THEMES:
        raise ValueError(f"{len(THEME_NAMES)} themes do not fit {MAX_THEMES} bits")
    return (
        pl.sum_horizontal(
            pl.col(f"theme_{name}").cast(pl.UInt32) * pl.lit(1 << k, pl.UInt32)
            for k, name in enumerate(THEME_NAMES)
        )
        .cast(pl.UInt32)
        .alias(_THEMES)
    )


def _write_comments(comments: pl.Series, directory: Path) -> None:
    """Each distinct comment once, in the order of its first answer, with its int64 byte offsets,
    and each answer's comment number (-1: none)."""
    frame = comments.alias(c.COMMENT).to_frame()
    distinct = (
        frame.filter(pl.col(c.COMMENT) != "")
        .unique(maintain_order=True)
        .with_row_index(_TEXT)
        .with_columns(pl.col(_TEXT).cast(pl.Int32))
    )
    index = (
        frame.join(distinct, on=c.COMMENT, how="left", maintain_order="left")[_TEXT]
        .fill_null(NO_COMMENT)
        .to_numpy()
    )
    texts = distinct[c.COMMENT]
    lengths = texts.str.len_bytes().to_numpy().astype(np.int64)
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    with (directory / COMMENT_BIN).open("wb") as out:
        for start in range(0, texts.len(), BLOCK_ROWS):
            out.write(texts.slice(start, BLOCK_ROWS).str.join("").item().encode())
    np.save(directory / COMMENT_OFFSETS, offsets, allow_pickle=False)
    np.save(directory / COMMENT_INDEX, index.astype(np.int32), allow_pickle=False)


def write_response_table(
    nps_responses: pl.DataFrame | pl.LazyFrame,
    customer_table: pl.DataFrame,
    customer_ids: np.ndarray,
    directory: Path,
) -> list[str]:
    """Write the version's NPS answers (the validated `nps_responses` table) and each customer's
    groups (primary segment, country, age band from `customer_table`) into `directory`.

    `customer_ids` is the artifact's sorted customer id array. Returns the names of the files written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    index = pl.DataFrame(
        {
            c.CUSTOMER_ID: pl.Series(customer_ids, dtype=pl.String),
            _INDEX: np.arange(customer_ids.size, dtype=np.int32),
        }
    )
    touchpoints = list(TOUCHPOINTS)
    frame = nps_responses.lazy()
    # Stripped, as the report reads them; a table without the optional column has no comments.
    comment = (
        pl.col(c.COMMENT).cast(pl.String).str.strip_chars().fill_null("")
        if c.COMMENT in frame.collect_schema().names()
        else pl.lit("", pl.String)
    )
    answers = (
        frame.select(
            c.RESPONSE_ID,
            c.CUSTOMER_ID,
            c.SCORE,
            c.RESPONDED_AT,
            c.TOUCHPOINT,
            comment.alias(c.COMMENT),
        )
        .join(index.lazy(), on=c.CUSTOMER_ID, how="left")
        .select(
            pl.col(c.RESPONSE_ID),
            pl.col(_INDEX).fill_null(-1).cast(pl.Int32),
            pl.col(c.SCORE).cast(pl.Int8),
            pl.col(c.RESPONDED_AT).dt.epoch("s").cast(pl.Int64).alias(c.RESPONDED_AT),
            pl.col(c.TOUCHPOINT)
            .replace_strict({t: k for k, t in enumerate(touchpoints)}, return_dtype=pl.Int16)
            .alias(c.TOUCHPOINT),
            pl.col(c.COMMENT),
        )
        .pipe(with_themes)
        .select(pl.exclude("^theme_.*$"), _theme_bits())
        .collect()
    )
    keys = id_keys(answers[c.RESPONSE_ID].to_list())
    order = np.argsort(keys, kind="stable")
    columns = {
        RESPONSE_KEYS: keys[order],
        RESPONSE_CUSTOMERS: answers[_INDEX].to_numpy()[order],
        RESPONSE_SCORES: answers[c.SCORE].to_numpy()[order],
        RESPONSE_TIMES: answers[c.RESPONDED_AT].to_numpy()[order],
        RESPONSE_TOUCHPOINTS: answers[c.TOUCHPOINT].to_numpy()[order],
        COMMENT_THEMES: answers[_THEMES].to_numpy()[order],
    }
    for name, array in columns.items():
        np.save(directory / name, np.ascontiguousarray(array), allow_pickle=False)
    codes, labels = _customer_groups(customer_table, customer_ids)
    np.save(directory / CUSTOMER_GROUPS, codes, allow_pickle=False)
    _write_comments(answers[c.COMMENT].gather(order), directory)
    info = ResponseTableFile(
        responses=answers.height,
        customers=int(customer_ids.size),
        touchpoints=touchpoints,
        groups=labels,
        themes=list(THEME_NAMES),
    )
    (directory / RESPONSES_JSON).write_bytes(msgspec.json.format(msgspec.json.encode(info)))
    return list(RESPONSE_FILES)
