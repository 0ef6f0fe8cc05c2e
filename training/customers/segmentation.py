"""The segmentation step of a run: the run's tables in, the customer table with its segments out.

Order of work: load and check the segment rules against the data's columns (`segment_rules`: a bad
rule fails here, before anything is computed), then date the run, compute the order facts once
(the NPS report shares them: `training.report.build.nps_report`) and build the customer table in
memory (`segment_customers`). Writing it (customers.parquet, segment_members.parquet) is
`training.customers.segments.write_segment_artifacts`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.segments.catalog import SegmentRules, load_segments
from training.customers.features import (
    SegmentationConfig,
    index_customers,
    order_facts,
    resolve_as_of,
)
from training.customers.table import build_customer_table, extra_attribute_columns


def segment_rules(
    tables: Mapping[str, pl.LazyFrame], segments_files: Sequence[Path] = ()
) -> SegmentRules:
    """The default segments and those of `segments_files`, checked against the data's columns."""
    return load_segments(segments_files, extra_columns=extra_attribute_columns(tables[c.CUSTOMERS]))


@dataclass(frozen=True, slots=True)
class CustomerSegments:
    """The customer table of a run, in memory, and what the report shares with it."""

    table: pl.DataFrame  # one row per customer: features, `segments`, `primary_segment`
    rules: SegmentRules
    config: SegmentationConfig  # its `as_of` set: the run's "today"
    facts: pl.DataFrame  # order facts (one row per order; customer ids as row numbers)
    order_lines: int  # lines in the orders table

    @property
    def as_of(self) -> dt.datetime:
        assert self.config.as_of is not None
        return self.config.as_of

    @property
    def rows(self) -> int:
        return self.table.height


def segment_customers(
    tables: Mapping[str, pl.LazyFrame],
    rules: SegmentRules,
    config: SegmentationConfig | None = None,
) -> CustomerSegments:
    """Date the run, compute the order facts once and build the customer table with its segments."""
    config = config or SegmentationConfig()
    order_lines = tables[c.ORDERS].select(pl.len()).collect().item()
    as_of = resolve_as_of(tables, config)  # before indexing: a max over plain columns is cheap
    indexed = index_customers(tables)
    config = dataclasses.replace(config, as_of=as_of)
    facts = order_facts(indexed[c.ORDERS], indexed[c.PRODUCTS], as_of).collect()
    table = build_customer_table(indexed, rules, config, facts=facts.lazy())
    return CustomerSegments(table, rules, config, facts, int(order_lines))
