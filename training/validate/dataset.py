"""Validated ingestion ("NPS data syncing"): check a shop's tables against the data contract.

`validate_dataset` reads every table of a data folder with polars, parses each field by the rules of
`recsvc.domain.contract` (exactly the decisions the service's live intake makes with `check_value`),
collapses exact re-imports, quarantines bad rows, conflicting keys and orphans with a reason, and
writes the clean tables as Parquet in contract dtypes plus a JSON report. Given the store's
suppression list, it first drops the rows of erased customers (`training.validate.suppression`), so
neither output holds them. Row-level work is polars expressions (`training.validate.rows`); the
per-table steps stream through Parquet files in a scratch folder.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import contract, times
from recsvc.domain.contract import TABLES, Kind, Table
from recsvc.domain.privacy import Suppression
from recsvc.errors import ConfigError, DataContractError
from training.progress import Progress
from training.validate.fields import parse
from training.validate.folder import DataFolder, TableFile, locate_tables, read_errors, scan_table
from training.validate.report import REPORT_ENCODER, TableReport, ValidationReport, ValidationResult
from training.validate.rows import (
    CONFLICT,
    ORPHAN,
    PROBLEMS,
    SOURCE,
    ColumnPlan,
    KnownKeys,
    check_rows,
    mark_rows,
    plan_columns,
    settle_rows,
)
from training.validate.suppression import EVENT_TIMES, ErasedCustomers

if TYPE_CHECKING:
    from polars._typing import ParquetCompression

CLEAN_DIR = "clean"
QUARANTINE_FILE = "quarantine.csv"
REPORT_FILE = "validation_report.json"
# Quarantine columns besides the contract's `_file`, `_row`, `_reason`.
QUARANTINE_TABLE = "table"
QUARANTINE_RAW = "raw"
TOP_REASONS = 10
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _OpenTable:
    source: TableFile
    frame: pl.LazyFrame
    schema: pl.Schema
    plan: ColumnPlan
    contract_columns_as_text: bool = False

    @classmethod
    def open(cls, source: TableFile, *, contract_columns_as_text: bool = False) -> _OpenTable:
        """Scan `source` and check its columns; raise when a required column is missing."""
        frame = scan_table(source, contract_columns_as_text=contract_columns_as_text)
        with read_errors(source.path, source.format):
            schema = frame.collect_schema()
        plan = plan_columns(source.table, schema)
        if plan.missing:
            raise DataContractError(_missing_columns_message(source, plan.missing, list(schema)))
        return cls(source, frame, schema, plan, contract_columns_as_text)

    def rescan(self) -> pl.LazyFrame:
        return scan_table(self.source, contract_columns_as_text=self.contract_columns_as_text)


def validate_dataset(
    data_dir: Path,
    out_dir: Path,
    *,
    max_rejected_share: float = 0.05,
    show_progress: bool = True,
    now: dt.datetime | None = None,
    suppression: Suppression | None = None,
) -> ValidationResult:
    """Validate the tables in `data_dir`; write clean Parquet, the quarantine and a report to `out_dir`.

    The rows of erased customers that `suppression` (the store's list) suppresses are dropped
    before either is written, and counted per table (`TableReport.suppressed`).

    Raises `DataContractError` (one line, naming the file) when a required table or column is
    missing, a file cannot be read, or a table's rejected share exceeds `max_rejected_share`; in
    the last case the report and quarantine are written first.
    """
    if not 0.0 <= max_rejected_share <= 1.0:
        raise ConfigError(f"max_rejected_share must be between 0 and 1, got {max_rejected_share}")
    started = time.perf_counter()
    now = now or times.now()  # one clock for every table: what "in the future" means
    folder = locate_tables(data_dir)
    tables = _open_tables(folder)
    suppressed = _suppressed_rows(tables, suppression or Suppression(), now)
    clean_paths = _clear_outputs(out_dir, tables)
    known = _KnownKeys(clean_paths)
    quarantine_path, report_path = out_dir / QUARANTINE_FILE, out_dir / REPORT_FILE
    reports: list[TableReport] = []
    with tempfile.TemporaryDirectory(prefix=".validate-", dir=out_dir) as scratch_dir:
        quarantined: list[pl.LazyFrame] = []
        for name, table in tables.items():
            table_report, rejected_rows = _validate_table(
                table,
                Path(scratch_dir),
                clean_paths[name],
                known,
                show_progress,
                now,
                suppressed.get(name),
            )
            reports.append(table_report)
            quarantined.append(rejected_rows)
        _write_quarantine(quarantined, quarantine_path)
    over = [t for t in reports if t.rejected_share > max_rejected_share]
    failure = None
    if over:
        listed = ", ".join(
            f"{t.file} {t.rejected_share:.1%} ({t.rejected:,} of {t.rows_read:,} rows)"
            for t in over
        )
        failure = (
            f"too many rejected rows (more than {max_rejected_share:.1%}): {listed}; "
            f"see {quarantine_path} and {report_path}"
        )
    report = ValidationReport(
        ok=failure is None,
        data_dir=str(data_dir),
        out_dir=str(out_dir),
        max_rejected_share=max_rejected_share,
        tables=reports,
        warnings=list(folder.warnings),
        failure=failure,
        validated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 3),
    )
    report_path.write_bytes(REPORT_ENCODER.encode(report) + b"\n")
    if failure is not None:
        raise DataContractError(failure)
    return ValidationResult(
        report=report,
        report_path=report_path,
        quarantine_path=quarantine_path,
        clean_paths=clean_paths,
    )


def read_clean_tables(clean_dir: Path) -> dict[str, pl.LazyFrame]:
    """Scan the validator's `<table>.parquet` files in `clean_dir`; optional tables (CSAT, CES) may
    be absent."""
    tables: dict[str, pl.LazyFrame] = {}
    for name, spec in TABLES.items():
        path = clean_dir / f"{name}.parquet"
        if path.exists():
            tables[name] = pl.scan_parquet(path)
        elif spec.required:
            raise DataContractError(f"{clean_dir}: missing validated table {path.name}")
    return tables


def _clear_outputs(out_dir: Path, tables: Iterable[str]) -> dict[str, Path]:
    """Remove what an earlier validation wrote into `out_dir`; return the clean table paths."""
    clean_dir = out_dir / CLEAN_DIR
    clean_dir.mkdir(parents=True, exist_ok=True)
    # Nothing from an earlier run may outlive a failed one: no stale table may reach training.
    stale = [clean_dir / f"{name}.parquet" for name in contract.TABLE_ORDER]
    for path in [*stale, out_dir / QUARANTINE_FILE, out_dir / REPORT_FILE]:
        path.unlink(missing_ok=True)
    return {name: clean_dir / f"{name}.parquet" for name in tables}


def _open_tables(folder: DataFolder) -> dict[str, _OpenTable]:
    # Every file's schema is checked before any row is read, so a missing column fails fast.
    return {name: _OpenTable.open(source) for name, source in folder.files.items()}


def _read_as_text_if_needed(
    table: _OpenTable, work: Callable[[_OpenTable], T]
) -> tuple[_OpenTable, T]:
    """`work` on the table, and the table as it was read: an NDJSON table is read again with its
    contract columns as text when a JSON column polars typed from its values holds a value it
    cannot read that way (`work` raises DataContractError)."""
    try:
        return table, work(table)
    except DataContractError:
        if table.source.format != "ndjson" or table.contract_columns_as_text:
            raise
        table = _OpenTable.open(table.source, contract_columns_as_text=True)
        return table, work(table)


def _collected(table: _OpenTable, query: Callable[[_OpenTable], pl.LazyFrame]) -> pl.DataFrame:
    """`query` of a table, collected, read as stage one reads it (`_read_as_text_if_needed`)."""

    def collect(read: _OpenTable) -> pl.DataFrame:
        with read_errors(read.source.path, read.source.format):
            return query(read).collect()

    return _read_as_text_if_needed(table, collect)[1]


def _customer_id(schema: pl.Schema) -> pl.Expr:
    """A row's customer id as stage one reads it (null where it cannot)."""
    return parse(Kind.ID, pl.col(c.CUSTOMER_ID), schema[c.CUSTOMER_ID], None).value


def _named_customers(tables: dict[str, _OpenTable]) -> Iterator[str]:
    """Every distinct customer id the tables name, valid rows or not: a quarantined row of an
    erased customer must go too."""
    named: set[str] = set()
    for table in tables.values():
        if c.CUSTOMER_ID in table.schema:
            ids = _collected(table, lambda t: t.frame.select(_customer_id(t.schema).unique()))
            named.update(ids.to_series().drop_nulls().cast(pl.String).to_list())
    yield from named


def _suppressed_rows(
    tables: dict[str, _OpenTable], suppression: Suppression, now: dt.datetime
) -> dict[str, pl.Series]:
    """The row numbers (`_row`) of each table's rows that `suppression` suppresses (see
    `training.validate.suppression`); reads nothing while the list is empty.

    Only the erased customers' rows are checked here, as stage one checks them: who of them came
    back (a valid row in a dated table after their erasure) decides their customers row. Stage one
    then skips these rows before any check, which costs the other rows nothing."""
    erased = ErasedCustomers.among(_named_customers(tables), suppression)
    if not erased:
        return {}

    def theirs(table: _OpenTable) -> pl.LazyFrame:
        spec = table.source.table
        rows = table.frame.with_row_index(c.SOURCE_ROW, offset=1).filter(
            _customer_id(table.schema).is_in(erased.ids.implode())
        )
        dated = [EVENT_TIMES[spec.name]] if spec.name in EVENT_TIMES else []
        checked = check_rows(rows, spec, table.schema, now)
        return checked.select(c.SOURCE_ROW, c.CUSTOMER_ID, c.REJECT_REASON, *dated)

    checked = {
        name: _collected(table, theirs)
        for name, table in tables.items()
        if c.CUSTOMER_ID in table.schema
    }
    returning = [
        erased.came_back(rows.lazy().filter(pl.col(c.REJECT_REASON).is_null()), EVENT_TIMES[name])
        for name, rows in checked.items()
        if name in EVENT_TIMES
    ]
    if returning:
        erased = erased.with_returning(pl.concat(returning).collect().to_series())
    suppressed = {}
    for name, rows in checked.items():
        drops = erased.drops(name)
        if drops is not None:
            suppressed[name] = rows.filter(drops)[c.SOURCE_ROW]
    return suppressed


def _missing_columns_message(source: TableFile, missing: Iterable[str], found: list[str]) -> str:
    shown = ", ".join(_shown_name(n) for n in found[:20]) + (", ..." if len(found) > 20 else "")
    message = f"{source.path}: missing required column(s) {', '.join(missing)}; found: {shown or 'no columns'}"
    if source.format == "csv" and len(found) == 1:
        for delimiter, spelled in ((";", "';'"), ("\t", "a tab")):
            if delimiter in found[0]:
                message += f" (the delimiter looks like {spelled}; tables must be comma-separated)"
                break
    return message


def _shown_name(name: str) -> str:
    text = repr(name)  # keeps the message on one line, whatever the header holds
    return text if len(text) <= 60 else text[:57] + "..."


class _KnownKeys:
    """The keys of already validated tables, read once from their clean Parquet."""

    def __init__(self, clean_paths: dict[str, Path]) -> None:
        self._paths = clean_paths
        self._keys: dict[tuple[str, str], pl.Series] = {}

    def __call__(self, table: str, column: str) -> pl.Series:
        if (table, column) not in self._keys:
            path = self._paths.get(table)
            if path is None or not path.exists():
                keys = pl.Series(column, [], pl.String)
            else:
                keys = pl.scan_parquet(path).select(pl.col(column).unique()).collect().to_series()
            self._keys[(table, column)] = keys
        return self._keys[(table, column)]


@dataclass(frozen=True, slots=True)
class _Scratch:
    """One table's scratch files, each written by a stage and read soon after."""

    valid: Path  # stage one's valid rows
    invalid: Path  # stage one's rejected rows, with their raw text
    settled: Path  # stage two's rejected rows: repeated keys and orphans

    @classmethod
    def of(cls, folder: Path, table: str) -> _Scratch:
        return cls(
            *(folder / f"{table}.{part}.parquet" for part in ("valid", "invalid", "settled"))
        )


@dataclass(frozen=True, slots=True)
class _Rejected:
    """What a table's quarantine holds, counted."""

    rows: int
    key_conflicts: int
    orphans: int
    top_reasons: dict[str, int]  # problem -> rows, most first

    @classmethod
    def count(cls, files: _Scratch) -> _Rejected:
        quarantined = pl.concat(
            [
                pl.scan_parquet(files.invalid).select(
                    PROBLEMS, ORPHAN, pl.lit(False).alias(CONFLICT)
                ),
                pl.scan_parquet(files.settled).select(PROBLEMS, ORPHAN, CONFLICT),
            ]
        )
        counts = (
            quarantined.select(pl.len(), pl.col(CONFLICT).sum(), pl.col(ORPHAN).sum())
            .collect()
            .row(0)
        )
        rows, conflicts, orphans = (int(n or 0) for n in counts)
        top = (
            quarantined.select(pl.col(PROBLEMS).explode().drop_nulls())
            .group_by(PROBLEMS)
            .len()
            .sort(["len", PROBLEMS], descending=[True, False])
            .head(TOP_REASONS)
            .collect()
        )
        reasons = dict(zip(top[PROBLEMS].to_list(), top["len"].to_list(), strict=True))
        return cls(rows, conflicts, orphans, reasons)


def _validate_table(
    table: _OpenTable,
    scratch: Path,
    clean_path: Path,
    known: _KnownKeys,
    show_progress: bool,
    now: dt.datetime,
    suppressed: pl.Series | None,
) -> tuple[TableReport, pl.LazyFrame]:
    """Run both stages for one table, without the `suppressed` rows (row numbers: an erased
    customer's); return its report and its quarantine rows (lazy)."""
    started = time.perf_counter()
    spec = table.source.table
    progress = Progress(f"validate {spec.name}", unit="rows", enabled=show_progress)
    files = _Scratch.of(scratch, spec.name)
    table = _check_stage(table, known, files, now, suppressed)
    valid_rows, invalid_rows = _row_count(files.valid), _row_count(files.invalid)
    suppressed_rows = suppressed.len() if suppressed is not None else 0
    rows_read = valid_rows + invalid_rows + suppressed_rows
    if time.perf_counter() - started >= progress.every_seconds:
        progress.advance(rows_read)  # a line between the stages of a long table
    else:
        progress.done = rows_read
    _settle_stage(table, known, files, clean_path)
    rejected = _Rejected.count(files)
    clean_rows = _row_count(clean_path)
    marked_rows = rejected.rows - invalid_rows
    report = TableReport(
        table=spec.name,
        file=str(table.source.path),
        format=table.source.format,
        rows_read=rows_read,
        valid=clean_rows,
        duplicates_collapsed=valid_rows - clean_rows - marked_rows,
        rejected=rejected.rows,
        key_conflicts=rejected.key_conflicts,
        orphans=rejected.orphans,
        suppressed=suppressed_rows,
        rejected_share=round(rejected.rows / rows_read, 6) if rows_read else 0.0,
        top_reasons=rejected.top_reasons,
        warnings=_column_warnings(spec, table.plan) + _reference_warnings(spec, clean_path, known),
        seconds=round(time.perf_counter() - started, 3),
    )
    progress.finish()
    return report, _quarantine_rows(table, files, marked_rows)


# Scratch files are read once, soon after: lz4 writes and reads fastest. Clean tables stay compact.
_SCRATCH: ParquetCompression = "lz4"
_CLEAN: ParquetCompression = "zstd"


def _check_stage(
    table: _OpenTable,
    known: KnownKeys,
    files: _Scratch,
    now: dt.datetime,
    suppressed: pl.Series | None,
) -> _OpenTable:
    """Stage one, streamed: valid rows to `files.valid`, rejected ones (with raw) to `files.invalid`.

    Returns the table as it was read (`_read_as_text_if_needed`).
    """
    read, _ = _read_as_text_if_needed(
        table, lambda t: _sink_checked(t, known, files, now, suppressed)
    )
    return read


def _sink_checked(
    table: _OpenTable,
    known: KnownKeys,
    files: _Scratch,
    now: dt.datetime,
    suppressed: pl.Series | None,
) -> None:
    spec = table.source.table
    rows = table.frame.with_row_index(c.SOURCE_ROW, offset=1)
    if suppressed is not None and suppressed.len():
        # Before any check: neither the clean table nor the quarantine (which keeps a row's raw
        # text) may hold an erased customer's row.
        rows = rows.filter(~pl.col(c.SOURCE_ROW).is_in(suppressed.implode()))
    checked = check_rows(rows, spec, table.schema, now)
    is_valid = pl.col(c.REJECT_REASON).is_null()
    # A rejected row's reason names its unknown references too (valid rows: in stage two).
    rejected = mark_rows(checked.filter(~is_valid), spec, known=known).select(
        c.SOURCE_ROW,
        c.REJECT_REASON,
        PROBLEMS,
        ORPHAN,
        pl.col(SOURCE).struct.json_encode().alias(QUARANTINE_RAW),
    )
    with read_errors(table.source.path, table.source.format):
        _sink_all(
            (
                checked.filter(is_valid).select(c.SOURCE_ROW, *table.plan.output),
                files.valid,
                _SCRATCH,
            ),
            (rejected, files.invalid, _SCRATCH),
        )


def _settle_stage(table: _OpenTable, known: KnownKeys, files: _Scratch, clean_path: Path) -> None:
    """Stage two, streamed: kept rows to the clean table, marked ones to `files.settled`."""
    output = list(table.plan.output)
    is_valid = pl.col(c.REJECT_REASON).is_null()
    settled = settle_rows(pl.scan_parquet(files.valid), table.source.table, output, known)
    _sink_all(
        (settled.filter(is_valid).select(output), clean_path, _CLEAN),
        (
            settled.filter(~is_valid).select(
                c.SOURCE_ROW, c.REJECT_REASON, PROBLEMS, CONFLICT, ORPHAN
            ),
            files.settled,
            _SCRATCH,
        ),
    )


def _sink_all(*outputs: tuple[pl.LazyFrame, Path, ParquetCompression]) -> None:
    # All outputs come from one pass over the input (polars shares the common plan).
    pl.collect_all(
        [
            frame.sink_parquet(path, compression=compression, lazy=True)
            for frame, path, compression in outputs
        ],
        engine="streaming",
    )


def _row_count(path: Path) -> int:
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def _column_warnings(table: Table, plan: ColumnPlan) -> list[str]:
    warnings = []
    if plan.dropped:
        why = (
            "not in the contract"
            if not table.extra_columns
            else "no text form, or a reserved '_' name"
        )
        warnings.append(f"dropped column(s) {', '.join(map(_shown_name, plan.dropped))} ({why})")
    if plan.extras:
        warnings.append(
            f"kept extra attribute column(s) as text: {', '.join(map(_shown_name, plan.extras))}"
        )
    if plan.absent:
        filled = ", ".join(
            f"{n}={table.by_name[n].default!r}"
            if table.by_name[n].default is not None
            else f"{n}=null"
            for n in plan.absent
        )
        warnings.append(f"optional column(s) absent, filled in: {filled}")
    return warnings


def _reference_warnings(table: Table, clean_path: Path, known: _KnownKeys) -> list[str]:
    # A survey response may name an order we do not have: its order_id is optional, so it is kept.
    order_id = table.by_name.get(c.ORDER_ID)
    if order_id is None or order_id.required:
        return []
    responses = pl.scan_parquet(clean_path).filter(pl.col(c.ORDER_ID).is_not_null())
    if responses.select(pl.len()).collect().item() == 0:
        return []  # no need to gather the order ids
    # An anti-join: `is_in` with millions of order ids is several times slower here.
    orders = known(c.ORDERS, c.ORDER_ID).to_frame().lazy()
    unknown = responses.join(orders, on=c.ORDER_ID, how="anti").select(pl.len()).collect().item()
    if not unknown:
        return []
    return [
        f"{unknown:,} response(s) name an order_id that is not in orders (kept: order_id is optional)"
    ]


_QUARANTINE_SCHEMA = {
    QUARANTINE_TABLE: pl.String,
    c.SOURCE_FILE: pl.String,
    c.SOURCE_ROW: pl.Int64,
    c.REJECT_REASON: pl.String,
    QUARANTINE_RAW: pl.String,
}


def _quarantine_rows(table: _OpenTable, files: _Scratch, settled_rows: int) -> pl.LazyFrame:
    source = table.source
    parts = [pl.scan_parquet(files.invalid).select(c.SOURCE_ROW, c.REJECT_REASON, QUARANTINE_RAW)]
    if settled_rows:
        # Rows rejected in stage two passed stage one, so their raw text is read again from the file.
        marked = pl.scan_parquet(files.settled).select(c.SOURCE_ROW, c.REJECT_REASON)
        raw = (
            table.rescan()
            .with_row_index(c.SOURCE_ROW, offset=1)
            .join(marked.select(c.SOURCE_ROW), on=c.SOURCE_ROW, how="semi")
            .select(
                c.SOURCE_ROW,
                pl.struct(pl.col(list(table.schema))).struct.json_encode().alias(QUARANTINE_RAW),
            )
        )
        parts.append(marked.join(raw, on=c.SOURCE_ROW, how="left"))
    return (
        pl.concat(parts)
        .sort(c.SOURCE_ROW)
        .select(
            pl.lit(source.table.name).alias(QUARANTINE_TABLE),
            pl.lit(source.path.name).alias(c.SOURCE_FILE),
            pl.col(c.SOURCE_ROW).cast(pl.Int64),
            c.REJECT_REASON,
            QUARANTINE_RAW,
        )
    )


def _write_quarantine(parts: list[pl.LazyFrame], path: Path) -> None:
    if not parts:
        pl.DataFrame(schema=_QUARANTINE_SCHEMA).write_csv(path)
        return
    pl.concat(parts).sink_csv(path)
