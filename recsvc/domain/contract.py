"""The data contract: which tables a shop hands us, their columns, types, ranges and keys.

This module is the one place that states the contract. The batch validator in `training.validate.dataset`
turns these specs into polars expressions; the service's live NPS intake checks single records with
`check_record` below. Both follow the same parsing rules (`INTEGER_PATTERN`, `DATETIME_FORMATS`,
`TRUE_TOKENS`/`FALSE_TOKENS`, the id rule `id_problem`, `FUTURE_SKEW`), so a value is accepted in one
place exactly when it is in the other. It is pure Python on purpose: the serving path must not
import polars.

Contract decisions that both sides apply:

- Numbers and date-times are written with ASCII digits only ("٩" is not 9): other scripts' digits
  are refused, as a spreadsheet or a database would not read them either.
- An id (customer, product, order, response) is 1 to `MAX_ID_LENGTH` printable characters, not only
  spaces: no control characters (NUL, newlines, tabs) and no Unicode separators but the plain space.
  The service applies the same rule to ids in paths and query parameters before any lookup.
- A time is UTC: an offset is converted, a naive value is taken as UTC (`recsvc.domain.times`).
- An event (an answer, an order, a delivery, a sign-up) cannot lie more than `FUTURE_SKEW` ahead of
  the clock of the machine that checks it: a date in year 9999 would otherwise pin a customer's
  "latest answer" forever.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from recsvc.domain import columns as c
from recsvc.domain.times import utc
from recsvc.errors import shown


class Kind(StrEnum):
    STR = "str"
    ID = "id"  # text under the id rule (`id_problem`)
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"


# An integer is written as ASCII digits, optionally with a zero fraction ("7" or "7.0", never "7.5").
INTEGER_PATTERN = r"^\s*[+-]?[0-9]+(\.0*)?\s*$"
FLOAT_PATTERN = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
TRUE_TOKENS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_TOKENS = frozenset({"false", "f", "no", "n", "0"})
# The date-time rule, the same in the live intake and the batch validator (which checks this pattern
# in polars before chrono reads the value): a date YYYY-MM-DD, optionally "T" or one space and
# HH:MM, optionally :SS, then an optional fraction of 1 to 6 digits and an optional "Z" or an
# offset +HH:MM (both only after the seconds). Two ASCII digits per field, four for the year. An
# offset is converted to UTC; a time without one is UTC.
DATETIME_PATTERN = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"(?:[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]"
    r"(?::[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?)?$"
)
_DATETIME_RE = re.compile(DATETIME_PATTERN)
# The spellings the pattern admits, as chrono formats (the validator reads them with polars; the
# Online Retail importer guesses a file's format from them).
DATETIME_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
# Ids: at most this many characters (a lookup, a key, a log line stay cheap whatever a client sends).
MAX_ID_LENGTH = 128
# How far ahead of the checking machine's clock an event's time may be (clocks of two machines drift).
FUTURE_SKEW = dt.timedelta(minutes=15)

MAX_COMMENT_LENGTH = 5_000

ORDER_STATUSES = ("placed", "delivered", "returned", "cancelled")
TOUCHPOINTS = ("pre_delivery", "post_delivery", "relationship")


@dataclass(frozen=True, slots=True)
class Field:
    """One column. `required` means the column must be present and every value non-empty."""

    name: str
    kind: Kind
    required: bool = False
    minimum: float | None = None
    # True when the minimum itself is not allowed (quantity > 0 rather than >= 0).
    exclusive_minimum: bool = False
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    default: Any = None
    # Text: at most this many characters (ids: MAX_ID_LENGTH, by their kind).
    max_length: int | None = None
    # Date-time or date of an event that has happened: at most FUTURE_SKEW ahead of now.
    not_future: bool = False
    doc: str = ""

    def describe_range(self) -> str:
        low = (
            ""
            if self.minimum is None
            else f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        )
        high = "" if self.maximum is None else f"<= {self.maximum:g}"
        return " and ".join(p for p in (low, high) if p)


@dataclass(frozen=True, slots=True)
class Reference:
    """A column whose values must exist in another table's key (an orphan otherwise)."""

    column: str
    table: str
    target: str


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    fields: tuple[Field, ...]
    # Columns whose combination must be unique (a row missing one of them is not checked). Exact
    # duplicate rows are always collapsed.
    key: tuple[str, ...] = ()
    required: bool = True
    references: tuple[Reference, ...] = ()
    # customers may carry extra attribute columns; other tables keep only contract columns.
    extra_columns: bool = False
    doc: str = ""
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)


def _survey(name: str, low: int, high: int, doc: str) -> Table:
    return Table(
        name=name,
        required=name == c.NPS_RESPONSES,
        key=(c.RESPONSE_ID,),
        references=(Reference(c.CUSTOMER_ID, c.CUSTOMERS, c.CUSTOMER_ID),),
        doc=doc,
        fields=(
            Field(c.RESPONSE_ID, Kind.ID, required=True, doc="unique id of the response"),
            Field(c.CUSTOMER_ID, Kind.ID, required=True),
            Field(
                c.SCORE,
                Kind.INT,
                required=True,
                minimum=low,
                maximum=high,
                doc=f"integer {low}..{high}",
            ),
            Field(c.RESPONDED_AT, Kind.DATETIME, required=True, not_future=True),
            Field(c.TOUCHPOINT, Kind.STR, required=True, choices=TOUCHPOINTS),
            Field(c.ORDER_ID, Kind.ID, doc="the order the survey was about, if any"),
            Field(c.COMMENT, Kind.STR, max_length=MAX_COMMENT_LENGTH, doc="free text"),
        ),
    )


CUSTOMERS = Table(
    name=c.CUSTOMERS,
    key=(c.CUSTOMER_ID,),
    extra_columns=True,
    doc="one row per customer; extra attribute columns are kept as strings",
    fields=(
        Field(c.CUSTOMER_ID, Kind.ID, required=True),
        Field(c.SIGNUP_DATE, Kind.DATE, not_future=True),
        Field(c.COUNTRY, Kind.STR),
        Field(c.AGE_BAND, Kind.STR, doc="e.g. 18-24, 25-34, ..."),
    ),
)

PRODUCTS = Table(
    name=c.PRODUCTS,
    key=(c.PRODUCT_ID,),
    doc="one row per product",
    fields=(
        Field(c.PRODUCT_ID, Kind.ID, required=True),
        Field(c.NAME, Kind.STR),
        Field(c.CATEGORY, Kind.STR, required=True),
        Field(c.BRAND, Kind.STR),
        Field(c.PRICE, Kind.FLOAT, minimum=0),
        Field(c.IN_STOCK, Kind.BOOL, default=True),
    ),
)

ORDERS = Table(
    name=c.ORDERS,
    doc="one row per order line; exact duplicate lines are treated as a re-import",
    key=(c.LINE_ID,),
    references=(
        Reference(c.CUSTOMER_ID, c.CUSTOMERS, c.CUSTOMER_ID),
        Reference(c.PRODUCT_ID, c.PRODUCTS, c.PRODUCT_ID),
    ),
    fields=(
        Field(
            c.LINE_ID,
            Kind.ID,
            doc="unique id of the order line (optional in files; required by the live intake, "
            "which the nightly run dedupes by it)",
        ),
        Field(c.ORDER_ID, Kind.ID, required=True),
        Field(c.CUSTOMER_ID, Kind.ID, required=True),
        Field(c.PRODUCT_ID, Kind.ID, required=True),
        Field(c.QUANTITY, Kind.INT, required=True, minimum=0, exclusive_minimum=True),
        Field(c.UNIT_PRICE, Kind.FLOAT, required=True, minimum=0),
        Field(c.ORDERED_AT, Kind.DATETIME, required=True, not_future=True),
        Field(c.PROMISED_DELIVERY_AT, Kind.DATETIME),
        Field(c.DELIVERED_AT, Kind.DATETIME, not_future=True),
        Field(c.STATUS, Kind.STR, choices=ORDER_STATUSES, default="delivered"),
    ),
)

# What `POST /v1/orders` takes: an order line of the contract with its line_id required (a live
# line is sent again when its status changes, and the line_id says which line it updates).
LIVE_ORDER_LINES = dataclasses.replace(
    ORDERS,
    name="live_order_lines",
    fields=tuple(
        dataclasses.replace(f, required=True) if f.name == c.LINE_ID else f for f in ORDERS.fields
    ),
)

NPS_RESPONSES = _survey(c.NPS_RESPONSES, 0, 10, "Net Promoter Score answers, 0..10")
CSAT_RESPONSES = _survey(
    c.CSAT_RESPONSES, 1, 5, "customer satisfaction answers, 1..5 (optional table)"
)
CES_RESPONSES = _survey(c.CES_RESPONSES, 1, 7, "customer effort answers, 1..7 (optional table)")

TABLES: dict[str, Table] = {
    t.name: t for t in (CUSTOMERS, PRODUCTS, ORDERS, NPS_RESPONSES, CSAT_RESPONSES, CES_RESPONSES)
}
# Validation order: referenced tables first, so orphans can be found.
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)
FILE_EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}


# --- single-record checks (the service's live intake) -------------------------------------------

_INT_RE = re.compile(INTEGER_PATTERN)
_FLOAT_RE = re.compile(FLOAT_PATTERN)
ID_RULE = f"1 to {MAX_ID_LENGTH} printable characters"


def id_problem(value: str) -> str | None:
    """What breaks the id rule in `value` (see the module docstring), or None for a good id.

    Cheap whatever the input: the length is checked before any character is looked at.
    """
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    if not value.strip():
        return "empty"
    if not value.isprintable():
        return "contains a control or separator character"
    return None


def parse_datetime(text: str) -> dt.datetime | None:
    """Parse one timestamp by the contract's rules; aware UTC result, None when unparseable."""
    text = text.strip()
    if not _DATETIME_RE.match(text):  # ASCII digits, two per field, one spelling of each part
        return None
    try:
        value = dt.datetime.fromisoformat(text)  # reads every spelling the pattern admits
    except ValueError:  # a day the month lacks, year 0
        return None
    try:
        return utc(value)
    except OverflowError:  # an offset pushing the value past year 1 or 9999
        return None


def latest_allowed(now: dt.datetime) -> dt.datetime:
    """The latest time an event may carry when checked at `now` (`FUTURE_SKEW` ahead)."""
    return utc(now) + FUTURE_SKEW


# One kind's reading of a raw value: (value, None) or (None, the error naming the field).
Checked = tuple[Any, str | None]


def _text(spec: Field, raw: Any) -> Checked:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None, f"{spec.name}: expected text, got {type(raw).__name__}"
    value = str(raw)
    if spec.kind is Kind.ID and id_problem(value):
        return None, f"{spec.name}: {id_problem(value)} (an id is {ID_RULE})"
    if spec.max_length is not None and len(value) > spec.max_length:
        return None, f"{spec.name}: longer than {spec.max_length} characters"
    return value, None


def _integer(spec: Field, raw: Any) -> Checked:
    wrong = f"{spec.name}: expected an integer, got {shown(raw)}"
    if isinstance(raw, bool):
        return None, wrong
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, str) and _INT_RE.match(raw):
        try:
            value = int(float(raw))
        except (ValueError, OverflowError):
            return None, wrong
    else:
        return None, wrong
    if not -(2**63) <= value < 2**63:
        return None, f"{spec.name}: {shown(raw)} does not fit a 64-bit integer"
    return value, None


def _number(spec: Field, raw: Any) -> Checked:
    wrong = f"{spec.name}: expected a number, got {shown(raw)}"
    if isinstance(raw, bool):
        return None, wrong
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str) and _FLOAT_RE.match(raw):
        try:
            value = float(raw)
        except ValueError:
            return None, wrong
    else:
        return None, wrong
    if not math.isfinite(value):
        return None, f"{spec.name}: expected a finite number, got {shown(raw)}"
    return value, None


def _boolean(spec: Field, raw: Any) -> Checked:
    if isinstance(raw, bool):
        return raw, None
    if isinstance(raw, str) and raw.strip().lower() in TRUE_TOKENS | FALSE_TOKENS:
        return raw.strip().lower() in TRUE_TOKENS, None
    return None, f"{spec.name}: expected true or false, got {shown(raw)}"


def _datetime(spec: Field, raw: Any) -> Checked:
    parsed = parse_datetime(raw) if isinstance(raw, str) else None
    if parsed is None:
        example = "use ISO 8601, e.g. 2024-05-01T12:30:00Z"
        return None, f"{spec.name}: not a date-time ({example}), got {shown(raw)}"
    return parsed, None


def _date(spec: Field, raw: Any) -> Checked:
    parsed = parse_datetime(raw) if isinstance(raw, str) else None
    if parsed is None:
        return None, f"{spec.name}: not a date (use YYYY-MM-DD), got {shown(raw)}"
    return parsed.date(), None


_READ: dict[Kind, Callable[[Field, Any], Checked]] = {
    Kind.STR: _text,
    Kind.ID: _text,
    Kind.INT: _integer,
    Kind.FLOAT: _number,
    Kind.BOOL: _boolean,
    Kind.DATETIME: _datetime,
    Kind.DATE: _date,
}


def check_value(spec: Field, raw: Any, now: dt.datetime | None = None) -> Checked:
    """Coerce one raw value to the field's kind; returns (value, error message or None).

    The checks run in this order, the first failing one naming the field: missing, kind (with the
    id rule and text length), not in the future (against `now`, default the current time),
    choices, range. `training.validate` applies the same checks to whole columns.
    """
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if spec.required:
            return None, f"{spec.name}: required value is missing"
        return spec.default, None
    value, error = _READ[spec.kind](spec, raw)
    if error is None and spec.not_future:
        error = _future_error(spec, value, now or dt.datetime.now(dt.UTC))
    if error is None and spec.choices is not None and value not in spec.choices:
        expected = ", ".join(spec.choices)
        error = f"{spec.name}: unknown value {shown(value)}, expected one of {expected}"
    if error is None and isinstance(value, int | float) and not isinstance(value, bool):
        too_low = spec.minimum is not None and (
            value <= spec.minimum if spec.exclusive_minimum else value < spec.minimum
        )
        too_high = spec.maximum is not None and value > spec.maximum
        if too_low or too_high:
            error = f"{spec.name}: {value!r} is out of range (must be {spec.describe_range()})"
    return (None, error) if error else (value, None)


def future_message(name: str) -> str:
    minutes = int(FUTURE_SKEW.total_seconds() // 60)
    return f"{name}: in the future (more than {minutes} minutes ahead of now; times are UTC)"


def _future_error(spec: Field, value: dt.date, now: dt.datetime) -> str | None:
    limit = latest_allowed(now)
    if isinstance(value, dt.datetime):
        late = value > limit
    else:  # a date is in the future when its first moment is
        late = dt.datetime.combine(value, dt.time(), dt.UTC) > limit
    return future_message(spec.name) if late else None


def check_record(
    table: Table, record: dict[str, Any], now: dt.datetime | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Check one record against a table's contract: (clean record, errors). Unknown keys are errors."""
    errors: list[str] = []
    clean: dict[str, Any] = {}
    unknown = sorted(set(record) - set(table.by_name))
    if unknown and not table.extra_columns:
        errors.append(f"unknown field(s): {', '.join(shown(u) for u in unknown[:10])}")
    for spec in table.fields:
        value, error = check_value(spec, record.get(spec.name), now)
        if error:
            errors.append(error)
        clean[spec.name] = value
    return clean, errors
