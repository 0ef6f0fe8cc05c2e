"""Segmentation and the NPS report on demo data: the simulated effects must show up.

The demo shop (training.sources.generate, docs/demo-data.md) makes late deliveries lower post-delivery NPS
and gives detractors delivery complaints; the report has to find both, and the artifacts have to be
complete and consistent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from training.customers.segments import IS_PRIMARY, SEGMENT
from training.report.model import NpsReport
from training.run.segmentation import SegmentationResult, run_segmentation
from training.sources.generate import generate
from training.validate.dataset import read_clean_tables, validate_dataset

CUSTOMERS = 3000
SEED = 11


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegmentationResult]:
    base = tmp_path_factory.mktemp("segments")
    generate(base / "raw", CUSTOMERS, SEED, show_progress=False)
    validate_dataset(base / "raw", base / "validation", show_progress=False)
    tables = read_clean_tables(base / "validation" / "clean")
    yield run_segmentation(tables, base / "out", show_progress=False)


@pytest.fixture(scope="module")
def customers(run: SegmentationResult) -> pl.DataFrame:
    return pl.read_parquet(run.artifacts.customers)


def test_every_customer_appears_once(run: SegmentationResult, customers: pl.DataFrame) -> None:
    assert customers.height == CUSTOMERS == run.customers
    assert customers[c.CUSTOMER_ID].n_unique() == CUSTOMERS
    assert customers[ct.PRIMARY_SEGMENT].null_count() == 0


def test_promoters_segment_is_the_customers_whose_latest_answer_is_a_promoter(
    run: SegmentationResult, customers: pl.DataFrame
) -> None:
    members = pl.read_parquet(run.artifacts.segment_members)
    promoters = set(members.filter(pl.col(SEGMENT) == "promoters")[c.CUSTOMER_ID])
    expected = set(customers.filter(pl.col(ct.NPS_CATEGORY) == "promoter")[c.CUSTOMER_ID])
    assert promoters == expected and promoters
    # One primary row per customer in the membership table.
    assert members.filter(pl.col(IS_PRIMARY)).height == CUSTOMERS


def test_post_delivery_nps_is_lower_than_pre_delivery(run: SegmentationResult) -> None:
    delivery = run.report.delivery
    assert delivery.pre_delivery.nps is not None and delivery.post_delivery.nps is not None
    assert delivery.post_delivery.nps < delivery.pre_delivery.nps
    assert delivery.post_vs_pre is not None and delivery.post_vs_pre.significant
    assert delivery.customer_gap_mean is not None and delivery.customer_gap_mean < 0


def test_late_deliveries_lower_post_delivery_nps(run: SegmentationResult) -> None:
    delivery = run.report.delivery
    assert delivery.post_late.nps is not None and delivery.post_on_time.nps is not None
    assert delivery.post_late.nps < delivery.post_on_time.nps
    shares = {s.category: s.share for s in delivery.late_share}
    assert shares["detractor"] is not None and shares["promoter"] is not None
    assert shares["detractor"] > shares["promoter"]


def test_delivery_is_the_top_detractor_theme(run: SegmentationResult) -> None:
    detractors = next(g for g in run.report.themes if g.category == "detractor")
    assert detractors.themes[0].theme == "delivery"
    assert detractors.themes[0].examples


def test_report_covers_every_breakdown(run: SegmentationResult) -> None:
    report = run.report
    assert {b.dimension for b in report.breakdowns} == {
        "segment",
        "country",
        "age_band",
        "touchpoint",
    }
    assert len(report.trend) >= 12
    assert report.csat is not None and report.ces is not None
    assert report.churn and all(0 <= p.rate <= 1 for p in report.churn)
    overall = report.overall
    assert overall.n == report.respondents and overall.nps is not None


def test_json_round_trips_and_html_has_the_charts(run: SegmentationResult) -> None:
    assert msgspec.json.decode(run.report_json.read_bytes(), type=NpsReport) == run.report
    html = run.report_html.read_text(encoding="utf-8")
    assert html.count("<svg") >= 8
    assert "How to read this" in html and "too small" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_segment_lists_are_written(run: SegmentationResult) -> None:
    path: Path = run.artifacts.segment_members
    members = pl.read_parquet(path)
    assert members.columns == [SEGMENT, c.CUSTOMER_ID, IS_PRIMARY]
    assert members.filter(pl.col(SEGMENT) == "high_value_detractors").height > 0
