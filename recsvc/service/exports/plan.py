"""Planning a member export (the parameters checked, the members or the change since a version
worked out) and streaming it in the asked-for format."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsvc.domain import columns as c
from recsvc.domain.privacy import Suppression
from recsvc.errors import ArtifactError, InvalidRequest, NotFoundError
from recsvc.service.exports.base import (
    CHANGE,
    CHUNK_ROWS,
    DEFAULT_FIELDS,
    ENTERED,
    EXITED,
    JSON,
    MAX_FIELDS,
    MEDIA_TYPES,
    UNSAFE_FILENAME,
    VERSION_PATTERN,
    ExportFailed,
    ExportFormat,
    Rows,
    VersionPath,
)
from recsvc.service.exports.csv import csv_chunks
from recsvc.service.exports.parquet import parquet_chunks
from recsvc.version.erased import without
from recsvc.version.memberships import find_sorted_ids
from recsvc.version.profiles import ColumnType, Profiles, row_type

log = logging.getLogger("recsvc.service.exports")


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
    stayed, _ = find_sorted_ids(now_ids, before_ids)
    kept, _ = find_sorted_ids(before_ids, now_ids)
    left_ids = before_ids[~kept]
    still_customer, position = find_sorted_ids(left_ids, current.customer_ids)
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
        stem = UNSAFE_FILENAME.sub("_", "-".join(parts))
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
        what = f"segment {self.segment!r} (version {self.version}, {self.format.value})"
        return encoded(self, self.format, what)


def encoded(export: Rows, fmt: ExportFormat, what: str) -> Generator[bytes, None, None]:
    """An export's file in `fmt`, piece by piece; a failure is logged as one line naming `what`
    and raised as ExportFailed (see there)."""
    if fmt is ExportFormat.CSV:
        return _response_body(what, csv_chunks(export))
    if fmt is ExportFormat.NDJSON:
        return _response_body(what, _ndjson_chunks(export))
    return _response_body(what, parquet_chunks(export))


def _response_body(what: str, pieces: Generator[bytes, None, None]) -> Generator[bytes, None, None]:
    sent = 0
    try:
        for piece in pieces:
            yield piece
            sent += len(piece)
    except Exception as exc:
        reason = " ".join(str(exc).split())  # one line, whatever the message (polars' have several)
        log.error(
            "export of %s failed after %d bytes: %s: %s", what, sent, type(exc).__name__, reason
        )
        raise ExportFailed(f"export of {what} failed: {reason}") from exc
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
    masked: np.ndarray | None = None,
    suppression: Suppression | None = None,
) -> SegmentExport:
    """Check the parameters and work out which customers to export; nothing is encoded yet.

    `masked`: rows of `profiles` never exported (erased customers, `recsvc.version.erased`);
    `suppression`: the erasures, which also keep an erased customer who left since
    `since_version` out of its exited rows.

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
    sources = tuple(_unmasked(source, profiles, masked, suppression) for source in sources)
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


def _unmasked(
    source: RowSource,
    current: Profiles,
    masked: np.ndarray | None,
    suppression: Suppression | None,
) -> RowSource:
    if source.profiles is current:
        if masked is None or masked.size == 0:
            return source
        return dataclasses.replace(source, indices=without(source.indices, masked))
    if not suppression or source.indices.size == 0:
        return source
    # Rows of an earlier version: customers gone from the current one (usually few), each
    # checked against the erasures (none of them is ever exported again).
    ids = source.profiles.customer_ids[source.indices].tolist()
    keep = np.asarray([suppression.erased_at(str(cid)) is None for cid in ids], dtype=bool)
    return dataclasses.replace(source, indices=source.indices[keep])


def _ndjson_chunks(export: Rows) -> Generator[bytes, None, None]:
    for rows in export.row_chunks():
        yield JSON.encode_lines(rows)
