"""The contract's date-time rule in polars: which texts are date-times, and the UTC instant of each.

A text is a date-time when it has one of the spellings of `TIMESTAMP_PATTERN` (the rule of
`recsvc.domain.contract.parse_datetime`); polars' own parser (chrono) then reads it by the
contract's formats. The pattern is checked first because chrono alone is more lenient than the
contract: it also reads single-digit fields ("2024-5-1"), offsets without a colon ("+0200"), seven
fraction digits and leap seconds.
"""

from __future__ import annotations

import polars as pl

from recsvc.domain.contract import DATETIME_PATTERN

# Every spelling the contract accepts: a date; optionally a time after a "T" or one space, in hours
# and minutes; optionally seconds, then a fraction of one to six digits and "Z" or an offset
# "+hh:mm". Two ASCII digits per field (four for the year).
TIMESTAMP_PATTERN = DATETIME_PATTERN


def with_timestamps(frame: pl.LazyFrame, texts: dict[str, pl.Expr]) -> pl.LazyFrame:
    """Add a column per entry of `texts` (output name -> stripped text): the text parsed as
    `contract.parse_datetime` parses it, as naive UTC Datetime('us'), or null where it refuses.

    The text is checked against the pattern and put in one spelling (a "T", no "Z": UTC either
    way) in a first step, so the parsing step reads a column rather than repeating that work.
    """
    if not texts:
        return frame

    def canonical(name: str) -> str:
        return f"__canonical_{name}"

    frame = frame.with_columns(
        pl.when(text.str.contains(TIMESTAMP_PATTERN))
        .then(text)
        .str.replace(" ", "T", literal=True, n=1)
        .str.strip_suffix("Z")
        .alias(canonical(name))
        for name, text in texts.items()
    )
    # Python's datetime ends at years 1 and 9999 (year 0 is a date to chrono; an offset can push a
    # value past either end).
    frame = frame.with_columns(
        _parse(pl.col(canonical(name))).alias(name) for name in texts
    ).with_columns(
        pl.when(pl.col(name).dt.year().is_between(1, 9999)).then(pl.col(name)).alias(name)
        for name in texts
    )
    return frame.drop(canonical(name) for name in texts)


def _parse(canonical: pl.Expr) -> pl.Expr:
    # Each spelling by its own format (the contract's `DATETIME_FORMATS` with a "T" and without
    # "Z"): chrono parses only the rows of its shape.
    length = canonical.str.len_bytes()
    with_offset = canonical.str.contains(r"[+-][0-9]{2}:[0-9]{2}$")

    def parsed(rows: pl.Expr, format: str, time_zone: str | None = None) -> pl.Expr:
        dtype = pl.Datetime("us", time_zone)
        return pl.when(rows).then(canonical).str.strptime(dtype, format, strict=False, exact=True)

    return pl.coalesce(
        parsed(length == 19, "%Y-%m-%dT%H:%M:%S"),
        parsed(length == 10, "%Y-%m-%d"),
        parsed(length == 16, "%Y-%m-%dT%H:%M"),
        parsed((length > 19) & ~with_offset, "%Y-%m-%dT%H:%M:%S%.f"),
        parsed(with_offset, "%Y-%m-%dT%H:%M:%S%.f%:z", "UTC").dt.replace_time_zone(None),
    )
