"""What every part of an export shares: the formats and their media types, the export's
constants, the failure it raises, and the rows an encoder reads (`Rows`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec

from recsvc.version.profiles import EXPORT_COLUMNS

CHUNK_ROWS: Final = 10_000
DEFAULT_FIELDS: Final = EXPORT_COLUMNS
CHANGE: Final = "change"
ENTERED: Final = "entered"
EXITED: Final = "exited"
LIST_SEPARATOR: Final = "|"
MAX_FIELDS: Final = 200
# What a version name may look like before it is handed to the store (never a path).
VERSION_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


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


# Datetimes as we write them once the `Z` is off; `%.f` reads optional fractional seconds (a
# membership history's stamps have microseconds, profile records none).
NAIVE_DATETIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%.f"
MEDIA_TYPES: Final = {
    # Litestar adds "; charset=utf-8" to text types itself (given here too, it came out twice).
    ExportFormat.CSV: "text/csv",
    ExportFormat.NDJSON: "application/x-ndjson",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}

VersionPath = Callable[[str], Path]
JSON = msgspec.json.Encoder()


class Rows(Protocol):
    """An export as its encoders see it: the columns, their types (`ColumnType`), and the rows
    (Structs whose fields f0, f1, ... hold the columns), a chunk at a time."""

    @property
    def segment(self) -> str: ...

    @property
    def columns(self) -> tuple[str, ...]: ...

    @property
    def column_types(self) -> dict[str, str]: ...

    def row_chunks(self) -> Iterator[list[Any]]: ...


def json_text(value: Any) -> str:
    return JSON.encode(value).decode()
