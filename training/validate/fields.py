"""One field of one row: the polars twin of `recsvc.domain.contract.check_value`.

`parse` reads a column as a field's kind, taking values exactly where `check_value` does, from text
(a CSV cell, a JSON string) or from a typed Parquet or NDJSON column; `field_error` runs the
contract's checks on it in `check_value`'s order and says what failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from recsvc.domain import contract
from recsvc.domain.contract import Field, Kind
from training.validate.lexicon import lexicon, number_text, strip

# The contract's kinds as polars dtypes: the dtypes of the clean tables.
DTYPES: dict[Kind, pl.DataType] = {
    Kind.STR: pl.String(),
    Kind.ID: pl.String(),
    Kind.INT: pl.Int64(),
    Kind.FLOAT: pl.Float64(),
    Kind.BOOL: pl.Boolean(),
    Kind.DATE: pl.Date(),
    Kind.DATETIME: pl.Datetime("us"),
}


# Rows to describe (a mask) -> their raw values as text for a message, null elsewhere. Masking first
# keeps the text work to the failing rows.
Shown = Callable[[pl.Expr], pl.Expr]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A column read as a field's kind, before the contract's checks."""

    value: pl.Expr  # parsed value (anything where `bad`)
    missing: pl.Expr  # null or blank
    shown: Shown
    bad: pl.Expr | None = None  # the value cannot be read as the kind; None: it always can
    too_large: pl.Expr | None = None  # an integer beyond 64 bits; None: cannot happen


_EXPECTED = {
    Kind.STR: "expected text",
    Kind.ID: "expected text",
    Kind.INT: "expected an integer",
    Kind.FLOAT: "expected a number",
    Kind.BOOL: "expected true or false",
    Kind.DATETIME: "not a date-time (use ISO 8601, e.g. 2024-05-01T12:30:00Z)",
    Kind.DATE: "not a date (use YYYY-MM-DD)",
}
_SHOWN_CHARS = 60
_TEXT_KINDS = (Kind.STR, Kind.ID)
_TEXT_DTYPES = (pl.String, pl.Categorical, pl.Enum, pl.Null)
_ALWAYS_BAD = pl.lit(True)  # a stored type the field never takes


def is_text(dtype: pl.DataType) -> bool:
    return dtype in _TEXT_DTYPES or dtype.is_decimal()


def has_text(dtype: pl.DataType) -> bool:
    """Whether polars can write a value of `dtype` as text (an extra column kept as text)."""
    return (
        is_text(dtype) or dtype.is_numeric() or dtype in (pl.Boolean, pl.Date, pl.Datetime, pl.Time)
    )


def _quoted(text: pl.Expr) -> Shown:
    def shown(rows: pl.Expr) -> pl.Expr:
        masked = pl.when(rows).then(text)
        long = masked.str.len_chars() > _SHOWN_CHARS
        clipped = pl.concat_str(masked.str.slice(0, _SHOWN_CHARS - 3), pl.lit("..."))
        return pl.concat_str(
            pl.lit("'"), pl.when(long).then(clipped).otherwise(masked), pl.lit("'")
        )

    return shown


def _as_text(raw: pl.Expr) -> Shown:
    return lambda rows: pl.when(rows).then(raw).cast(pl.String)


def _named(text: str) -> Shown:
    return lambda rows: pl.when(rows).then(pl.lit(text))


def _rule_checks(spec: Field, value: pl.Expr, latest: dt.datetime) -> list[tuple[pl.Expr, str]]:
    """The contract's checks of a value once read as its kind, before choices and range, in
    `check_value`'s order: the id rule or the text length, then `not_future` against `latest`
    (naive UTC). Each (failed, message); the messages name no value."""
    checks: list[tuple[pl.Expr, str]] = []
    value = value.cast(DTYPES[spec.kind])  # a column never readable as its kind is a null literal
    if spec.kind is Kind.ID:
        rule = f"(an id is {contract.ID_RULE})"
        long = value.str.len_chars() > contract.MAX_ID_LENGTH
        checks.append(
            (long, f"{spec.name}: longer than {contract.MAX_ID_LENGTH} characters {rule}")
        )
        # Printable ASCII is the common case: only other text meets the large Unicode class.
        unprintable = value.str.contains(r"[^\x20-\x7e]") & value.str.contains(
            lexicon().unprintable_pattern
        )
        checks.append(
            (unprintable, f"{spec.name}: contains a control or separator character {rule}")
        )
    elif spec.max_length is not None:
        long = value.str.len_chars() > spec.max_length
        checks.append((long, f"{spec.name}: longer than {spec.max_length} characters"))
    if spec.not_future:
        moment = value.cast(pl.Datetime("us"))
        checks.append(
            (moment > pl.lit(latest, pl.Datetime("us")), contract.future_message(spec.name))
        )
    return checks


def field_error(spec: Field, parsed: Parsed, latest: dt.datetime) -> tuple[pl.Expr, pl.Expr]:
    """(message, problem) of the first failing check, null when none fails.

    The checks run in `check_value`'s order: missing, kind, the id, length and time rules
    (`_rule_checks`), choices, range. The problem is the message without the offending value, for
    counting reasons.
    """
    readable = ~parsed.missing
    checks: list[tuple[pl.Expr, pl.Expr, str]] = []  # (failed, message, problem)
    if spec.required:
        missing = f"{spec.name}: required value is missing"
        checks.append((parsed.missing, pl.lit(missing), missing))
    if parsed.bad is not None:
        expected = f"{spec.name}: {_EXPECTED[spec.kind]}"
        failed = readable & parsed.bad
        checks.append(
            (failed, pl.concat_str(pl.lit(expected + ", got "), parsed.shown(failed)), expected)
        )
        readable = readable & ~parsed.bad
    if parsed.too_large is not None:
        too_large = "does not fit a 64-bit integer"
        failed = readable & parsed.too_large
        message = pl.concat_str(
            pl.lit(f"{spec.name}: "), parsed.shown(failed), pl.lit(" " + too_large)
        )
        checks.append((failed, message, f"{spec.name}: {too_large}"))
        readable = readable & ~parsed.too_large
    for broken, message_text in _rule_checks(spec, parsed.value, latest):
        failed = readable & broken
        checks.append((failed, pl.lit(message_text), message_text))
        readable = readable & ~broken.fill_null(False)
    if spec.choices is not None:
        unknown = f"{spec.name}: unknown value"
        failed = readable & ~parsed.value.is_in(list(spec.choices))
        message = pl.concat_str(
            pl.lit(unknown + " "),
            parsed.shown(failed),
            pl.lit(f", expected one of {', '.join(spec.choices)}"),
        )
        checks.append((failed, message, unknown))
    if spec.minimum is not None or spec.maximum is not None:
        too_low: pl.Expr = pl.lit(False)
        if spec.minimum is not None:
            too_low = (
                parsed.value <= spec.minimum
                if spec.exclusive_minimum
                else parsed.value < spec.minimum
            )
        too_high = parsed.value > spec.maximum if spec.maximum is not None else pl.lit(False)
        rule = f"out of range (must be {spec.describe_range()})"
        failed = readable & (too_low | too_high)
        value = pl.when(failed).then(parsed.value).cast(pl.String)
        message = pl.concat_str(pl.lit(f"{spec.name}: "), value, pl.lit(f" is {rule}"))
        checks.append((failed, message, f"{spec.name}: {rule}"))
    error: pl.Expr = pl.lit(None, pl.String)
    problem: pl.Expr = pl.lit(None, pl.String)
    for failed, message, problem_text in reversed(checks):
        error = pl.when(failed.fill_null(False)).then(message).otherwise(error)
        problem = pl.when(failed.fill_null(False)).then(pl.lit(problem_text)).otherwise(problem)
    return error, problem


def parse(kind: Kind, raw: pl.Expr, dtype: pl.DataType, timestamp: pl.Expr | None) -> Parsed:
    """Read `raw` (stored as `dtype`) as `kind`, taking values exactly where `check_value` does.

    `timestamp` is the already parsed text of a date or date-time column (see `training.validate.timestamps`).
    """
    if dtype == pl.Boolean:
        return _parse_typed_bool(kind, raw)
    if dtype.is_integer():
        return _parse_typed_integer(kind, raw)
    if dtype.is_float():
        return _parse_typed_float(kind, raw)
    if isinstance(dtype, pl.Datetime | pl.Date):
        return _parse_typed_temporal(kind, raw, dtype)
    if is_text(dtype):
        return _parse_text(kind, raw.cast(pl.String), timestamp)
    # Lists, structs, binary, durations: never a contract value.
    type_name = str(dtype).split("(")[0].split("[")[0].lower()
    return Parsed(pl.lit(None), raw.is_null(), _named(f"a {type_name} value"), bad=_ALWAYS_BAD)


def _parse_text(kind: Kind, text: pl.Expr, timestamp: pl.Expr | None) -> Parsed:
    words = lexicon()
    missing = text.is_null() | text.str.contains(words.blank_pattern)
    shown = _quoted(text)
    if kind in _TEXT_KINDS:
        return Parsed(text, missing, shown)
    if kind is Kind.INT:
        # `check_value` reads integers through float(), so mirror its rounding above 2**53.
        number = number_text(text).cast(pl.Float64, strict=False)
        value = number.cast(pl.Int64, strict=False)
        bad = ~text.str.contains(words.integer_pattern) | number.is_null()
        return Parsed(value, missing, shown, bad=bad, too_large=value.is_null())
    if kind is Kind.FLOAT:
        number = number_text(text).cast(pl.Float64, strict=False)
        bad = ~text.str.contains(words.float_pattern) | number.is_null() | ~number.is_finite()
        return Parsed(number, missing, shown, bad=bad)
    if kind is Kind.BOOL:
        token = strip(text).str.to_lowercase()
        bad = ~token.is_in(list(contract.TRUE_TOKENS | contract.FALSE_TOKENS))
        return Parsed(token.is_in(list(contract.TRUE_TOKENS)), missing, shown, bad=bad)
    if timestamp is None:
        raise ValueError("a date or date-time column read from text needs its parsed timestamp")
    value = timestamp.dt.date() if kind is Kind.DATE else timestamp
    return Parsed(value, missing, shown, bad=timestamp.is_null())


def _parse_typed_bool(kind: Kind, raw: pl.Expr) -> Parsed:
    if kind is Kind.BOOL:
        return Parsed(raw, raw.is_null(), _as_text(raw))
    if kind in _TEXT_KINDS:
        return Parsed(pl.lit(None), raw.is_null(), _named("bool"), bad=_ALWAYS_BAD)

    def python_repr(rows: pl.Expr) -> pl.Expr:
        return pl.when(rows & raw).then(pl.lit("True")).when(rows).then(pl.lit("False"))

    return Parsed(pl.lit(None), raw.is_null(), python_repr, bad=_ALWAYS_BAD)


def _parse_typed_integer(kind: Kind, raw: pl.Expr) -> Parsed:
    missing, shown = raw.is_null(), _as_text(raw)
    if kind in _TEXT_KINDS:
        return Parsed(raw.cast(pl.String), missing, shown)
    if kind is Kind.INT:
        value = raw.cast(pl.Int64, strict=False)
        return Parsed(value, missing, shown, too_large=value.is_null())
    if kind is Kind.FLOAT:
        return Parsed(raw.cast(pl.Float64), missing, shown)
    # `check_value` takes true/false and dates only as text (or booleans), never as numbers.
    return Parsed(pl.lit(None), missing, shown, bad=_ALWAYS_BAD)


def _parse_typed_float(kind: Kind, raw: pl.Expr) -> Parsed:
    missing, shown = raw.is_null(), _as_text(raw)
    if kind is Kind.INT:
        whole = raw.is_finite() & (raw == raw.floor())
        value = raw.cast(pl.Int64, strict=False)
        return Parsed(value, missing, shown, bad=~whole, too_large=value.is_null())
    if kind is Kind.FLOAT:
        return Parsed(raw.cast(pl.Float64), missing, shown, bad=~raw.is_finite())
    if kind in _TEXT_KINDS:
        shown = _named("float")
    return Parsed(pl.lit(None), missing, shown, bad=_ALWAYS_BAD)


def _parse_typed_temporal(kind: Kind, raw: pl.Expr, dtype: pl.Datetime | pl.Date) -> Parsed:
    # Parquet stores timestamps natively: aware ones are converted to UTC, naive ones taken as UTC.
    if isinstance(dtype, pl.Datetime):
        utc = raw.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if dtype.time_zone else raw
        timestamp = utc.cast(pl.Datetime("us"))
        iso_format = "%Y-%m-%dT%H:%M:%S%.f"
    else:
        timestamp = raw.cast(pl.Datetime("us"))
        iso_format = "%Y-%m-%d"
    missing = raw.is_null()

    def shown(rows: pl.Expr) -> pl.Expr:
        return pl.when(rows).then(raw).dt.to_string(iso_format)

    if kind is Kind.DATETIME:
        return Parsed(timestamp, missing, shown)
    if kind is Kind.DATE:
        return Parsed(timestamp.dt.date(), missing, shown)
    if kind in _TEXT_KINDS:
        return Parsed(raw.dt.to_string(iso_format), missing, shown)
    return Parsed(pl.lit(None), missing, shown, bad=_ALWAYS_BAD)
