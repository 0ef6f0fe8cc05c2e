"""The segmentation step of a run: clean tables in, customer table, segment lists and NPS report out.

Order of work: load and check the segment rules against the data's columns (a bad rule fails here,
before anything is computed), date the run, compute the order facts once (shared by the customer
table and the report), build the customer table, write it with the membership table, then build and
write the report. Outputs in `out_dir`: customers.parquet, segment_members.parquet,
nps_report.json, nps_report.html.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLES
from recsvc.domain.segment_rules import SegmentRules, load_segments
from recsvc.errors import DataContractError
from training.customers.features import (
    SegmentationConfig,
    build_customer_table,
    extra_attribute_columns,
    index_customers,
    order_facts,
    resolve_as_of,
)
from training.customers.segments import SegmentArtifacts, write_segment_artifacts
from training.progress import Progress
from training.report.build import NpsReport, build_report, write_report


def read_clean_tables(clean_dir: Path) -> dict[str, pl.LazyFrame]:
    """Scan the validator's `<table>.parquet` files; optional tables (CSAT, CES) may be absent."""
    tables: dict[str, pl.LazyFrame] = {}
    for name, spec in TABLES.items():
        path = clean_dir / f"{name}.parquet"
        if path.exists():
            tables[name] = pl.scan_parquet(path)
        elif spec.required:
            raise DataContractError(f"{clean_dir}: missing validated table {path.name}")
    return tables


@dataclass(frozen=True, slots=True)
class SegmentationResult:
    as_of: dt.datetime
    customers: int
    order_lines: int
    artifacts: SegmentArtifacts
    report: NpsReport
    report_json: Path
    report_html: Path
    seconds: float


def run_segmentation(
    tables: dict[str, pl.LazyFrame],
    out_dir: Path,
    *,
    segments_files: Sequence[Path] = (),
    rules: SegmentRules | None = None,
    config: SegmentationConfig | None = None,
    show_progress: bool = True,
) -> SegmentationResult:
    """Run the whole step and write its artifacts into `out_dir`."""
    config = config or SegmentationConfig()
    progress = Progress("segments", total=4, unit="steps", enabled=show_progress)
    extras = extra_attribute_columns(tables[c.CUSTOMERS])
    if rules is None:
        rules = load_segments(segments_files, extra_columns=extras)
    order_lines = tables[c.ORDERS].select(pl.len()).collect().item()
    as_of = resolve_as_of(tables, config)  # before indexing: a max over plain columns is cheap
    tables = index_customers(tables)
    config = dataclasses.replace(config, as_of=as_of)
    facts = order_facts(tables[c.ORDERS], tables[c.PRODUCTS], as_of).collect()
    progress.advance()
    table = build_customer_table(tables, rules, config, facts=facts.lazy())
    progress.advance()
    artifacts = write_segment_artifacts(table, out_dir)
    progress.advance()
    report = build_report(table, tables[c.NPS_RESPONSES], facts.lazy(), rules, as_of, config)
    json_path, html_path = write_report(report, out_dir)
    progress.advance()
    seconds = progress.finish()
    return SegmentationResult(
        as_of=as_of,
        customers=table.height,
        order_lines=int(order_lines),
        artifacts=artifacts,
        report=report,
        report_json=json_path,
        report_html=html_path,
        seconds=seconds,
    )
