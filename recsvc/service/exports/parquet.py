"""Parquet for a member export, through polars' streaming sink (the one import of polars on the
service side: only an export that asks for Parquet loads it)."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Generator, Iterator
from typing import IO, Any, cast

import msgspec

from recsvc.service.exports.base import CHUNK_ROWS, NAIVE_DATETIME_FORMAT, Rows, json_text
from recsvc.version.profiles import ColumnType


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


def _frame(
    rows: list[Any], columns: tuple[str, ...], types: list[str], schema: dict[str, Any]
) -> Any:
    """One chunk of rows as a polars DataFrame of the export's column types."""
    import polars as pl

    values = list(zip(*map(msgspec.structs.astuple, rows), strict=True))
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
            encoded = [None if v is None else json_text(v) for v in column]
            s = pl.Series(name, encoded, dtype=pl.String)
        else:
            s = pl.Series(name, column, dtype=schema[name], strict=False)
        series.append(s)
    return pl.DataFrame(series)


def parquet_chunks(export: Rows) -> Generator[bytes, None, None]:
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

    def source(*_: Any) -> Iterator[pl.DataFrame]:
        for rows in export.row_chunks():
            if pipe.cancelled.is_set():
                return
            yield _frame(rows, columns, types, schema)

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
