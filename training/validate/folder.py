"""Where a shop's tables live in a data folder, and how to read one without a traceback.

A table is the file `<table>.csv`, `.parquet`, `.ndjson` or `.jsonl` in the data folder. Every
reading failure from polars or the OS becomes a one-line `DataContractError` naming the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsvc.domain import contract
from recsvc.errors import DataContractError

# Bytes sniffed at the start of a text file to tell it from binary content.
_SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class TableFile:
    """One contract table found in the data folder."""

    table: contract.Table
    path: Path
    format: str  # "csv", "parquet" or "ndjson" (see `contract.FILE_EXTENSIONS`)


@dataclass(frozen=True, slots=True)
class DataFolder:
    files: dict[str, TableFile]  # by table name, in `contract.TABLE_ORDER`
    warnings: tuple[str, ...]  # files and folders that were ignored


def locate_tables(data_dir: Path) -> DataFolder:
    """Find each contract table's file in `data_dir`; raise when a required one is missing.

    Names starting with `_` or `.` and files that are no contract table are ignored (and listed as
    warnings); two files for the same table are an error naming both.
    """
    if not data_dir.is_dir():
        raise DataContractError(f"data folder {data_dir} does not exist or is not a folder")
    found: dict[str, list[Path]] = {}
    warnings: list[str] = []
    for path in sorted(data_dir.iterdir()):
        if path.name.startswith(("_", ".")):
            warnings.append(f"ignored {path.name} (names starting with '_' or '.' are skipped)")
            continue
        table_name = _table_name(path)
        if table_name is None:
            kind = "folder" if path.is_dir() else "file"
            warnings.append(
                f"ignored {kind} {path.name} (not a contract table: {_expected_names()})"
            )
            continue
        found.setdefault(table_name, []).append(path)
    files: dict[str, TableFile] = {}
    for name in contract.TABLE_ORDER:
        table = contract.TABLES[name]
        paths = found.get(name, [])
        if len(paths) > 1:
            listed = " and ".join(p.name for p in paths)
            raise DataContractError(
                f"table {name!r} is given twice in {data_dir}: {listed}; keep one"
            )
        if not paths:
            if table.required:
                spellings = ", ".join(f"{name}{ext}" for ext in contract.FILE_EXTENSIONS)
                raise DataContractError(
                    f"required table {name!r} is missing from {data_dir} (expected one of {spellings})"
                )
            continue
        path = paths[0]
        files[name] = TableFile(table, path, contract.FILE_EXTENSIONS[path.suffix.lower()])
    return DataFolder(files=files, warnings=tuple(warnings))


def _table_name(path: Path) -> str | None:
    if not path.is_file() or path.suffix.lower() not in contract.FILE_EXTENSIONS:
        return None
    return path.stem if path.stem in contract.TABLES else None


def _expected_names() -> str:
    extensions = "|".join(ext.lstrip(".") for ext in contract.FILE_EXTENSIONS)
    return f"<table>.{extensions} with <table> one of {', '.join(contract.TABLE_ORDER)}"


@contextlib.contextmanager
def read_errors(path: Path, format: str) -> Iterator[None]:
    """Turn a polars or OS failure while reading `path` into a one-line `DataContractError`."""
    try:
        yield
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as error:
        raise DataContractError(
            f"{path}: cannot read as {_FORMAT_NAMES[format]}: {_explain(error)}"
        ) from error


_FORMAT_NAMES = {"csv": "CSV", "parquet": "Parquet", "ndjson": "newline-delimited JSON"}


def _explain(error: BaseException) -> str:
    text = str(error)
    if "more fields than defined" in text:
        return "a row has more fields than the header (is a text field with a comma not quoted?)"
    if "invalid utf-8" in text.lower():
        return "the file is not UTF-8 text (save it as UTF-8)"
    if isinstance(error, pl.exceptions.NoDataError):
        return "the file is empty (expected a header row)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    return first if len(first) <= 200 else first[:200] + "…"


def scan_table(source: TableFile, *, contract_columns_as_text: bool = False) -> pl.LazyFrame:
    """Scan a table file lazily, columns as stored: CSV as text, Parquet and NDJSON typed.

    `contract_columns_as_text` reads an NDJSON file's contract columns as text, for a file whose
    column mixes JSON types polars cannot unify (say true and 1). Raises `DataContractError` when
    the file is binary garbage or its schema cannot be read; later failures surface when the frame
    is collected, so collect inside `read_errors`.
    """
    path = source.path
    if source.format in ("csv", "ndjson"):
        _reject_binary(path, source.format)
    with read_errors(path, source.format):
        if source.format == "csv":
            frame = pl.scan_csv(path, infer_schema=False, raise_if_empty=True)
        elif source.format == "parquet":
            frame = pl.scan_parquet(path)
        else:
            frame = _scan_ndjson(source, contract_columns_as_text)
        frame.collect_schema()
    return frame


def _scan_ndjson(source: TableFile, contract_columns_as_text: bool) -> pl.LazyFrame:
    # The whole file is read to infer column types, so a late row cannot break the schema. A column
    # mixing JSON booleans and numbers gets a type some of its values do not fit, which fails on
    # reading: its table is then read again with the contract columns as text.
    frame = pl.scan_ndjson(source.path, infer_schema_length=None)
    if not contract_columns_as_text:
        return frame
    present = frame.collect_schema()
    as_text = {f.name: pl.String for f in source.table.fields if f.name in present}
    return pl.scan_ndjson(source.path, infer_schema_length=None, schema_overrides=as_text)


def _reject_binary(path: Path, format: str) -> None:
    with read_errors(path, format), path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise DataContractError(
            f"{path}: cannot read as {_FORMAT_NAMES[format]}: the file holds binary data, not UTF-8 text"
        )
