"""Segment rules as polars expressions, segment membership, and the segment artifacts of a run.

`compile_rule` is the batch twin of `recsvc.domain.segments.evaluate_rule`: the same rule tree, the same
three-valued logic (polars' Kleene `&`, `|`, `~` and null-propagating comparisons match the pure-Python
evaluator), and a customer is a member only when the result is true.

Artifacts (in the run's output directory):
- `customers.parquet`: one row per customer, every column of the per-customer table, with the
  `segments` list (highest priority first) and the `primary_segment`;
- `segment_members.parquet`: one long table `segment, customer_id, is_primary`, sorted by segment
  and customer id — one row per membership, so a segment's list is a filter on `segment`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.customer_table import ValueKind
from recsvc.domain.segments.catalog import SegmentRules
from recsvc.domain.segments.rules import (
    AllOf,
    AnyOf,
    Column,
    Compare,
    Constant,
    InValues,
    IsMissing,
    ListContains,
    Negation,
    Rule,
    Truth,
    Value,
)

SEGMENT: str = "segment"
IS_PRIMARY: str = "is_primary"
_BITS = 63  # membership bits per Int64 mask column
CUSTOMERS_FILE = "customers.parquet"
SEGMENT_MEMBERS_FILE = "segment_members.parquet"


def _literal(value: Any, kind: ValueKind) -> pl.Expr:
    if kind is ValueKind.NUMBER:
        return pl.lit(float(value), dtype=pl.Float64)
    if kind is ValueKind.DATETIME and isinstance(value, dt.datetime):
        return pl.lit(value, dtype=pl.Datetime("us"))
    if kind is ValueKind.DATE and isinstance(value, dt.date):
        return pl.lit(value, dtype=pl.Date)
    return pl.lit(value)


def _operand(operand: Column | Value, kind: ValueKind) -> pl.Expr:
    if isinstance(operand, Column):
        column = pl.col(operand.name)
        # Numbers compare as floats so an Int64 column meets a 2.5 literal without a dtype clash.
        return column.cast(pl.Float64) if kind is ValueKind.NUMBER else column
    return _literal(operand.value, kind)


def _kind_of(left: Column | Value, right: Column | Value) -> ValueKind:
    for operand in (left, right):
        if isinstance(operand, Column):
            return operand.kind
    raise ValueError("a comparison needs a column")  # the parser never builds one without


_COMPARE = {
    "==": pl.Expr.__eq__,
    "!=": pl.Expr.__ne__,
    "<": pl.Expr.__lt__,
    "<=": pl.Expr.__le__,
    ">": pl.Expr.__gt__,
    ">=": pl.Expr.__ge__,
}


def compile_rule(rule: Rule) -> pl.Expr:
    """A nullable boolean polars expression: true, false or null (unknown), like `evaluate_rule`."""
    match rule:
        case AllOf(items):
            expr = compile_rule(items[0])
            for item in items[1:]:
                expr = expr & compile_rule(item)
            return expr
        case AnyOf(items):
            expr = compile_rule(items[0])
            for item in items[1:]:
                expr = expr | compile_rule(item)
            return expr
        case Negation(item):
            return ~compile_rule(item)
        case Compare(op, left, right):
            kind = _kind_of(left, right)
            result: pl.Expr = _COMPARE[op](_operand(left, kind), _operand(right, kind))
            return result
        case InValues(column, values, negate):
            target = _operand(column, column.kind)
            if column.kind is ValueKind.NUMBER:
                series = pl.Series([float(v) for v in values if isinstance(v, int | float)])
            else:
                series = pl.Series(list(values))
            expr = target.is_in(series.implode())
            return ~expr if negate else expr
        case ListContains(column, value, negate):
            expr = pl.col(column.name).list.contains(pl.lit(value, dtype=pl.String))
            return ~expr if negate else expr
        case IsMissing(column, negate):
            return pl.col(column.name).is_not_null() if negate else pl.col(column.name).is_null()
        case Truth(column):
            return pl.col(column.name).cast(pl.Boolean)
        case Constant(value):
            return pl.lit(value, dtype=pl.Boolean)
    raise TypeError(f"not a rule: {rule!r}")  # pragma: no cover


def membership(rule: Rule) -> pl.Expr:
    """True exactly for members: unknown (null) counts as not a member."""
    return compile_rule(rule).fill_null(False)


def assign_segments(customers: pl.LazyFrame, rules: SegmentRules) -> pl.LazyFrame:
    """Add `segments` (member segments, highest priority first) and `primary_segment` (the first).

    Each rule sets one bit of a membership mask (63 rules per Int64 column). Customers share few
    distinct masks, so the names are listed once per distinct mask and joined back: much cheaper
    than building a list of names row by row.
    """
    definitions = rules.definitions
    chunks = [definitions[i : i + _BITS] for i in range(0, len(definitions), _BITS)]
    mask_columns = [f"_segment_mask_{k}" for k in range(len(chunks))]
    if not chunks:
        return customers.with_columns(
            pl.lit([], dtype=pl.List(pl.String)).alias(ct.SEGMENTS),
            pl.lit(None, dtype=pl.String).alias(ct.PRIMARY_SEGMENT),
        )
    masked = customers.with_columns(
        pl.sum_horizontal(
            pl.when(membership(d.rule)).then(pl.lit(1 << bit, dtype=pl.Int64)).otherwise(0)
            for bit, d in enumerate(chunk)
        ).alias(name)
        for name, chunk in zip(mask_columns, chunks, strict=True)
    )
    distinct = masked.select(mask_columns).unique().collect()
    names: list[list[str]] = []
    for row in distinct.iter_rows():
        names.append(
            [
                d.name
                for mask, chunk in zip(row, chunks, strict=True)
                for bit, d in enumerate(chunk)
                if mask >> bit & 1
            ]
        )
    lookup = distinct.with_columns(
        pl.Series(ct.SEGMENTS, names, dtype=pl.List(pl.String)),
        pl.Series(ct.PRIMARY_SEGMENT, [n[0] if n else None for n in names], dtype=pl.String),
    )
    return masked.join(lookup.lazy(), on=mask_columns, how="left", maintain_order="left").drop(
        mask_columns
    )


def segment_members(customers: pl.LazyFrame) -> pl.LazyFrame:
    """The long membership table `segment, customer_id, is_primary` from an assigned customer table."""
    return (
        customers.select(c.CUSTOMER_ID, ct.SEGMENTS, ct.PRIMARY_SEGMENT)
        .explode(ct.SEGMENTS)
        .drop_nulls(ct.SEGMENTS)
        .select(
            pl.col(ct.SEGMENTS).alias(SEGMENT),
            pl.col(c.CUSTOMER_ID),
            (pl.col(ct.SEGMENTS) == pl.col(ct.PRIMARY_SEGMENT)).alias(IS_PRIMARY),
        )
        .sort(SEGMENT, c.CUSTOMER_ID)
    )


@dataclass(frozen=True, slots=True)
class SegmentArtifacts:
    customers: Path
    segment_members: Path


def write_segment_artifacts(table: pl.DataFrame, out_dir: Path) -> SegmentArtifacts:
    """Write `customers.parquet` and `segment_members.parquet` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    customers_path = out_dir / CUSTOMERS_FILE
    members_path = out_dir / SEGMENT_MEMBERS_FILE
    table.write_parquet(customers_path)
    segment_members(table.lazy()).collect().write_parquet(members_path)
    return SegmentArtifacts(customers=customers_path, segment_members=members_path)
