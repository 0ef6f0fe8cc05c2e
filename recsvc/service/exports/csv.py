"""CSV (RFC 4180) for a member export: spreadsheet-safe text cells (OWASP "CSV Injection"), CR and
LF quoted, yes/no as true/false, lists joined with `|`."""

from __future__ import annotations

import csv
import io
import operator
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from functools import partial
from typing import Any, Final

import msgspec

from recsvc.domain import customer_table as ct
from recsvc.service.exports.base import LIST_SEPARATOR, Rows, json_text
from recsvc.version.profiles import ColumnType

# OWASP "CSV Injection": a spreadsheet takes a cell that begins with one of these for a formula...
FORMULA_TRIGGERS: Final = frozenset("=+-@\t\r")
# ...unless the whole cell is a plain number ("-12.5", "+3"), which it reads as that number.
_PLAIN_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_first_character: Final = operator.itemgetter(0)
# Text columns training fills with the service's own words only (segment names, which must match
# `segment_rules.SEGMENT_NAME_PATTERN`, and fixed category names; a customers file may not bring
# columns of these names): the fast CSV path need not look at them.
_OWN_WORDS: Final = frozenset(
    {ct.PRIMARY_SEGMENT, ct.NPS_CATEGORY, ct.RFM_SEGMENT, ct.CHURN_RISK_LEVEL, ct.COMPLAINT_THEME}
)


_BOOL_TEXT: Final = {True: "true", False: "false"}


def runs_as_formula(text: str) -> bool:
    """Whether a spreadsheet opening the CSV would take this cell for a formula (OWASP's triggers;
    a plain number such as "-12.5" is read as that number)."""
    return bool(text) and text[0] in FORMULA_TRIGGERS and not _PLAIN_NUMBER.fullmatch(text)


def spreadsheet_safe(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows rather than runs: `=1+1` becomes `'=1+1`."""
    return "'" + text if runs_as_formula(text) else text


def _holds_formulas(cells: Callable[[], Iterator[Any]]) -> bool:
    """Whether a text column (None where missing) has a cell a spreadsheet would run as a formula.

    `cells()` gives the column afresh: first its first characters are looked up in C, and only a
    column where one is a trigger (rare, or a number such as "-3") is checked cell by cell.
    """
    if FORMULA_TRIGGERS.isdisjoint(map(_first_character, filter(None, cells()))):
        return False
    return any(map(runs_as_formula, filter(None, cells())))


def _text_column(values: Sequence[Any]) -> Sequence[Any]:
    if not _holds_formulas(partial(iter, values)):
        return values
    return [None if v is None else spreadsheet_safe(v) for v in values]


def _bool_column(values: Sequence[Any]) -> Sequence[Any]:
    return [_BOOL_TEXT.get(v) for v in values]


def _list_column(values: Sequence[Any]) -> Sequence[Any]:
    return _text_column([None if v is None else LIST_SEPARATOR.join(v) for v in values])


def _json_column(values: Sequence[Any]) -> Sequence[Any]:
    return _text_column([None if v is None else json_text(v) for v in values])


# How a column of each type becomes CSV cells. Numbers, dates and datetimes (written by training in
# a fixed format) go to csv as they are.
_CSV_COLUMN: Final[dict[str, Callable[[Sequence[Any]], Sequence[Any]]]] = {
    ColumnType.STRING: _text_column,
    ColumnType.BOOL: _bool_column,
    ColumnType.STRING_LIST: _list_column,
    ColumnType.JSON: _json_column,
}


def csv_chunks(export: Rows) -> Generator[bytes, None, None]:
    buffer = io.StringIO()
    # RFC 4180's line end. csv quotes a value holding any character of the line terminator, so
    # with "\r\n" a bare CR inside a value is quoted too and cannot split the row in a reader.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([spreadsheet_safe(name) for name in export.columns])  # a shop's own columns
    yield buffer.getvalue().encode()
    kinds = [export.column_types[name] for name in export.columns]
    getters = [operator.attrgetter(f"f{i}") for i in range(len(export.columns))]
    converters = [(i, _CSV_COLUMN[kind]) for i, kind in enumerate(kinds) if kind in _CSV_COLUMN]
    customers_text = [
        getters[i]
        for i, (name, kind) in enumerate(zip(export.columns, kinds, strict=True))
        if kind == ColumnType.STRING and name not in _OWN_WORDS
    ]
    # Columns csv would spell unhelpfully (True, ['a', 'b']) need converting in every chunk.
    respelled = any(kind in _CSV_COLUMN and kind != ColumnType.STRING for kind in kinds)
    astuple = msgspec.structs.astuple
    for rows in export.row_chunks():
        buffer.seek(0)
        buffer.truncate()
        if respelled or any(_holds_formulas(partial(map, get, rows)) for get in customers_text):
            # Column by column (no tuple per row to transpose), converted, zipped back for csv.
            columns: list[Sequence[Any]] = [list(map(get, rows)) for get in getters]
            for position, convert in converters:
                columns[position] = convert(columns[position])
            writer.writerows(zip(*columns, strict=True))
        else:
            writer.writerows(map(astuple, rows))  # csv writes None as an empty cell
        yield buffer.getvalue().encode()
