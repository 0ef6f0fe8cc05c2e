"""Customer profiles and segment lists of a model version, read memory-mapped by the service.

Training (`training.publish.profiles`) writes these files into the version directory; the service
opens them without polars and without loading them into memory:

- `profiles.bin`: one JSON object per customer (every column of the customer table), each ending in
  a newline, in the artifact's customer index order (sorted customer ids). Dates are `YYYY-MM-DD`,
  datetimes UTC `YYYY-MM-DDTHH:MM:SSZ`, lists are lists, missing values `null`.
- `profiles_offsets.npy`: int64, customers + 1 byte offsets: record i is `bin[off[i]:off[i+1]]`.
- `profiles_export.bin` + `profiles_export_offsets.npy`: the same layout holding only
  `EXPORT_COLUMNS` (the default export columns): an export of those reads ~6x fewer bytes.
- `profiles.json`: `ProfilesFile`, the columns and their types (the names `fields=` may ask for).
- `segments.json`: `SegmentsFile`, every segment in rule order (primary-first precedence) with its
  definition, size and NPS (one vote per customer: their latest answer, as in the NPS report).
- `segment_indptr.npy` (int64, segments + 1) and `segment_members.npy` (int32 customer indices,
  ascending within each segment): segment k's members are `members[indptr[k]:indptr[k+1]]`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain import times
from recsvc.domain.nps import NpsResult
from recsvc.errors import ArtifactError, NotFoundError
from recsvc.version.artifacts import find_sorted, load_array, map_bytes, reason, where

PROFILES_BIN: Final = "profiles.bin"
PROFILE_OFFSETS: Final = "profiles_offsets.npy"
EXPORT_BIN: Final = "profiles_export.bin"
EXPORT_OFFSETS: Final = "profiles_export_offsets.npy"
PROFILES_SCHEMA: Final = "profiles.json"
SEGMENTS_JSON: Final = "segments.json"
SEGMENT_INDPTR: Final = "segment_indptr.npy"
SEGMENT_MEMBERS: Final = "segment_members.npy"
SERVING_FILES: Final = (
    PROFILES_BIN,
    PROFILE_OFFSETS,
    EXPORT_BIN,
    EXPORT_OFFSETS,
    PROFILES_SCHEMA,
    SEGMENTS_JSON,
    SEGMENT_INDPTR,
    SEGMENT_MEMBERS,
)
SERVING_FORMAT: Final = 1
# How profiles.bin spells datetimes: UTC with a `Z` (versions written before the `Z` have none;
# readers take both, see `recsvc.domain.times.parse_iso`).
DATETIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
# What a marketer's export holds unless they ask for other fields; also the narrow record file.
EXPORT_COLUMNS: Final = (
    c.CUSTOMER_ID,
    ct.PRIMARY_SEGMENT,
    ct.NPS_CATEGORY,
    ct.RFM_SEGMENT,
    ct.CHURN_RISK,
    ct.LAST_ORDER_AT,
)


class ColumnType:
    """How a profile column's JSON values are to be read (and typed in a parquet export)."""

    STRING: Final = "string"
    INTEGER: Final = "integer"
    FLOAT: Final = "float"
    BOOL: Final = "bool"
    DATE: Final = "date"
    DATETIME: Final = "datetime"
    STRING_LIST: Final = "string_list"
    JSON: Final = "json"  # anything else, as polars wrote it


class ProfileColumn(msgspec.Struct, frozen=True):
    name: str
    type: str


class ProfilesFile(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = SERVING_FORMAT
    customers: int
    columns: list[ProfileColumn]
    export_columns: list[str] = []  # the columns of profiles_export.bin


class SegmentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One segment of a version: its definition, how many customers it holds and their NPS."""

    name: str
    description: str
    expression: str
    priority: int | None
    size: int  # members
    primary_size: int  # members whose primary segment this is
    share: float  # size / all customers of the version
    nps: NpsResult  # over members who ever answered, with its 95% margin of error


class SegmentsFile(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = SERVING_FORMAT
    customers: int
    segments: list[SegmentInfo]


# --- the files -----------------------------------------------------------------------------------

_record_decoder = msgspec.json.Decoder(dict[str, Any])
_profiles_file_decoder = msgspec.json.Decoder(ProfilesFile)
_segments_file_decoder = msgspec.json.Decoder(SegmentsFile)


@lru_cache(maxsize=64)
def row_type(fields: tuple[str, ...]) -> type[msgspec.Struct]:
    """A Struct holding just `fields` of a profile record, decoded straight from its JSON.

    Decoding into it skips every other key without building it, which makes an export several
    times faster than decoding whole records. Field names are arbitrary column names (a shop's own
    attributes), so the Python names are positional and `rename` maps them to the columns.
    """
    names = [f"f{i}" for i in range(len(fields))]
    return msgspec.defstruct(
        "ProfileRow",
        [(name, object, None) for name in names],
        rename=dict(zip(names, fields, strict=True)),
        # Rows hold plain values (no cycles), so the cyclic collector need not track them: an
        # export builds millions, and tracking them made collections the larger part of its time.
        gc=False,
    )


def _decode(path: Path, decoder: msgspec.json.Decoder[Any]) -> Any:
    try:
        return decoder.decode(path.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(
            f"{where(path)}: missing; this version has no profile tables (retrain to add them)"
        ) from None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ArtifactError(f"{where(path)}: unreadable: {reason(exc)}") from None


class RecordFile:
    """JSON lines, one per customer, memory-mapped, with their int64 byte offsets (n + 1)."""

    def __init__(self, data: memoryview, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets

    @classmethod
    def open(cls, path: Path, offsets_path: Path, customers: int) -> RecordFile:
        offsets = load_array(offsets_path, "int64")
        data = map_bytes(path)
        if offsets.size != customers + 1 or int(offsets[-1]) != len(data):
            raise ArtifactError(
                f"{where(path)}: {offsets.size - 1} records of {len(data)} bytes do not match "
                f"the artifact's {customers} customers"
            )
        return cls(data, offsets)

    def one(self, index: int) -> memoryview:
        return self.data[int(self.offsets[index]) : int(self.offsets[index + 1])]

    def many(self, indices: np.ndarray) -> bytes | memoryview:
        """These records' lines, concatenated (zero-copy for a contiguous run of indices)."""
        if indices.size == 0:
            return b""
        first, last = int(indices[0]), int(indices[-1])
        if last - first + 1 == indices.size:
            return self.data[int(self.offsets[first]) : int(self.offsets[last + 1])]
        data = self.data
        starts = self.offsets[indices].tolist()
        ends = self.offsets[indices + 1].tolist()
        return b"".join([data[s:e] for s, e in zip(starts, ends, strict=True)])


class Profiles:
    """The profile records and segment lists of one version (see the module docstring)."""

    def __init__(
        self,
        *,
        customer_ids: np.ndarray,
        records: RecordFile,
        columns: Sequence[ProfileColumn],
        segments: Sequence[SegmentInfo],
        indptr: np.ndarray,
        members: np.ndarray,
        export_records: RecordFile | None = None,
        export_columns: Sequence[str] = (),
    ) -> None:
        self.customer_ids = customer_ids
        self._records = records
        self._export_records = export_records
        self._export_columns = frozenset(export_columns if export_records is not None else ())
        self.columns: tuple[ProfileColumn, ...] = tuple(columns)
        self.column_types: dict[str, str] = {col.name: col.type for col in columns}
        self._segments = tuple(segments)
        self._segment_index = {info.name: k for k, info in enumerate(segments)}
        self._indptr = indptr
        self._members = members

    @classmethod
    def open(cls, directory: Path, customer_ids: np.ndarray | None = None) -> Profiles:
        """Open a version directory's profile tables; ArtifactError when missing or inconsistent.

        `customer_ids` is the artifact's sorted id array (read from `customer_ids.npy` if omitted).
        """
        if customer_ids is None:
            customer_ids = load_array(directory / "customer_ids.npy", "U")
        n = int(customer_ids.size)
        schema: ProfilesFile = _decode(directory / PROFILES_SCHEMA, _profiles_file_decoder)
        segments: SegmentsFile = _decode(directory / SEGMENTS_JSON, _segments_file_decoder)
        if schema.customers != n or segments.customers != n:
            raise ArtifactError(
                f"version {directory.name}: profile tables hold {schema.customers} customers, the artifact {n}"
            )
        records = RecordFile.open(directory / PROFILES_BIN, directory / PROFILE_OFFSETS, n)
        export_records = None
        if schema.export_columns:
            export_records = RecordFile.open(directory / EXPORT_BIN, directory / EXPORT_OFFSETS, n)
        indptr = load_array(directory / SEGMENT_INDPTR, "int64")
        members = load_array(directory / SEGMENT_MEMBERS, "int32")
        if indptr.size != len(segments.segments) + 1 or int(indptr[-1]) != members.size:
            raise ArtifactError(
                f"version {directory.name}: segment lists do not match segments.json"
            )
        return cls(
            customer_ids=customer_ids,
            records=records,
            columns=schema.columns,
            segments=segments.segments,
            indptr=indptr,
            members=members,
            export_records=export_records,
            export_columns=schema.export_columns,
        )

    def __len__(self) -> int:
        return int(self.customer_ids.size)

    # --- one customer ----------------------------------------------------------------------------

    def index_of(self, customer_id: str) -> int | None:
        return find_sorted(self.customer_ids, customer_id)

    def record(self, index: int) -> dict[str, Any]:
        """One customer's profile: a fresh JSON-ready dict of every column (safe to update)."""
        record: dict[str, Any] = _record_decoder.decode(self._records.one(index))
        return record

    def typed(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of a record with dates and datetimes as Python objects, as the segment rules'
        `evaluate` compares them (`SegmentRules.memberships(profiles.typed(record))`)."""
        out = dict(record)
        for name, value in record.items():
            if not isinstance(value, str):
                continue
            kind = self.column_types.get(name)
            if kind == ColumnType.DATE:
                out[name] = dt.date.fromisoformat(value)
            elif kind == ColumnType.DATETIME:
                out[name] = times.parse_iso(value)
        return out

    # --- segments --------------------------------------------------------------------------------

    def segments(self) -> list[SegmentInfo]:
        return list(self._segments)

    def segment(self, name: str) -> SegmentInfo:
        index = self._segment_index.get(name)
        if index is None:
            raise NotFoundError(f"no segment {name!r} in this model version")
        return self._segments[index]

    def members(self, name: str) -> np.ndarray:
        """The segment's customer indices, ascending (a read-only view, no copy)."""
        k = self._segment_index.get(name)
        if k is None:
            raise NotFoundError(f"no segment {name!r} in this model version")
        return self._members[int(self._indptr[k]) : int(self._indptr[k + 1])]

    # --- many customers --------------------------------------------------------------------------

    def rows(
        self, indices: np.ndarray, row: type[msgspec.Struct], fields: Collection[str]
    ) -> list[Any]:
        """These customers' `fields` decoded into `row` (see `row_type`), in the given order.

        Reads the narrow export records when they hold every field, the full records otherwise.
        """
        source = self._records
        if self._export_records is not None and self._export_columns.issuperset(fields):
            source = self._export_records
        rows: list[Any] = _rows_decoder(row).decode_lines(source.many(indices))
        return rows


@lru_cache(maxsize=64)
def _rows_decoder(row: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(row)
