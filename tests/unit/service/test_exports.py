"""Segment exports on a tiny version written by the training job's own serving-table writer: CSV
cells a spreadsheet would run as formulas, and an export that breaks off part-way."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.segments.catalog import parse_segments
from recsvc.service.exports import plan as exports
from recsvc.service.exports.base import ExportFailed
from recsvc.service.exports.csv import spreadsheet_safe
from recsvc.service.exports.plan import plan_export
from recsvc.version.profiles import (
    EXPORT_BIN,
    EXPORT_OFFSETS,
    PROFILE_OFFSETS,
    PROFILES_BIN,
    Profiles,
)
from training.publish.profiles import write_serving_tables

EVERYONE = (
    '[segments.everyone]\ndescription = "Every customer."\nexpression = "customer_id is not None"\n'
)


@pytest.mark.parametrize(
    ("typed", "cell"),
    [
        ("=1+1", "'=1+1"),
        ('=HYPERLINK("http://x.example","go")', '\'=HYPERLINK("http://x.example","go")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        ("-inf", "'-inf"),
        # What a spreadsheet reads as a number is not a formula: it keeps its sign.
        ("-12.5", "-12.5"),
        ("+3", "+3"),
        ("-1e5", "-1e5"),
        ("-.5", "-.5"),
        # Only the first character counts.
        ("Anna=1+1", "Anna=1+1"),
        ("25-34", "25-34"),
        ("", ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(typed: str, cell: str) -> None:
    assert spreadsheet_safe(typed) == cell


def _version(directory: Path, table: pl.DataFrame) -> Profiles:
    """The profile files of a version holding `table` (every customer in segment `everyone`)."""
    table = table.sort(c.CUSTOMER_ID).with_columns(
        pl.lit(["everyone"]).alias(ct.SEGMENTS),
        pl.lit("everyone").alias(ct.PRIMARY_SEGMENT),
        pl.lit("unknown").alias(ct.NPS_CATEGORY),
    )
    ids = table[c.CUSTOMER_ID].to_numpy().astype(str)
    extras = [name for name in table.columns if name not in ct.COLUMNS]
    rules = parse_segments([("test", EVERYONE)], extra_columns=extras)
    write_serving_tables(table, ids, rules, directory)
    return Profiles.open(directory, ids)


# Each column's cells as the CSV must carry them, from what customers typed (see the table below).
CSV_CELLS = {
    c.CUSTOMER_ID: ["c0", "c1", "c2", "c3", "c4", "c5"],
    "'=nickname": ["'=1+1", "Anna\r=2+2", "Bob\n@SUM(1)", "-12.5", 'Zoë, "the boss"', ""],
    ct.DELIVERY_GAP: ["-3", "0", "2", "-1", "", "4"],
    ct.FAVOURITE_CATEGORIES: ["'=garden|books", "books|=garden", "", "", "toys", "toys"],
}


@pytest.mark.parametrize(
    "fields",
    [
        ["=nickname", ct.DELIVERY_GAP],  # text and numbers: written row by row
        ["=nickname", ct.DELIVERY_GAP, ct.FAVOURITE_CATEGORIES],  # a list: column by column
    ],
    ids=["text-and-numbers", "with-a-list"],
)
def test_a_csv_export_neutralises_formulas_and_keeps_rows_whole(
    tmp_path: Path, fields: list[str]
) -> None:
    profiles = _version(
        tmp_path,
        pl.DataFrame(
            {
                c.CUSTOMER_ID: [f"c{i}" for i in range(6)],
                "=nickname": [
                    "=1+1",
                    "Anna\r=2+2",
                    "Bob\n@SUM(1)",
                    "-12.5",
                    'Zoë, "the boss"',
                    None,
                ],
                ct.DELIVERY_GAP: [-3, 0, 2, -1, None, 4],
                ct.FAVOURITE_CATEGORIES: [["=garden", "books"], ["books", "=garden"], [], None]
                + [["toys"]] * 2,
            }
        ),
    )
    export = plan_export(profiles, "v1", "everyone", export_format="csv", fields=",".join(fields))
    text = b"".join(export.chunks()).decode()

    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = [c.CUSTOMER_ID, *(f"'{f}" if f.startswith("=") else f for f in fields)]
    assert rows[0] == header
    # Quoted, the CR and LF inside values do not end their rows.
    assert rows[1:] == [list(row) for row in zip(*(CSV_CELLS[n] for n in header), strict=True)]
    assert text.count("\r\n") == len(rows)  # RFC 4180 line ends


def _corrupt_record(directory: Path, index: int) -> None:
    """Overwrite customer `index`'s records in place (as a disk or a careless copy might), after
    the version was opened: they no longer decode, the other records are untouched."""
    for records, offsets in ((PROFILES_BIN, PROFILE_OFFSETS), (EXPORT_BIN, EXPORT_OFFSETS)):
        start, end = np.load(directory / offsets)[index : index + 2]
        with (directory / records).open("r+b") as handle:
            handle.seek(int(start))
            handle.write(b"#" * int(end - start - 1))  # the newline stays: one bad line


@pytest.mark.parametrize("export_format", ["csv", "ndjson", "parquet"])
def test_an_export_that_breaks_off_raises_after_what_it_sent_and_logs_one_line(
    tmp_path: Path,
    export_format: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profiles = _version(
        tmp_path,
        pl.DataFrame({c.CUSTOMER_ID: [f"c{i}" for i in range(5)], c.COUNTRY: ["DE"] * 5}),
    )
    _corrupt_record(tmp_path, 3)  # in the second chunk of two rows
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    export = plan_export(profiles, "v1", "everyone", export_format=export_format)
    sent: list[bytes] = []
    with (
        caplog.at_level(logging.ERROR, logger="recsvc.service.exports"),
        pytest.raises(ExportFailed) as failure,
    ):
        sent.extend(export.chunks())
    # Litestar's stream takes a ValueError (a JSON decode error is one) for the end of the body
    # and would close it as complete; anything else makes the server drop the connection.
    assert not isinstance(failure.value, ValueError)
    body = b"".join(sent)
    if export_format == "csv":  # the header and the first chunk, nothing after them
        assert body.decode().split("\r\n") == [
            "customer_id,primary_segment,nps_category",
            "c0,everyone,unknown",
            "c1,everyone,unknown",
            "",
        ]
    elif export_format == "ndjson":
        assert [json.loads(line)[c.CUSTOMER_ID] for line in body.splitlines()] == ["c0", "c1"]
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert message.startswith(f"export of segment 'everyone' (version v1, {export_format}) failed")
    assert "JSON is malformed" in message
