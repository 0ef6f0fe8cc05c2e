"""Segment exports for marketers: a segment's members as CSV, NDJSON or Parquet, streamed.

Rows are read from the memory-mapped profile records (`recsvc.version.profiles`) in chunks of `CHUNK_ROWS`
customers and written chunk by chunk, so memory stays flat however large the segment: at most one
chunk of rows, plus the member index arrays (4 bytes a member).

`since_version=V` exports only the change against an earlier stored version V, as audience syncs
do: customers who entered the segment (`change=entered`) and those who left it (`change=exited`),
entered ones first, each group in customer id order. An exited customer who is still a customer
shows their current attributes; one who is gone from the current version shows V's.

CSV (RFC 4180: `\r\n` line ends, a value holding a comma, quote, CR or LF in quotes): a header row,
empty cells for missing values, yes/no as `true`/`false`, lists joined with `|`. A text cell a
spreadsheet would run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a CR and is not a
plain number such as `-12.5`) is written with a leading `'`, as OWASP's "CSV Injection" advises:
customer attributes are the shop's customers' own words. NDJSON: one JSON object per line, missing
values `null`, lists as lists. Parquet: one row group per chunk, typed columns (dates and datetimes
as such); polars is imported only for this format.

An export that fails part-way (say a record that no longer decodes) is logged as one line and raises
`ExportFailed`: the server drops the connection before the body's end (or, when it has sent nothing
yet, answers 500), so no HTTP client takes a short file for the whole one. Nothing is added to the
body to say so.
"""

from __future__ import annotations

import csv
import io
import logging
import operator
import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import IO, Any, Final, cast

import msgspec
import numpy as np

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.errors import ArtifactError, InvalidRequest, NotFoundError
from recsvc.version.profiles import EXPORT_COLUMNS, ColumnType, Profiles, row_type

log = logging.getLogger("recsvc.service.exports")

CHUNK_ROWS: Final = 10_000
DEFAULT_FIELDS: Final = EXPORT_COLUMNS
CHANGE: Final = "change"
ENTERED: Final = "entered"
EXITED: Final = "exited"
LIST_SEPARATOR: Final = "|"
MAX_FIELDS: Final = 200
# What a version name may look like before it is handed to the store (never a path).
VERSION_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
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


class ExportFailed(RuntimeError):
    """An export broke off part-way: its response must not end as a complete one.

    Deliberately not a ValueError (which msgspec's DecodeError is): Litestar's wrapper around a
    sync stream takes a ValueError from `next()` for the stream's end and would finish the body as
    if it were complete. Any other exception reaches the server, which drops the connection.
    """


class ExportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"
    PARQUET = "parquet"


NAIVE_DATETIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"
MEDIA_TYPES: Final = {
    # Litestar adds "; charset=utf-8" to text types itself (given here too, it came out twice).
    ExportFormat.CSV: "text/csv",
    ExportFormat.NDJSON: "application/x-ndjson",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}

VersionPath = Callable[[str], Path]


@dataclass(frozen=True, slots=True)
class RowSource:
    """Customers (ascending indices into `profiles`) exported with one `change` value (or none)."""

    profiles: Profiles
    indices: np.ndarray
    change: str | None = None


# --- parameters ----------------------------------------------------------------------------------


def parse_format(value: str | None) -> ExportFormat:
    try:
        return ExportFormat((value or ExportFormat.CSV).lower())
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        raise InvalidRequest(f"format: {value!r} is not one of {choices}") from None


def parse_fields(value: str | None, profiles: Profiles, *, with_change: bool) -> tuple[str, ...]:
    """The export's columns: `customer_id` first, then the asked-for (or default) fields."""
    if value is None:
        names: list[str] = [n for n in DEFAULT_FIELDS if n in profiles.column_types]
    else:
        names = [part.strip() for part in value.split(",") if part.strip()]
        if not names:
            raise InvalidRequest("fields: give one or more column names separated by commas")
        if len(names) > MAX_FIELDS:
            raise InvalidRequest(f"fields: at most {MAX_FIELDS} names")
    unknown = [n for n in names if n not in profiles.column_types]
    if with_change and CHANGE in names:
        raise InvalidRequest(f"fields: '{CHANGE}' is added by since_version, do not ask for it")
    if unknown:
        raise InvalidRequest(
            f"fields: unknown column(s) {', '.join(repr(n) for n in unknown[:10])}; "
            f"available: {', '.join(profiles.column_types)}"
        )
    ordered = dict.fromkeys([c.CUSTOMER_ID, *names])  # always the id first; duplicates once
    return tuple(ordered)


def check_version_name(version: str) -> str:
    if not VERSION_PATTERN.match(version):
        raise InvalidRequest(
            "since_version: a version name is letters, digits, '.', '_' and '-' "
            f"(at most 128 characters), got {version[:140]!r}"
        )
    return version


# --- membership changes between versions ---------------------------------------------------------


def _find_sorted(needles: np.ndarray, haystack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, positions) of sorted `needles` in sorted `haystack`."""
    if haystack.size == 0:
        return np.zeros(needles.size, dtype=bool), np.zeros(needles.size, dtype=np.int64)
    positions = np.searchsorted(haystack, needles)
    clipped = np.minimum(positions, haystack.size - 1)
    return (positions < haystack.size) & (haystack[clipped] == needles), clipped


def segment_changes(current: Profiles, name: str, previous: Profiles) -> tuple[RowSource, ...]:
    """Who entered and who left segment `name` since `previous` (sources in export order).

    A segment the previous version did not define counts as empty then: all members entered.
    """
    now = np.asarray(current.members(name))
    try:
        before = np.asarray(previous.members(name))
    except NotFoundError:
        before = np.zeros(0, dtype=np.int32)
    # Indices ascend and ids are sorted, so both id lists are sorted: a merge by binary search.
    now_ids = current.customer_ids[now]
    before_ids = previous.customer_ids[before]
    stayed, _ = _find_sorted(now_ids, before_ids)
    kept, _ = _find_sorted(before_ids, now_ids)
    left_ids = before_ids[~kept]
    still_customer, position = _find_sorted(left_ids, current.customer_ids)
    return (
        RowSource(current, now[~stayed], ENTERED),
        RowSource(current, position[still_customer], EXITED),
        RowSource(previous, before[~kept][~still_customer], EXITED),
    )


# --- the export ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentExport:
    segment: str
    version: str
    since_version: str | None
    format: ExportFormat
    fields: tuple[str, ...]  # read from the records, in output order
    column_types: dict[str, str]
    sources: tuple[RowSource, ...]

    @property
    def rows(self) -> int:
        return sum(int(s.indices.size) for s in self.sources)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.fields, CHANGE) if self.since_version is not None else self.fields

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def filename(self) -> str:
        parts = ["segment", self.segment, self.version]
        if self.since_version is not None:
            parts += ["since", self.since_version]
        stem = _UNSAFE_FILENAME.sub("_", "-".join(parts))
        return f"{stem}.{self.format.value}"

    def row_chunks(self) -> Iterator[list[Any]]:
        """Decoded rows (Structs of `columns`), at most CHUNK_ROWS at a time."""
        row = row_type(self.columns)
        change_field = f"f{len(self.fields)}"  # row_type's name for the `change` column
        for source in self.sources:
            for start in range(0, source.indices.size, CHUNK_ROWS):
                indices = source.indices[start : start + CHUNK_ROWS]
                rows = source.profiles.rows(indices, row, self.fields)
                if source.change is not None:
                    for r in rows:
                        setattr(r, change_field, source.change)
                yield rows

    def chunks(self) -> Generator[bytes, None, None]:
        """The encoded file, piece by piece; ExportFailed (logged) if it cannot be finished."""
        if self.format is ExportFormat.CSV:
            return _response_body(self, _csv_chunks(self))
        if self.format is ExportFormat.NDJSON:
            return _response_body(self, _ndjson_chunks(self))
        return _response_body(self, _parquet_chunks(self))


def _response_body(
    export: SegmentExport, pieces: Generator[bytes, None, None]
) -> Generator[bytes, None, None]:
    """`pieces`, a failure logged as one line and raised as ExportFailed (see there)."""
    sent = 0
    try:
        for piece in pieces:
            yield piece
            sent += len(piece)
    except Exception as exc:
        reason = " ".join(str(exc).split())  # one line, whatever the message (polars' have several)
        log.error(
            "export of segment %r (version %s, %s) failed after %d bytes: %s: %s",
            export.segment,
            export.version,
            export.format.value,
            sent,
            type(exc).__name__,
            reason,
        )
        raise ExportFailed(f"export of segment {export.segment!r} failed: {reason}") from exc
    finally:
        pieces.close()  # a client that went away: the parquet writer thread stops now


def plan_export(
    profiles: Profiles,
    version: str,
    name: str,
    *,
    export_format: str | None = None,
    fields: str | None = None,
    since_version: str | None = None,
    version_path: VersionPath | None = None,
) -> SegmentExport:
    """Check the parameters and work out which customers to export; nothing is encoded yet.

    NotFoundError for an unknown segment or version, InvalidRequest naming a bad parameter,
    ArtifactError when the version to compare with does not open.
    """
    fmt = parse_format(export_format)
    members = profiles.members(name)
    selected = parse_fields(fields, profiles, with_change=since_version is not None)
    if since_version is None:
        sources: tuple[RowSource, ...] = (RowSource(profiles, members),)
    else:
        check_version_name(since_version)
        if since_version == version:
            previous = profiles
        elif version_path is None:
            raise NotFoundError(f"no model version {since_version!r}: no store to look it up")
        else:
            try:
                previous = Profiles.open(version_path(since_version))
            except ArtifactError as exc:
                raise ArtifactError(f"since_version: cannot compare with it: {exc}") from None
        sources = segment_changes(profiles, name, previous)
    return SegmentExport(
        segment=name,
        version=version,
        since_version=since_version,
        format=fmt,
        fields=selected,
        column_types={
            **{f: profiles.column_types[f] for f in selected},
            CHANGE: ColumnType.STRING,
        },
        sources=sources,
    )


# --- encoders ------------------------------------------------------------------------------------

_json = msgspec.json.Encoder()


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
    return _text_column([None if v is None else _json.encode(v).decode() for v in values])


# How a column of each type becomes CSV cells. Numbers, dates and datetimes (written by training in
# a fixed format) go to csv as they are.
_CSV_COLUMN: Final[dict[str, Callable[[Sequence[Any]], Sequence[Any]]]] = {
    ColumnType.STRING: _text_column,
    ColumnType.BOOL: _bool_column,
    ColumnType.STRING_LIST: _list_column,
    ColumnType.JSON: _json_column,
}


def _csv_chunks(export: SegmentExport) -> Generator[bytes, None, None]:
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


def _ndjson_chunks(export: SegmentExport) -> Generator[bytes, None, None]:
    for rows in export.row_chunks():
        yield _json.encode_lines(rows)


class _Pipe(io.RawIOBase):
    """A write-only file whose bytes a consumer takes from a bounded queue (backpressure).

    Writes are gathered into pieces of `piece_bytes` so the response is not a stream of tiny
    chunks; `cancel()` makes the writer fail fast when the consumer has gone away.
    """

    def __init__(self, piece_bytes: int = 1 << 20, max_pieces: int = 4) -> None:
        super().__init__()
        self.pieces: queue.Queue[bytes | None] = queue.Queue(maxsize=max_pieces)
        self.cancelled = threading.Event()
        self._pending = bytearray()
        self._piece_bytes = piece_bytes
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._pending += view
        self._written += view.nbytes
        if len(self._pending) >= self._piece_bytes:
            self._put(bytes(self._pending))
            self._pending.clear()
        return view.nbytes

    def finish(self) -> None:
        """Hand over what is left and the end marker (from the writing thread)."""
        if self._pending and not self.cancelled.is_set():
            self._put(bytes(self._pending))
            self._pending.clear()
        self._put(None)

    def _put(self, item: bytes | None) -> None:
        while not self.cancelled.is_set():
            try:
                self.pieces.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        if item is not None:
            raise BrokenPipeError("the export's reader went away")

    def cancel(self) -> None:
        self.cancelled.set()
        while True:  # unblock a writer waiting on a full queue
            try:
                self.pieces.get_nowait()
            except queue.Empty:
                return


def _parquet_chunks(export: SegmentExport) -> Generator[bytes, None, None]:
    """Parquet through polars' streaming sink: each chunk of rows becomes a DataFrame fed to
    `sink_parquet` from a Python source, written as it goes into a pipe this generator drains."""
    import polars as pl
    from polars.io.plugins import register_io_source

    dtypes: dict[str, Any] = {
        ColumnType.STRING: pl.String,
        ColumnType.INTEGER: pl.Int64,
        ColumnType.FLOAT: pl.Float64,
        ColumnType.BOOL: pl.Boolean,
        ColumnType.DATE: pl.Date,
        ColumnType.DATETIME: pl.Datetime("us", "UTC"),
        ColumnType.STRING_LIST: pl.List(pl.String),
        ColumnType.JSON: pl.String,
    }
    columns = export.columns
    types = [export.column_types[name] for name in columns]
    schema = {name: dtypes[kind] for name, kind in zip(columns, types, strict=True)}
    pipe = _Pipe()
    astuple = msgspec.structs.astuple

    def frame(rows: list[Any]) -> pl.DataFrame:
        values = list(zip(*map(astuple, rows), strict=True))
        series = []
        for name, kind, column in zip(columns, types, values, strict=True):
            if kind == ColumnType.DATE:
                s = pl.Series(name, column, dtype=pl.String).str.to_date("%Y-%m-%d")
            elif kind == ColumnType.DATETIME:
                # UTC, written with a Z (versions before the Z: without one, also UTC).
                s = (
                    pl.Series(name, column, dtype=pl.String)
                    .str.strip_suffix("Z")
                    .str.to_datetime(NAIVE_DATETIME_FORMAT, time_unit="us")
                    .dt.replace_time_zone("UTC")
                )
            elif kind == ColumnType.JSON:
                encoded = [None if v is None else _json.encode(v).decode() for v in column]
                s = pl.Series(name, encoded, dtype=pl.String)
            else:
                s = pl.Series(name, column, dtype=schema[name], strict=False)
            series.append(s)
        return pl.DataFrame(series)

    def source(*_: Any) -> Iterator[pl.DataFrame]:
        for rows in export.row_chunks():
            if pipe.cancelled.is_set():
                return
            yield frame(rows)

    failure: list[BaseException] = []

    def write() -> None:
        try:
            register_io_source(source, schema=schema).sink_parquet(
                cast(IO[bytes], pipe), row_group_size=CHUNK_ROWS
            )
        except BaseException as exc:  # handed to the reading side
            failure.append(exc)
        finally:
            pipe.finish()

    writer = threading.Thread(target=write, name=f"parquet-export-{export.segment}", daemon=True)
    writer.start()
    try:
        while (piece := pipe.pieces.get()) is not None:
            yield piece
        writer.join()
        if failure:  # what broke in the writer thread (polars hands on the source's errors)
            raise failure[0]
    finally:
        pipe.cancel()
        writer.join(timeout=10)
