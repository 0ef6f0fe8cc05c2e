"""The segments and report steps back to back, outside a run: what the segmentation bench times
(`bench/bench_segments.py`) and the segment and report tests check, on the validator's clean tables.

Kept apart from `training.run.steps` so that it imports no more than those two steps need.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsvc.domain.segments.catalog import SegmentRules
from training.customers.features import SegmentationConfig
from training.customers.segmentation import segment_customers, segment_rules
from training.customers.segments import SegmentArtifacts, write_segment_artifacts
from training.progress import Progress
from training.report.build import nps_report, write_report
from training.report.model import NpsReport


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
    """The segments and report steps outside a run (the segmentation bench, tests): the customer
    table, segment lists and NPS report of `tables`, written into `out_dir`."""
    progress = Progress("segments", total=3, unit="steps", enabled=show_progress)
    segments = segment_customers(tables, rules or segment_rules(tables, segments_files), config)
    progress.advance()
    artifacts = write_segment_artifacts(segments.table, out_dir)
    progress.advance()
    built = nps_report(tables, segments)
    json_path, html_path = write_report(built, out_dir)
    progress.advance()
    return SegmentationResult(
        as_of=segments.as_of,
        customers=segments.rows,
        order_lines=segments.order_lines,
        artifacts=artifacts,
        report=built,
        report_json=json_path,
        report_html=html_path,
        seconds=progress.finish(),
    )
