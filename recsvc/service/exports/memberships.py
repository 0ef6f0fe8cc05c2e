"""The segment membership history as an export (`GET /v1/segments/memberships`): one row per spell
a customer spent in a segment, replayed from the store's membership journal
(`recsvc.store.memberships`), streamed as CSV, NDJSON or Parquet by the member export's encoders.

Columns: `segment`, `customer_id`, `entered_at` and `exited_at` (when the activation that put the
customer in, or took them out, happened; `exited_at` is empty while they are a member),
`entered_version` and `exited_version`. (`segment`, `customer_id`, `entered_at`) is a row's key:
a spell, once closed, never changes, so a reverse-ETL tool diffs by it. `since` keeps the spells
that started or ended at or after a moment. A customer on the suppression list is left out of the
spells that started at or before their erasure (the erasure removes them from the journal too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Final

from recsvc.domain.privacy import Suppression
from recsvc.domain.times import parse_iso, utc
from recsvc.errors import InvalidRequest, shown
from recsvc.service.exports.base import (
    CHUNK_ROWS,
    MEDIA_TYPES,
    UNSAFE_FILENAME,
    ExportFormat,
)
from recsvc.service.exports.plan import encoded, parse_format
from recsvc.store.base import MembershipJournal
from recsvc.store.memberships import ActivationInfo, Spell
from recsvc.version.profiles import ColumnType, row_type

COLUMN_TYPES: Final = {
    "segment": ColumnType.STRING,
    "customer_id": ColumnType.STRING,
    "entered_at": ColumnType.DATETIME,
    "exited_at": ColumnType.DATETIME,
    "entered_version": ColumnType.STRING,
    "exited_version": ColumnType.STRING,
}
COLUMNS: Final = tuple(COLUMN_TYPES)


def parse_since(value: str | None) -> dt.datetime | None:
    """`since`: an ISO 8601 timestamp with its time zone (a naive one would be a guess)."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise InvalidRequest(
                f"since: {shown(value)} has no time zone; add one, e.g. Z or +01:00"
            )
        return utc(moment)
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"since: not an ISO 8601 timestamp, e.g. 2025-12-30T00:00:00Z (got {shown(value)}); "
            "a '+' in a query string is a space: send it as %2B"
        ) from None


@dataclass(frozen=True, slots=True)
class MembershipExport:
    format: ExportFormat
    since: dt.datetime | None
    latest: ActivationInfo | None  # the journal's last activation the export reflects
    spells: Iterator[Spell]
    suppression: Suppression
    segment: str = "memberships"  # what the encoders call an export (Parquet's thread name)

    @property
    def columns(self) -> tuple[str, ...]:
        return COLUMNS

    @property
    def column_types(self) -> dict[str, str]:
        return COLUMN_TYPES

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def filename(self) -> str:
        parts = ["memberships"]
        if self.latest is not None:
            parts.append(self.latest.version)
        if self.since is not None:
            parts += ["since", f"{self.since:%Y%m%dT%H%M%SZ}"]
        return f"{UNSAFE_FILENAME.sub('_', '-'.join(parts))}.{self.format.value}"

    def row_chunks(self) -> Iterator[list[Any]]:
        row = row_type(COLUMNS)
        erased_at = self.suppression.erased_at
        chunk: list[Any] = []
        for spell in self.spells:
            at = erased_at(spell.customer_id) if self.suppression else None
            if at is not None and parse_iso(spell.entered_at) <= at:
                continue  # a returning customer's later spells stay
            chunk.append(
                row(
                    spell.segment,
                    spell.customer_id,
                    spell.entered_at,
                    spell.exited_at,
                    spell.entered_version,
                    spell.exited_version,
                )
            )
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def chunks(self) -> Generator[bytes, None, None]:
        """The encoded file, piece by piece; ExportFailed (logged) if it cannot be finished."""
        return encoded(self, self.format, f"the membership history ({self.format.value})")


def plan_memberships(
    journal: MembershipJournal,
    suppression: Suppression,
    *,
    export_format: str | None = None,
    since: str | None = None,
) -> MembershipExport:
    """Check the parameters and read the journal's entries (the parts are read as the body is
    written); InvalidRequest naming a bad parameter, StoreUnavailable."""
    fmt = parse_format(export_format)
    moment = parse_since(since)
    latest = journal.latest()
    spells = journal.spells(moment, through=latest.seq if latest is not None else 0)
    return MembershipExport(fmt, moment, latest, spells, suppression)
