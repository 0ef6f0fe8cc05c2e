"""An experiment's assignments as an export (`GET /v1/experiments/{id}/assignments`): one row per
customer the nightly run found in the exposure log, from the active version, streamed as CSV,
NDJSON or Parquet by the member export's encoders.

Columns: `experiment`, `offer_id`, `customer_id`, `arm`, `assigned_at` (the customer's first
eligible request: the start of their outcome window) and `exposures` (requests that showed the
offer; 0 in the holdout). Customers on the suppression list are left out.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from recsvc.domain.experiments import Assignment
from recsvc.domain.privacy import Suppression
from recsvc.domain.times import iso
from recsvc.service.exports.base import CHUNK_ROWS, MEDIA_TYPES, UNSAFE_FILENAME, ExportFormat
from recsvc.service.exports.plan import encoded
from recsvc.version.profiles import ColumnType, row_type

COLUMN_TYPES: Final = {
    "experiment": ColumnType.STRING,
    "offer_id": ColumnType.STRING,
    "customer_id": ColumnType.STRING,
    "arm": ColumnType.STRING,
    "assigned_at": ColumnType.DATETIME,
    "exposures": ColumnType.INTEGER,
}
COLUMNS: Final = tuple(COLUMN_TYPES)


@dataclass(frozen=True, slots=True)
class AssignmentExport:
    format: ExportFormat
    version: str
    experiment: str
    assignments: Sequence[Assignment]
    suppression: Suppression

    @property
    def segment(self) -> str:  # what the encoders call an export (Parquet's thread name)
        return f"assignments-{self.experiment}"

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
        stem = UNSAFE_FILENAME.sub("_", f"assignments-{self.experiment}-{self.version}")
        return f"{stem}.{self.format.value}"

    def row_chunks(self) -> Iterator[list[Any]]:
        row = row_type(COLUMNS)
        chunk: list[Any] = []
        for a in self.assignments:
            if self.suppression and self.suppression.erased_at(a.customer_id) is not None:
                continue
            chunk.append(
                row(a.experiment, a.offer_id, a.customer_id, a.arm, iso(a.assigned_at), a.exposures)
            )
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def chunks(self) -> Generator[bytes, None, None]:
        return encoded(self, self.format, f"the assignments of {self.experiment!r}")
