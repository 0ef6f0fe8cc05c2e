"""Validated ingestion ("NPS data syncing"): check a shop's tables against the data contract.

`validate_dataset` reads every table of a data folder with polars, parses each field by the rules of
`recsvc.domain.contract` (exactly the decisions the service's live intake makes with `check_value`),
collapses exact re-imports, quarantines bad rows, conflicting keys and orphans with a reason, and
writes the clean tables as Parquet in contract dtypes plus a JSON report. Row-level work is polars
expressions; the per-table steps stream through Parquet files in a scratch folder.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import contract, times
from recsvc.domain.contract import Field, Kind, Reference, Table
from recsvc.domain.times import naive_utc
from recsvc.errors import ConfigError, DataContractError
from training.progress import Progress
from training.validate.folder import DataFolder, TableFile, locate_tables, read_errors, scan_table

if TYPE_CHECKING:
    from polars._typing import ParquetCompression

CLEAN_DIR = "clean"
QUARANTINE_FILE = "quarantine.csv"
REPORT_FILE = "validation_report.json"
# Quarantine columns besides the contract's `_file`, `_row`, `_reason`.
QUARANTINE_TABLE = "table"
QUARANTINE_RAW = "raw"
TOP_REASONS = 10

DTYPES: dict[Kind, pl.DataType] = {
    Kind.STR: pl.String(),
    Kind.ID: pl.String(),
    Kind.INT: pl.Int64(),
    Kind.FLOAT: pl.Float64(),
    Kind.BOOL: pl.Boolean(),
    Kind.DATE: pl.Date(),
    Kind.DATETIME: pl.Datetime("us"),
}

# Working columns; the double underscore keeps them apart from a shop's own column names.
_SOURCE = "__source"
_PROBLEMS = "__problems"
_ORPHAN = "__orphan"
_CONFLICT = "__conflict"
_FIRST_ROW = "__first_row"


# --- the contract's text rules, spelled for polars ------------------------------------------------
#
# `check_value` uses Python's `re`, `str.strip`, `str.isprintable`, `float` and
# `datetime.strptime`. Their notions of whitespace and printable characters are Unicode-wide (and
# not quite the same as Rust's), so the classes below are built from Python itself and the polars
# expressions match the service value for value. Digits are ASCII only (a contract decision).


@dataclass(frozen=True, slots=True)
class _Lexicon:
    whitespace: str  # what `str.strip()` and `re`'s \s treat as whitespace
    blank_pattern: str  # only such whitespace: `raw.strip() == ""`
    number_whitespace: str  # what `float()` strips: not the ASCII separators \x1c..\x1f
    integer_pattern: str
    float_pattern: str
    timestamp_pattern: str  # every spelling `contract.parse_datetime` accepts, with named parts
    unprintable_pattern: str  # a character `str.isprintable()` refuses


@functools.cache
def _lexicon() -> _Lexicon:
    chars = [chr(code) for code in range(sys.maxunicode + 1)]
    whitespace = "".join(ch for ch in chars if ch.isspace())
    space_class = _char_class(whitespace)

    def python_regex(pattern: str) -> str:
        return pattern.replace(r"\s", space_class)

    return _Lexicon(
        whitespace=whitespace,
        blank_pattern=f"^{space_class}*$",
        number_whitespace="".join(ch for ch in whitespace if ch not in "\x1c\x1d\x1e\x1f"),
        integer_pattern=python_regex(contract.INTEGER_PATTERN),
        float_pattern=python_regex(contract.FLOAT_PATTERN),
        # A timestamp is ASCII (checked first), so its separator is ASCII whitespace.
        timestamp_pattern=_timestamp_pattern(_char_class(ch for ch in whitespace if ch.isascii())),
        unprintable_pattern=_char_class(ch for ch in chars if not ch.isprintable()),
    )


def _char_class(chars: Iterable[str]) -> str:
    codes = sorted({ord(ch) for ch in chars})
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    parts = (f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)
    return "[" + "".join(parts) + "]"


def _timestamp_pattern(w: str) -> str:
    # The union of what `datetime.strptime` accepts for the formats in `contract.DATETIME_FORMATS`
    # (each tried with and without the fraction): its field regexes (`_strptime.TimeRE`), the format's
    # space matching any whitespace run, a case-insensitive "T", and "%z" taking "Z", "+hh:mm",
    # "+hhmm" and seconds. The literal "Z" format also takes "z", but only after a "T" (checked later).
    d = "[0-9]"
    return (
        rf"^(?<Y>{d}{{4}})-(?<m>1[0-2]|0[1-9]|[1-9])-(?<d>3[01]|[12]{d}|0[1-9]|[1-9]| [1-9])"
        rf"(?:(?<sep>[Tt]|{w}+)(?<H>2[0-3]|[01]{d}|{d}):(?<M>[0-5]{d}|{d})"
        rf"(?::(?<S>6[01]|[0-5]{d}|{d})(?:\.(?<f>[0-9]{{1,6}}))?"
        rf"(?<z>(?<zsign>[+-])(?<zh>{d}{d})(?<zc1>:?)(?<zm>[0-5]{d})"
        rf"(?:(?<zc2>:?)(?<zs>[0-5]{d})(?:\.(?<zf>{d}{{1,6}}))?)?|Z|z)?)?)?$"
    )


# The spellings nearly every export uses; chrono parses these exactly as Python does, quickly.
_COMMON_TIMESTAMP = (
    r"^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]"
    r"(?::[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?)?$"
)
_NON_ASCII = r"[^\x00-\x7F]"
_MICROS_PER_DAY = 86_400_000_000


def with_timestamps(frame: pl.LazyFrame, texts: dict[str, pl.Expr]) -> pl.LazyFrame:
    """Add a column per entry of `texts` (output name -> stripped text): the text parsed as
    `contract.parse_datetime` parses it, as naive UTC Datetime('us'), or null where it refuses.

    Each step reads the previous step's columns, so no parsing work is repeated.
    """
    if not texts:
        return frame

    def temp(step: str, name: str) -> str:
        return f"__{step}_{name}"

    frame = frame.with_columns(text.alias(temp("text", name)) for name, text in texts.items())
    frame = frame.with_columns(
        pl.col(temp("text", name)).str.contains(_COMMON_TIMESTAMP).alias(temp("common", name))
        for name in texts
    )
    steps: list[pl.Expr] = []
    for name in texts:
        text, common = pl.col(temp("text", name)), pl.col(temp("common", name))
        # With a "T" and without "Z" (UTC either way) the common spellings fit four chrono formats.
        steps.append(
            pl.when(common)
            .then(text)
            .str.replace(" ", "T", literal=True, n=1)
            .str.strip_suffix("Z")
            .alias(temp("canonical", name))
        )
        # Everything else the contract accepts (single-digit fields, "+0200", ...) is rare: only
        # those rows reach the regexes, the one with captures last. Only ASCII text is a timestamp.
        unusual = pl.when(~common & ~text.str.contains(_NON_ASCII)).then(text)
        unusual = pl.when(unusual.str.contains(_lexicon().timestamp_pattern)).then(unusual)
        steps.append(
            unusual.str.extract_groups(_lexicon().timestamp_pattern).alias(temp("parts", name))
        )
    frame = frame.with_columns(steps)
    frame = frame.with_columns(
        pl.coalesce(
            _parse_common_timestamp(pl.col(temp("canonical", name))),
            _timestamp_from_parts(pl.col(temp("parts", name))),
        ).alias(name)
        for name in texts
    )
    # Python's datetime ends at years 1 and 9999 (an offset can push a value past them).
    frame = frame.with_columns(
        pl.when(pl.col(name).dt.year().is_between(1, 9999)).then(pl.col(name)).alias(name)
        for name in texts
    )
    return frame.drop(
        temp(step, name) for step in ("text", "common", "canonical", "parts") for name in texts
    )


def _parse_common_timestamp(canonical: pl.Expr) -> pl.Expr:
    # Each spelling by its own format: chrono parses only the rows of its shape.
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


def _timestamp_from_parts(parts: pl.Expr) -> pl.Expr:
    def number(name: str) -> pl.Expr:
        return parts.struct.field(name).cast(pl.Int64, strict=False)

    def fraction(name: str) -> pl.Expr:
        return (
            parts.struct.field(name).str.pad_end(6, "0").cast(pl.Int64, strict=False).fill_null(0)
        )

    year, month = number("Y"), number("m")
    day = parts.struct.field("d").str.strip_chars(" ").cast(pl.Int64, strict=False)
    hour, minute = number("H").fill_null(0), number("M").fill_null(0)
    second = number("S").fill_null(0)
    zone = parts.struct.field("z").fill_null("")
    separator = parts.struct.field("sep").fill_null("")
    offset_hours = number("zh").fill_null(0)
    offset_minutes = offset_hours * 60 + number("zm").fill_null(0)
    offset_seconds = offset_minutes * 60 + number("zs").fill_null(0)
    sign = pl.when(parts.struct.field("zsign") == "-").then(-1).otherwise(1)
    offset = sign * (offset_seconds * 1_000_000 + fraction("zf"))
    colons_agree = parts.struct.field("zs").is_null() | (
        parts.struct.field("zc1") == parts.struct.field("zc2")
    )
    valid = (
        (year >= 1)
        & (day <= _days_in_month(year, month))
        & (second <= 59)  # the regex lets 60 and 61 through; datetime() refuses them
        & (offset_hours <= 23)  # a UTC offset must be under 24 hours
        & colons_agree.fill_null(False)  # "+02:0030" is refused ("inconsistent use of :")
        & ((zone != "z") | separator.is_in(["T", "t"]))
    )
    micros = (
        _days_from_civil(year, month, day) * _MICROS_PER_DAY
        + ((hour * 60 + minute) * 60 + second) * 1_000_000
        + fraction("f")
        - offset
    )
    return pl.when(valid).then(micros).cast(pl.Datetime("us"))


def _days_in_month(year: pl.Expr, month: pl.Expr) -> pl.Expr:
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    return (
        pl.when(month == 2)
        .then(pl.when(leap).then(29).otherwise(28))
        .when(month.is_in([4, 6, 9, 11]))
        .then(30)
        .otherwise(31)
    )


def _days_from_civil(year: pl.Expr, month: pl.Expr, day: pl.Expr) -> pl.Expr:
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
    y = year - (month <= 2).cast(pl.Int64)
    era = y // 400
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _number_text(text: pl.Expr) -> pl.Expr:
    """The text `float()` would read: its whitespace stripped (null stays null)."""
    return text.str.strip_chars(_lexicon().number_whitespace)


def _strip(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars(_lexicon().whitespace)


# --- one field: the polars twin of `contract.check_value` ----------------------------------------


# Rows to describe (a mask) -> their raw values as text for a message, null elsewhere. Masking first
# keeps the text work to the failing rows.
Shown = Callable[[pl.Expr], pl.Expr]


@dataclass(frozen=True, slots=True)
class _Parsed:
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


def _is_text(dtype: pl.DataType) -> bool:
    return dtype in _TEXT_DTYPES or dtype.is_decimal()


def _has_text(dtype: pl.DataType) -> bool:
    """Whether polars can write a value of `dtype` as text (an extra column kept as text)."""
    return (
        _is_text(dtype)
        or dtype.is_numeric()
        or dtype in (pl.Boolean, pl.Date, pl.Datetime, pl.Time)
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
            _lexicon().unprintable_pattern
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


def _field_error(spec: Field, parsed: _Parsed, latest: dt.datetime) -> tuple[pl.Expr, pl.Expr]:
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


def _parse(kind: Kind, raw: pl.Expr, dtype: pl.DataType, timestamp: pl.Expr | None) -> _Parsed:
    """Read `raw` (stored as `dtype`) as `kind`, taking values exactly where `check_value` does.

    `timestamp` is the already parsed text of a date or date-time column (see `with_timestamps`).
    """
    if dtype == pl.Boolean:
        return _parse_typed_bool(kind, raw)
    if dtype.is_integer():
        return _parse_typed_integer(kind, raw)
    if dtype.is_float():
        return _parse_typed_float(kind, raw)
    if isinstance(dtype, pl.Datetime | pl.Date):
        return _parse_typed_temporal(kind, raw, dtype)
    if _is_text(dtype):
        return _parse_text(kind, raw.cast(pl.String), timestamp)
    # Lists, structs, binary, durations: never a contract value.
    type_name = str(dtype).split("(")[0].split("[")[0].lower()
    return _Parsed(pl.lit(None), raw.is_null(), _named(f"a {type_name} value"), bad=_ALWAYS_BAD)


def _parse_text(kind: Kind, text: pl.Expr, timestamp: pl.Expr | None) -> _Parsed:
    lexicon = _lexicon()
    missing = text.is_null() | text.str.contains(lexicon.blank_pattern)
    shown = _quoted(text)
    if kind in _TEXT_KINDS:
        return _Parsed(text, missing, shown)
    if kind is Kind.INT:
        # `check_value` reads integers through float(), so mirror its rounding above 2**53.
        number = _number_text(text).cast(pl.Float64, strict=False)
        value = number.cast(pl.Int64, strict=False)
        bad = ~text.str.contains(lexicon.integer_pattern) | number.is_null()
        return _Parsed(value, missing, shown, bad=bad, too_large=value.is_null())
    if kind is Kind.FLOAT:
        number = _number_text(text).cast(pl.Float64, strict=False)
        bad = ~text.str.contains(lexicon.float_pattern) | number.is_null() | ~number.is_finite()
        return _Parsed(number, missing, shown, bad=bad)
    if kind is Kind.BOOL:
        token = _strip(text).str.to_lowercase()
        bad = ~token.is_in(list(contract.TRUE_TOKENS | contract.FALSE_TOKENS))
        return _Parsed(token.is_in(list(contract.TRUE_TOKENS)), missing, shown, bad=bad)
    if timestamp is None:
        raise ValueError("a date or date-time column read from text needs its parsed timestamp")
    value = timestamp.dt.date() if kind is Kind.DATE else timestamp
    return _Parsed(value, missing, shown, bad=timestamp.is_null())


def _parse_typed_bool(kind: Kind, raw: pl.Expr) -> _Parsed:
    if kind is Kind.BOOL:
        return _Parsed(raw, raw.is_null(), _as_text(raw))
    if kind in _TEXT_KINDS:
        return _Parsed(pl.lit(None), raw.is_null(), _named("bool"), bad=_ALWAYS_BAD)

    def python_repr(rows: pl.Expr) -> pl.Expr:
        return pl.when(rows & raw).then(pl.lit("True")).when(rows).then(pl.lit("False"))

    return _Parsed(pl.lit(None), raw.is_null(), python_repr, bad=_ALWAYS_BAD)


def _parse_typed_integer(kind: Kind, raw: pl.Expr) -> _Parsed:
    missing, shown = raw.is_null(), _as_text(raw)
    if kind in _TEXT_KINDS:
        return _Parsed(raw.cast(pl.String), missing, shown)
    if kind is Kind.INT:
        value = raw.cast(pl.Int64, strict=False)
        return _Parsed(value, missing, shown, too_large=value.is_null())
    if kind is Kind.FLOAT:
        return _Parsed(raw.cast(pl.Float64), missing, shown)
    # `check_value` takes true/false and dates only as text (or booleans), never as numbers.
    return _Parsed(pl.lit(None), missing, shown, bad=_ALWAYS_BAD)


def _parse_typed_float(kind: Kind, raw: pl.Expr) -> _Parsed:
    missing, shown = raw.is_null(), _as_text(raw)
    if kind is Kind.INT:
        whole = raw.is_finite() & (raw == raw.floor())
        value = raw.cast(pl.Int64, strict=False)
        return _Parsed(value, missing, shown, bad=~whole, too_large=value.is_null())
    if kind is Kind.FLOAT:
        return _Parsed(raw.cast(pl.Float64), missing, shown, bad=~raw.is_finite())
    if kind in _TEXT_KINDS:
        shown = _named("float")
    return _Parsed(pl.lit(None), missing, shown, bad=_ALWAYS_BAD)


def _parse_typed_temporal(kind: Kind, raw: pl.Expr, dtype: pl.Datetime | pl.Date) -> _Parsed:
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
        return _Parsed(timestamp, missing, shown)
    if kind is Kind.DATE:
        return _Parsed(timestamp.dt.date(), missing, shown)
    if kind in _TEXT_KINDS:
        return _Parsed(raw.dt.to_string(iso_format), missing, shown)
    return _Parsed(pl.lit(None), missing, shown, bad=_ALWAYS_BAD)


# --- a table: stage one checks each row, stage two settles duplicates, keys and orphans ------------


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """How a table file's columns meet the contract."""

    present: tuple[str, ...]  # contract columns found in the file
    absent: tuple[str, ...]  # optional contract columns not in the file: default or null
    missing: tuple[str, ...]  # required contract columns not in the file
    extras: tuple[str, ...]  # other columns kept as text (customers' attributes)
    dropped: tuple[str, ...]  # other columns left out

    @property
    def output(self) -> tuple[str, ...]:
        return self.present + self.absent + self.extras


def plan_columns(table: Table, schema: pl.Schema) -> ColumnPlan:
    names = list(schema)
    contract_names = [f.name for f in table.fields]
    others = [n for n in names if n not in table.by_name]
    # Extra columns are kept as text, so they must have one; names starting with "_" are ours.
    keep = [
        n for n in others if table.extra_columns and not n.startswith("_") and _has_text(schema[n])
    ]
    return ColumnPlan(
        present=tuple(n for n in contract_names if n in schema),
        absent=tuple(
            n for n in contract_names if n not in schema and not table.by_name[n].required
        ),
        missing=tuple(n for n in contract_names if n not in schema and table.by_name[n].required),
        extras=tuple(keep),
        dropped=tuple(n for n in others if n not in keep),
    )


def check_rows(
    frame: pl.LazyFrame, table: Table, schema: pl.Schema, now: dt.datetime | None = None
) -> pl.LazyFrame:
    """Stage one: parse every contract field of every row, collecting all problems of a row.

    `frame` holds `_row` and the source columns as stored (described by `schema`). The result has
    `_row`, the contract columns in contract dtypes (absent optional ones as their default), extra
    columns kept as text, `_reason` (null for a valid row, else each problem naming its field, joined
    with "; "), `__problems` (the same without values, for counting) and `__source` (the row as read).
    A value is accepted exactly when `contract.check_value` accepts it (with the same `now`, the
    clock that event times may not run ahead of; default: the current time).
    """
    latest = naive_utc(contract.latest_allowed(now or times.now()))
    plan = plan_columns(table, schema)
    specs = [table.by_name[name] for name in plan.present]

    def temp(step: str, name: str) -> str:
        return f"__{step}_{name}"

    # Staged: each step reads the columns of the one before, so no parsing work is repeated.
    dated = [
        s.name for s in specs if s.kind in (Kind.DATE, Kind.DATETIME) and _is_text(schema[s.name])
    ]
    frame = with_timestamps(
        frame, {temp("timestamp", n): _strip(pl.col(n).cast(pl.String)) for n in dated}
    )
    parsed = {
        s.name: _parse(
            s.kind,
            pl.col(s.name),
            schema[s.name],
            pl.col(temp("timestamp", s.name)) if s.name in dated else None,
        )
        for s in specs
    }

    def stage(name: str, step: str, expr: pl.Expr | None) -> list[pl.Expr]:
        return [] if expr is None else [expr.alias(temp(step, name))]

    frame = frame.with_columns(
        column
        for name, p in parsed.items()
        for step, expr in (
            ("value", p.value),
            ("missing", p.missing),
            ("bad", p.bad),
            ("large", p.too_large),
        )
        for column in stage(name, step, expr)
    )
    staged = {
        name: _Parsed(
            value=pl.col(temp("value", name)),
            missing=pl.col(temp("missing", name)),
            shown=p.shown,
            bad=None if p.bad is None else pl.col(temp("bad", name)),
            too_large=None if p.too_large is None else pl.col(temp("large", name)),
        )
        for name, p in parsed.items()
    }
    checks = {s.name: _field_error(s, staged[s.name], latest) for s in specs}
    frame = frame.with_columns(
        expr.alias(temp(step, name))
        for name, (error, problem) in checks.items()
        for step, expr in (("error", error), ("problem", problem))
    )
    errors = [pl.col(temp("error", s.name)) for s in specs]
    any_error = pl.any_horizontal(e.is_not_null() for e in errors) if errors else pl.lit(False)
    problems = (
        pl.concat_list(pl.col(temp("problem", s.name)) for s in specs).list.drop_nulls()
        if specs
        else pl.lit([], pl.List(pl.String))
    )

    def value(spec: Field) -> pl.Expr:
        dtype = DTYPES[spec.kind]
        return (
            pl.when(pl.col(temp("missing", spec.name)))
            .then(pl.lit(spec.default, dtype))
            .when(pl.col(temp("error", spec.name)).is_null())
            .then(pl.col(temp("value", spec.name)).cast(dtype, strict=False))
            .otherwise(pl.lit(None, dtype))
            .alias(spec.name)
        )

    return frame.select(
        pl.col(c.SOURCE_ROW),
        *(value(s) for s in specs),
        *(
            pl.lit(table.by_name[n].default, DTYPES[table.by_name[n].kind]).alias(n)
            for n in plan.absent
        ),
        *(pl.col(n).cast(pl.String).alias(n) for n in plan.extras),
        pl.when(any_error)
        .then(pl.concat_str(errors, separator="; ", ignore_nulls=True))
        .alias(c.REJECT_REASON),
        problems.alias(_PROBLEMS),
        pl.struct(pl.col(list(schema))).alias(_SOURCE),
    )


# (table, column) -> the distinct values of that key column in the table's clean output.
KnownKeys = Callable[[str, str], pl.Series]


def settle_rows(
    valid: pl.LazyFrame, table: Table, content: Iterable[str], known: KnownKeys
) -> pl.LazyFrame:
    """Stage two: collapse exact duplicates, then mark repeated keys and orphans for the quarantine.

    `valid` holds stage one's valid rows, in file order. Identical rows (by `content`) collapse to
    the first one; a key seen again with different content keeps its first row; a reference to a
    key that `known(table, column)` does not hold is an orphan. Marked rows get a `_reason`,
    `__problems` and the flags `__conflict` / `__orphan`; kept rows have a null `_reason`.
    """
    rows = valid.filter(pl.struct(list(content)).is_first_distinct()).with_columns(
        pl.lit(None, pl.String).alias(c.REJECT_REASON),
        pl.lit([], pl.List(pl.String)).alias(_PROBLEMS),
    )
    return mark_rows(rows, table, known=known, repeated_keys=True)


@dataclass(frozen=True, slots=True)
class _Mark:
    """A problem a row has with other rows: a repeated key or an unknown reference."""

    hit: pl.Expr  # the row has the problem
    reason: pl.Expr  # naming the column and the value
    problem: str  # the same without the value


def mark_rows(
    frame: pl.LazyFrame,
    table: Table,
    *,
    known: KnownKeys | None = None,
    repeated_keys: bool = False,
) -> pl.LazyFrame:
    """Add to a row's `_reason` and `__problems` its references to keys `known` does not hold
    (orphans) and, with `repeated_keys`, a key an earlier row already has; set the flags
    `__orphan` and `__conflict`.

    Rows must be in file order. Helper columns are computed once and dropped at the end.
    """
    helpers: list[str] = []
    conflicts: list[_Mark] = []
    if repeated_keys and table.key:
        # In file order, the first row of a key is its smallest row number.
        frame = frame.with_columns(pl.col(c.SOURCE_ROW).min().over(table.key).alias(_FIRST_ROW))
        helpers.append(_FIRST_ROW)
        conflicts.append(_conflict_mark(table.key))
    orphans = (
        [_orphan_mark(ref, known(ref.table, ref.target)) for ref in table.references]
        if known is not None
        else []
    )

    marks = conflicts + orphans
    hit_columns = [f"__hit_{i}" for i in range(len(marks))]
    frame = frame.with_columns(m.hit.alias(n) for m, n in zip(marks, hit_columns, strict=True))
    helpers.extend(hit_columns)
    hits = [pl.col(n) for n in hit_columns]
    conflict = pl.any_horizontal(hits[: len(conflicts)]) if conflicts else pl.lit(False)
    orphan = pl.any_horizontal(hits[len(conflicts) :]) if orphans else pl.lit(False)
    reason, problems = pl.col(c.REJECT_REASON), pl.col(_PROBLEMS)
    if marks:
        reasons = [reason, *(pl.when(h).then(m.reason) for m, h in zip(marks, hits, strict=True))]
        reason = (
            pl.when(reason.is_not_null() | conflict | orphan)
            .then(pl.concat_str(reasons, separator="; ", ignore_nulls=True))
            .otherwise(reason)
        )
        problems = pl.concat_list(
            problems,
            *(pl.when(h).then(pl.lit(m.problem)) for m, h in zip(marks, hits, strict=True)),
        ).list.drop_nulls()
    return frame.with_columns(
        reason.alias(c.REJECT_REASON),
        problems.alias(_PROBLEMS),
        conflict.alias(_CONFLICT),
        orphan.alias(_ORPHAN),
    ).drop(helpers)


def _orphan_mark(ref: Reference, keys: pl.Series) -> _Mark:
    value = pl.col(ref.column)
    reason = pl.concat_str(
        pl.lit(f"orphan: {ref.column} '"), value, pl.lit(f"' not in {ref.table}")
    )
    hit = value.is_not_null() & ~value.is_in(keys.implode())
    return _Mark(hit, reason, f"orphan: {ref.column} not in {ref.table}")


def _conflict_mark(key: tuple[str, ...]) -> _Mark:
    first_row = pl.col(_FIRST_ROW)
    key_name = "+".join(key)
    key_text = pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator="+")
    reason = pl.concat_str(
        pl.lit(f"duplicate {key_name} '"),
        key_text,
        pl.lit("' with different content (first seen in row "),
        first_row.cast(pl.String),
        pl.lit(")"),
    )
    hit = pl.col(c.SOURCE_ROW) != first_row
    return _Mark(hit, reason, f"duplicate {key_name} with different content")


# --- the report ----------------------------------------------------------------------------------


class TableReport(msgspec.Struct, kw_only=True, frozen=True):
    """What validation found in one table. rows_read = valid + duplicates_collapsed + rejected."""

    table: str
    file: str
    format: str
    rows_read: int = 0
    valid: int = 0  # rows in clean/<table>.parquet
    duplicates_collapsed: int = 0  # exact re-imports folded into an earlier identical row
    rejected: int = 0  # rows in the quarantine: contract errors, key conflicts and orphans
    key_conflicts: int = 0  # of those, rows repeating a key with different content
    orphans: int = 0  # of those, rows naming an unknown customer or product
    rejected_share: float = 0.0  # rejected / rows_read
    top_reasons: dict[str, int] = msgspec.field(default_factory=dict)  # problem -> rows, most first
    warnings: list[str] = msgspec.field(default_factory=list)
    seconds: float = 0.0


class ValidationReport(msgspec.Struct, kw_only=True, frozen=True):
    """The machine-readable outcome of `validate_dataset`, written as validation_report.json."""

    ok: bool
    data_dir: str
    out_dir: str
    max_rejected_share: float
    tables: list[TableReport] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)  # about the folder as a whole
    failure: str | None = None  # why `ok` is false
    validated_at: str = ""  # ISO 8601, UTC
    seconds: float = 0.0


_REPORT_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ValidationResult:
    report: ValidationReport
    report_path: Path
    quarantine_path: Path
    clean_paths: dict[str, Path]  # by table name


def format_summary(report: ValidationReport) -> str:
    """A few human-readable lines per table: counts, the top reasons, warnings."""
    outcome = "passed" if report.ok else "FAILED"
    lines = [f"validation {outcome}: {report.data_dir} -> {report.out_dir} ({report.seconds:.1f}s)"]
    lines.extend(f"  warning: {w}" for w in report.warnings)
    for t in report.tables:
        breakdown = [f"{t.orphans:,} orphans"] if t.orphans else []
        breakdown += [f"{t.key_conflicts:,} key conflicts"] if t.key_conflicts else []
        lines.append(
            f"{t.table} ({Path(t.file).name}): {t.rows_read:,} rows read, {t.valid:,} valid, "
            f"{t.duplicates_collapsed:,} duplicates collapsed, "
            f"{t.rejected:,} rejected ({t.rejected_share:.1%})"
            + (f", of which {' and '.join(breakdown)}" if breakdown else "")
        )
        lines.extend(f"  {count:,} x {reason}" for reason, count in list(t.top_reasons.items())[:3])
        lines.extend(f"  warning: {w}" for w in t.warnings)
    if report.failure:
        lines.append(report.failure)
    return "\n".join(lines)


# --- the whole folder ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OpenTable:
    source: TableFile
    frame: pl.LazyFrame
    schema: pl.Schema
    plan: ColumnPlan
    contract_columns_as_text: bool = False

    @classmethod
    def open(cls, source: TableFile, *, contract_columns_as_text: bool = False) -> _OpenTable:
        """Scan `source` and check its columns; raise when a required column is missing."""
        frame = scan_table(source, contract_columns_as_text=contract_columns_as_text)
        with read_errors(source.path, source.format):
            schema = frame.collect_schema()
        plan = plan_columns(source.table, schema)
        if plan.missing:
            raise DataContractError(_missing_columns_message(source, plan.missing, list(schema)))
        return cls(source, frame, schema, plan, contract_columns_as_text)

    def rescan(self) -> pl.LazyFrame:
        return scan_table(self.source, contract_columns_as_text=self.contract_columns_as_text)


def validate_dataset(
    data_dir: Path,
    out_dir: Path,
    *,
    max_rejected_share: float = 0.05,
    show_progress: bool = True,
    now: dt.datetime | None = None,
) -> ValidationResult:
    """Validate the tables in `data_dir`; write clean Parquet, the quarantine and a report to `out_dir`.

    Raises `DataContractError` (one line, naming the file) when a required table or column is
    missing, a file cannot be read, or a table's rejected share exceeds `max_rejected_share`; in
    the last case the report and quarantine are written first.
    """
    if not 0.0 <= max_rejected_share <= 1.0:
        raise ConfigError(f"max_rejected_share must be between 0 and 1, got {max_rejected_share}")
    started = time.perf_counter()
    now = now or times.now()  # one clock for every table: what "in the future" means
    folder = locate_tables(data_dir)
    tables = _open_tables(folder)
    clean_dir = out_dir / CLEAN_DIR
    clean_dir.mkdir(parents=True, exist_ok=True)
    # Nothing from an earlier run may outlive a failed one: no stale table may reach training.
    stale = [clean_dir / f"{name}.parquet" for name in contract.TABLE_ORDER]
    for path in [*stale, out_dir / QUARANTINE_FILE, out_dir / REPORT_FILE]:
        path.unlink(missing_ok=True)
    clean_paths = {name: clean_dir / f"{name}.parquet" for name in tables}
    known = _KnownKeys(clean_paths)
    quarantine_path = out_dir / QUARANTINE_FILE
    reports: list[TableReport] = []
    with tempfile.TemporaryDirectory(prefix=".validate-", dir=out_dir) as scratch_dir:
        scratch = Path(scratch_dir)
        quarantined: list[pl.LazyFrame] = []
        for name, table in tables.items():
            table_report, rejected_rows = _validate_table(
                table, scratch, clean_paths[name], known, show_progress, now
            )
            reports.append(table_report)
            quarantined.append(rejected_rows)
        _write_quarantine(quarantined, quarantine_path)

    over = [t for t in reports if t.rejected_share > max_rejected_share]
    failure = None
    if over:
        listed = ", ".join(
            f"{t.file} {t.rejected_share:.1%} ({t.rejected:,} of {t.rows_read:,} rows)"
            for t in over
        )
        failure = (
            f"too many rejected rows (more than {max_rejected_share:.1%}): {listed}; "
            f"see {quarantine_path} and {out_dir / REPORT_FILE}"
        )
    report = ValidationReport(
        ok=failure is None,
        data_dir=str(data_dir),
        out_dir=str(out_dir),
        max_rejected_share=max_rejected_share,
        tables=reports,
        warnings=list(folder.warnings),
        failure=failure,
        validated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 3),
    )
    report_path = out_dir / REPORT_FILE
    report_path.write_bytes(_REPORT_ENCODER.encode(report) + b"\n")
    if failure is not None:
        raise DataContractError(failure)
    return ValidationResult(
        report=report,
        report_path=report_path,
        quarantine_path=quarantine_path,
        clean_paths=clean_paths,
    )


def _open_tables(folder: DataFolder) -> dict[str, _OpenTable]:
    # Every file's schema is checked before any row is read, so a missing column fails fast.
    return {name: _OpenTable.open(source) for name, source in folder.files.items()}


def _missing_columns_message(source: TableFile, missing: Iterable[str], found: list[str]) -> str:
    shown = ", ".join(_shown_name(n) for n in found[:20]) + (", ..." if len(found) > 20 else "")
    message = f"{source.path}: missing required column(s) {', '.join(missing)}; found: {shown or 'no columns'}"
    if source.format == "csv" and len(found) == 1:
        for delimiter, spelled in ((";", "';'"), ("\t", "a tab")):
            if delimiter in found[0]:
                message += f" (the delimiter looks like {spelled}; tables must be comma-separated)"
                break
    return message


def _shown_name(name: str) -> str:
    text = repr(name)  # keeps the message on one line, whatever the header holds
    return text if len(text) <= 60 else text[:57] + "..."


class _KnownKeys:
    """The keys of already validated tables, read once from their clean Parquet."""

    def __init__(self, clean_paths: dict[str, Path]) -> None:
        self._paths = clean_paths
        self._keys: dict[tuple[str, str], pl.Series] = {}

    def __call__(self, table: str, column: str) -> pl.Series:
        if (table, column) not in self._keys:
            path = self._paths.get(table)
            if path is None or not path.exists():
                keys = pl.Series(column, [], pl.String)
            else:
                keys = pl.scan_parquet(path).select(pl.col(column).unique()).collect().to_series()
            self._keys[(table, column)] = keys
        return self._keys[(table, column)]


def _validate_table(
    table: _OpenTable,
    scratch: Path,
    clean_path: Path,
    known: _KnownKeys,
    show_progress: bool,
    now: dt.datetime,
) -> tuple[TableReport, pl.LazyFrame]:
    """Run both stages for one table; return its report and its quarantine rows (lazy)."""
    started = time.perf_counter()
    spec = table.source.table
    progress = Progress(f"validate {spec.name}", unit="rows", enabled=show_progress)
    valid_path = scratch / f"{spec.name}.valid.parquet"
    invalid_path = scratch / f"{spec.name}.invalid.parquet"
    try:
        _check_stage(table, known, valid_path, invalid_path, now)
    except DataContractError:
        if table.source.format != "ndjson" or table.contract_columns_as_text:
            raise
        # A JSON column polars typed from its values holds a value it cannot read that way.
        table = _OpenTable.open(table.source, contract_columns_as_text=True)
        _check_stage(table, known, valid_path, invalid_path, now)
    source, output = table.source, list(table.plan.output)
    is_valid = pl.col(c.REJECT_REASON).is_null()
    valid_rows, invalid_rows = _row_count(valid_path), _row_count(invalid_path)
    if time.perf_counter() - started >= progress.every_seconds:
        progress.advance(valid_rows + invalid_rows)  # a line between the stages of a long table
    else:
        progress.done = valid_rows + invalid_rows

    settled_path = scratch / f"{spec.name}.settled.parquet"
    settled = settle_rows(pl.scan_parquet(valid_path), spec, output, known)
    _sink_all(
        (settled.filter(is_valid).select(output), clean_path, _CLEAN),
        (
            settled.filter(~is_valid).select(
                c.SOURCE_ROW, c.REJECT_REASON, _PROBLEMS, _CONFLICT, _ORPHAN
            ),
            settled_path,
            _SCRATCH,
        ),
    )
    quarantined = pl.concat(
        [
            pl.scan_parquet(invalid_path).select(
                _PROBLEMS, _ORPHAN, pl.lit(False).alias(_CONFLICT)
            ),
            pl.scan_parquet(settled_path).select(_PROBLEMS, _ORPHAN, _CONFLICT),
        ]
    )
    counts = (
        quarantined.select(pl.len(), pl.col(_CONFLICT).sum(), pl.col(_ORPHAN).sum())
        .collect()
        .row(0)
    )
    rejected, conflicts, orphans = (int(n or 0) for n in counts)
    top = (
        quarantined.select(pl.col(_PROBLEMS).explode().drop_nulls())
        .group_by(_PROBLEMS)
        .len()
        .sort(["len", _PROBLEMS], descending=[True, False])
        .head(TOP_REASONS)
        .collect()
    )
    clean_rows = _row_count(clean_path)
    rows_read = valid_rows + invalid_rows
    marked_rows = rejected - invalid_rows
    report = TableReport(
        table=spec.name,
        file=str(source.path),
        format=source.format,
        rows_read=rows_read,
        valid=clean_rows,
        duplicates_collapsed=valid_rows - clean_rows - marked_rows,
        rejected=rejected,
        key_conflicts=conflicts,
        orphans=orphans,
        rejected_share=round(rejected / rows_read, 6) if rows_read else 0.0,
        top_reasons=dict(zip(top[_PROBLEMS].to_list(), top["len"].to_list(), strict=True)),
        warnings=_column_warnings(spec, table.plan) + _reference_warnings(spec, clean_path, known),
        seconds=round(time.perf_counter() - started, 3),
    )
    progress.finish()
    return report, _quarantine_rows(table, invalid_path, settled_path, marked_rows)


# Scratch files are read once, soon after: lz4 writes and reads fastest. Clean tables stay compact.
_SCRATCH: ParquetCompression = "lz4"
_CLEAN: ParquetCompression = "zstd"


def _check_stage(
    table: _OpenTable, known: KnownKeys, valid_path: Path, invalid_path: Path, now: dt.datetime
) -> None:
    """Stage one, streamed: valid rows to `valid_path`, rejected ones (with raw) to `invalid_path`."""
    spec = table.source.table
    checked = check_rows(
        table.frame.with_row_index(c.SOURCE_ROW, offset=1), spec, table.schema, now
    )
    is_valid = pl.col(c.REJECT_REASON).is_null()
    # A rejected row's reason names its unknown references too (valid rows: in stage two).
    rejected = mark_rows(checked.filter(~is_valid), spec, known=known).select(
        c.SOURCE_ROW,
        c.REJECT_REASON,
        _PROBLEMS,
        _ORPHAN,
        pl.col(_SOURCE).struct.json_encode().alias(QUARANTINE_RAW),
    )
    with read_errors(table.source.path, table.source.format):
        _sink_all(
            (
                checked.filter(is_valid).select(c.SOURCE_ROW, *table.plan.output),
                valid_path,
                _SCRATCH,
            ),
            (rejected, invalid_path, _SCRATCH),
        )


def _sink_all(*outputs: tuple[pl.LazyFrame, Path, ParquetCompression]) -> None:
    # All outputs come from one pass over the input (polars shares the common plan).
    pl.collect_all(
        [
            frame.sink_parquet(path, compression=compression, lazy=True)
            for frame, path, compression in outputs
        ],
        engine="streaming",
    )


def _row_count(path: Path) -> int:
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def _column_warnings(table: Table, plan: ColumnPlan) -> list[str]:
    warnings = []
    if plan.dropped:
        why = (
            "not in the contract"
            if not table.extra_columns
            else "no text form, or a reserved '_' name"
        )
        warnings.append(f"dropped column(s) {', '.join(map(_shown_name, plan.dropped))} ({why})")
    if plan.extras:
        warnings.append(
            f"kept extra attribute column(s) as text: {', '.join(map(_shown_name, plan.extras))}"
        )
    if plan.absent:
        filled = ", ".join(
            f"{n}={table.by_name[n].default!r}"
            if table.by_name[n].default is not None
            else f"{n}=null"
            for n in plan.absent
        )
        warnings.append(f"optional column(s) absent, filled in: {filled}")
    return warnings


def _reference_warnings(table: Table, clean_path: Path, known: _KnownKeys) -> list[str]:
    # A survey response may name an order we do not have: its order_id is optional, so it is kept.
    order_id = table.by_name.get(c.ORDER_ID)
    if order_id is None or order_id.required:
        return []
    responses = pl.scan_parquet(clean_path).filter(pl.col(c.ORDER_ID).is_not_null())
    if responses.select(pl.len()).collect().item() == 0:
        return []  # no need to gather the order ids
    # An anti-join: `is_in` with millions of order ids is several times slower here.
    orders = known(c.ORDERS, c.ORDER_ID).to_frame().lazy()
    unknown = responses.join(orders, on=c.ORDER_ID, how="anti").select(pl.len()).collect().item()
    if not unknown:
        return []
    return [
        f"{unknown:,} response(s) name an order_id that is not in orders (kept: order_id is optional)"
    ]


_QUARANTINE_SCHEMA = {
    QUARANTINE_TABLE: pl.String,
    c.SOURCE_FILE: pl.String,
    c.SOURCE_ROW: pl.Int64,
    c.REJECT_REASON: pl.String,
    QUARANTINE_RAW: pl.String,
}


def _quarantine_rows(
    table: _OpenTable, invalid_path: Path, settled_path: Path, settled_rows: int
) -> pl.LazyFrame:
    source = table.source
    parts = [pl.scan_parquet(invalid_path).select(c.SOURCE_ROW, c.REJECT_REASON, QUARANTINE_RAW)]
    if settled_rows:
        # Rows rejected in stage two passed stage one, so their raw text is read again from the file.
        marked = pl.scan_parquet(settled_path).select(c.SOURCE_ROW, c.REJECT_REASON)
        raw = (
            table.rescan()
            .with_row_index(c.SOURCE_ROW, offset=1)
            .join(marked.select(c.SOURCE_ROW), on=c.SOURCE_ROW, how="semi")
            .select(
                c.SOURCE_ROW,
                pl.struct(pl.col(list(table.schema))).struct.json_encode().alias(QUARANTINE_RAW),
            )
        )
        parts.append(marked.join(raw, on=c.SOURCE_ROW, how="left"))
    return (
        pl.concat(parts)
        .sort(c.SOURCE_ROW)
        .select(
            pl.lit(source.table.name).alias(QUARANTINE_TABLE),
            pl.lit(source.path.name).alias(c.SOURCE_FILE),
            pl.col(c.SOURCE_ROW).cast(pl.Int64),
            c.REJECT_REASON,
            QUARANTINE_RAW,
        )
    )


def _write_quarantine(parts: list[pl.LazyFrame], path: Path) -> None:
    if not parts:
        pl.DataFrame(schema=_QUARANTINE_SCHEMA).write_csv(path)
        return
    pl.concat(parts).sink_csv(path)
