"""The service-readable profile and segment files of a version (format: `recsvc.version.profiles`).

Written from the customer table into the artifact directory before the manifest, so the manifest
lists and hashes them. Vectorised: polars writes the JSON lines in blocks, numpy finds the line ends
for the offsets, and segment lists come from one explode and sort; 1M customers take seconds.
"""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.nps import NpsCategory, nps_from_counts
from recsvc.domain.segments.catalog import SegmentRules
from recsvc.version.profiles import (
    DATETIME_FORMAT,
    EXPORT_BIN,
    EXPORT_COLUMNS,
    EXPORT_OFFSETS,
    PROFILE_OFFSETS,
    PROFILES_BIN,
    PROFILES_SCHEMA,
    SEGMENT_INDPTR,
    SEGMENT_MEMBERS,
    SEGMENTS_JSON,
    ColumnType,
    ProfileColumn,
    ProfilesFile,
    SegmentInfo,
    SegmentsFile,
)

BLOCK_ROWS = 100_000  # rows per JSON block: bounds the writer's extra memory
_ROW = "_row"
_RANK = "_rank"
_CATEGORIES = (NpsCategory.PROMOTER, NpsCategory.PASSIVE, NpsCategory.DETRACTOR)


def column_type(dtype: pl.DataType) -> str:
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return ColumnType.STRING
    if dtype.is_integer():
        return ColumnType.INTEGER
    if dtype.is_float():
        return ColumnType.FLOAT
    if dtype == pl.Boolean:
        return ColumnType.BOOL
    if dtype == pl.Date:
        return ColumnType.DATE
    if isinstance(dtype, pl.Datetime):
        return ColumnType.DATETIME
    if isinstance(dtype, pl.List) and dtype.inner == pl.String:
        return ColumnType.STRING_LIST
    return ColumnType.JSON


def aligned_table(customer_table: pl.DataFrame, customer_ids: np.ndarray) -> pl.DataFrame:
    """The customer table in the artifact's customer order; customers it lacks get nulls."""
    ids = pl.Series(c.CUSTOMER_ID, customer_ids, dtype=pl.String)
    table = customer_table
    if not (table.height == ids.len() and table[c.CUSTOMER_ID].equals(ids)):
        table = ids.to_frame().join(table, on=c.CUSTOMER_ID, how="left", maintain_order="left")
    if ct.SEGMENTS in table.columns:
        table = table.with_columns(pl.col(ct.SEGMENTS).fill_null(pl.lit([], pl.List(pl.String))))
    return table


def _json_ready(table: pl.DataFrame) -> pl.DataFrame:
    """Datetimes as ISO text in UTC with a `Z` (polars' JSON would write a space for the T)."""
    converted = []
    for name, dtype in table.schema.items():
        if isinstance(dtype, pl.Datetime):
            column = pl.col(name)
            if dtype.time_zone is not None:
                column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            converted.append(column.dt.strftime(DATETIME_FORMAT).alias(name))
    return table.with_columns(converted) if converted else table


def write_records(table: pl.DataFrame, path: Path, offsets_path: Path) -> None:
    """One JSON object per row, each ending in a newline, and the int64 line offsets (n + 1)."""
    offsets = np.empty(table.height + 1, dtype=np.int64)
    offsets[0] = 0
    written = 0
    with path.open("wb") as out:
        for start in range(0, table.height, BLOCK_ROWS):
            buffer = io.BytesIO()
            table.slice(start, BLOCK_ROWS).write_ndjson(buffer)
            block = buffer.getbuffer()
            # JSON escapes newlines inside strings, so every raw newline ends a record.
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")) + 1
            rows = min(BLOCK_ROWS, table.height - start)
            if ends.size != rows:
                raise RuntimeError(f"JSON block at row {start}: {ends.size} lines for {rows} rows")
            offsets[start + 1 : start + 1 + rows] = written + ends
            out.write(block)
            written += len(block)
            del block
    np.save(offsets_path, offsets, allow_pickle=False)


def write_profiles(table: pl.DataFrame, directory: Path) -> None:
    """The full and the narrow (export) record files and profiles.json from the aligned table."""
    json_table = _json_ready(table)
    write_records(json_table, directory / PROFILES_BIN, directory / PROFILE_OFFSETS)
    export_columns: list[str] = [name for name in EXPORT_COLUMNS if name in table.columns]
    write_records(
        json_table.select(export_columns), directory / EXPORT_BIN, directory / EXPORT_OFFSETS
    )
    schema = ProfilesFile(
        customers=table.height,
        columns=[ProfileColumn(name, column_type(dtype)) for name, dtype in table.schema.items()],
        export_columns=export_columns,
    )
    (directory / PROFILES_SCHEMA).write_bytes(msgspec.json.format(msgspec.json.encode(schema)))


def write_segments(table: pl.DataFrame, rules: SegmentRules, directory: Path) -> None:
    """segments.json, segment_indptr.npy and segment_members.npy from the aligned table."""
    names = list(rules.names)
    rank = {name: k for k, name in enumerate(names)}
    long = (
        table.lazy()
        .select(
            pl.int_range(pl.len(), dtype=pl.Int32).alias(_ROW),
            pl.col(ct.SEGMENTS),
            pl.col(ct.PRIMARY_SEGMENT),
            pl.col(ct.NPS_CATEGORY),
        )
        .explode(ct.SEGMENTS)
        .drop_nulls(ct.SEGMENTS)
        .with_columns(
            pl.col(ct.SEGMENTS)
            .replace_strict(rank, default=None, return_dtype=pl.Int32)
            .alias(_RANK)
        )
        .drop_nulls(_RANK)  # a segment the rules no longer define has no list
        .sort(_RANK, _ROW)
        .collect()
    )
    members = long[_ROW].to_numpy().astype(np.int32, copy=False)
    sizes = np.bincount(long[_RANK].to_numpy(), minlength=len(names))
    indptr = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    stats = {
        row[_RANK]: row
        for row in long.group_by(_RANK)
        .agg(
            (pl.col(ct.SEGMENTS) == pl.col(ct.PRIMARY_SEGMENT)).sum().alias("primary"),
            *((pl.col(ct.NPS_CATEGORY) == cat.value).sum().alias(cat.value) for cat in _CATEGORIES),
        )
        .iter_rows(named=True)
    }
    total = max(table.height, 1)
    infos = []
    for k, definition in enumerate(rules.definitions):
        row = stats.get(k, {})
        infos.append(
            SegmentInfo(
                name=definition.name,
                description=definition.description,
                expression=definition.expression,
                priority=definition.priority,
                size=int(sizes[k]),
                primary_size=int(row.get("primary") or 0),
                share=int(sizes[k]) / total,
                nps=nps_from_counts(*(int(row.get(cat.value) or 0) for cat in _CATEGORIES)),
            )
        )
    np.save(directory / SEGMENT_INDPTR, indptr, allow_pickle=False)
    np.save(directory / SEGMENT_MEMBERS, np.ascontiguousarray(members), allow_pickle=False)
    segments = SegmentsFile(customers=table.height, segments=infos)
    (directory / SEGMENTS_JSON).write_bytes(msgspec.json.format(msgspec.json.encode(segments)))


def write_serving_tables(
    customer_table: pl.DataFrame, customer_ids: np.ndarray, rules: SegmentRules, directory: Path
) -> None:
    """Write the profile and segment files of `recsvc.version.profiles` into an artifact directory.

    `customer_ids` is the artifact's sorted customer id array: record i is customer_ids[i].
    `customer_table` must carry the `segments` column assigned with these `rules`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    table = aligned_table(customer_table, customer_ids)
    write_profiles(table, directory)
    write_segments(table, rules, directory)
