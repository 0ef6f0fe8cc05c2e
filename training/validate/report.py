"""What validation found: the report written as validation_report.json, and its summary for people."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec


class TableReport(msgspec.Struct, kw_only=True, frozen=True):
    """What validation found in one table.
    rows_read = valid + duplicates_collapsed + rejected + suppressed."""

    table: str
    file: str
    format: str
    rows_read: int = 0
    valid: int = 0  # rows in clean/<table>.parquet
    duplicates_collapsed: int = 0  # exact re-imports folded into an earlier identical row
    rejected: int = 0  # rows in the quarantine: contract errors, key conflicts and orphans
    key_conflicts: int = 0  # of those, rows repeating a key with different content
    orphans: int = 0  # of those, rows naming an unknown customer or product
    # Rows of erased customers dropped before anything was written (`training.validate.suppression`).
    suppressed: int = 0
    rejected_share: float = 0.0  # rejected / rows_read
    top_reasons: dict[str, int] = msgspec.field(default_factory=dict)  # problem -> rows, most first
    warnings: list[str] = msgspec.field(default_factory=list)
    seconds: float = 0.0


class ValidationReport(msgspec.Struct, kw_only=True, frozen=True):
    """The machine-readable outcome of `validate_dataset`, written as validation_report.json."""

    ok: bool
    data_dir: str
    out_dir: str
    max_rejected_share: float
    tables: list[TableReport] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)  # about the folder as a whole
    failure: str | None = None  # why `ok` is false
    validated_at: str = ""  # ISO 8601, UTC
    seconds: float = 0.0


REPORT_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ValidationResult:
    report: ValidationReport
    report_path: Path
    quarantine_path: Path
    clean_paths: dict[str, Path]  # by table name


def format_summary(report: ValidationReport) -> str:
    """A few human-readable lines per table: counts, the top reasons, warnings."""
    outcome = "passed" if report.ok else "FAILED"
    lines = [f"validation {outcome}: {report.data_dir} -> {report.out_dir} ({report.seconds:.1f}s)"]
    lines.extend(f"  warning: {w}" for w in report.warnings)
    for t in report.tables:
        breakdown = [f"{t.orphans:,} orphans"] if t.orphans else []
        breakdown += [f"{t.key_conflicts:,} key conflicts"] if t.key_conflicts else []
        lines.append(
            f"{t.table} ({Path(t.file).name}): {t.rows_read:,} rows read, {t.valid:,} valid, "
            f"{t.duplicates_collapsed:,} duplicates collapsed, "
            f"{t.rejected:,} rejected ({t.rejected_share:.1%})"
            + (f", of which {' and '.join(breakdown)}" if breakdown else "")
            + (f"; {t.suppressed:,} of erased customers suppressed" if t.suppressed else "")
        )
        lines.extend(f"  {count:,} x {reason}" for reason, count in list(t.top_reasons.items())[:3])
        lines.extend(f"  warning: {w}" for w in t.warnings)
    if report.failure:
        lines.append(report.failure)
    return "\n".join(lines)
