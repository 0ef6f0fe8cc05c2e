"""The rows of one table: stage one checks each row's fields, stage two settles duplicates, repeated
keys and orphans.

`check_rows` parses every contract field of every row (`training.validate.fields`) and gathers each
row's problems; `settle_rows` collapses exact re-imports and marks, with `mark_rows`, repeated keys
and references to unknown keys. Both are LazyFrame -> LazyFrame.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import contract, times
from recsvc.domain.contract import Field, Kind, Reference, Table
from recsvc.domain.times import naive_utc
from training.validate.fields import DTYPES, Parsed, field_error, has_text, is_text, parse
from training.validate.lexicon import strip
from training.validate.timestamps import with_timestamps

# Working columns; the double underscore keeps them apart from a shop's own column names.
SOURCE = "__source"  # the row as read (a struct of its columns)
PROBLEMS = "__problems"  # the row's problems without values, for counting
ORPHAN = "__orphan"
CONFLICT = "__conflict"
_FIRST_ROW = "__first_row"


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """How a table file's columns meet the contract."""

    present: tuple[str, ...]  # contract columns found in the file
    absent: tuple[str, ...]  # optional contract columns not in the file: default or null
    missing: tuple[str, ...]  # required contract columns not in the file
    extras: tuple[str, ...]  # other columns kept as text (customers' attributes)
    dropped: tuple[str, ...]  # other columns left out

    @property
    def output(self) -> tuple[str, ...]:
        return self.present + self.absent + self.extras


def plan_columns(table: Table, schema: pl.Schema) -> ColumnPlan:
    names = list(schema)
    contract_names = [f.name for f in table.fields]
    others = [n for n in names if n not in table.by_name]
    # Extra columns are kept as text, so they must have one; names starting with "_" are ours.
    keep = [
        n for n in others if table.extra_columns and not n.startswith("_") and has_text(schema[n])
    ]
    return ColumnPlan(
        present=tuple(n for n in contract_names if n in schema),
        absent=tuple(
            n for n in contract_names if n not in schema and not table.by_name[n].required
        ),
        missing=tuple(n for n in contract_names if n not in schema and table.by_name[n].required),
        extras=tuple(keep),
        dropped=tuple(n for n in others if n not in keep),
    )


def check_rows(
    frame: pl.LazyFrame, table: Table, schema: pl.Schema, now: dt.datetime | None = None
) -> pl.LazyFrame:
    """Stage one: parse every contract field of every row, collecting all problems of a row.

    `frame` holds `_row` and the source columns as stored (described by `schema`). The result has
    `_row`, the contract columns in contract dtypes (absent optional ones as their default), extra
    columns kept as text, `_reason` (null for a valid row, else each problem naming its field, joined
    with "; "), `__problems` (the same without values, for counting) and `__source` (the row as read).
    A value is accepted exactly when `contract.check_value` accepts it (with the same `now`, the
    clock that event times may not run ahead of; default: the current time).
    """
    latest = naive_utc(contract.latest_allowed(now or times.now()))
    plan = plan_columns(table, schema)
    specs = [table.by_name[name] for name in plan.present]
    # Staged: each step reads the columns of the one before, so no parsing work is repeated.
    frame, parsed = _parsed_columns(frame, specs, schema)
    checks = {s.name: field_error(s, parsed[s.name], latest) for s in specs}
    frame = frame.with_columns(
        expr.alias(_temp(step, name))
        for name, (error, problem) in checks.items()
        for step, expr in (("error", error), ("problem", problem))
    )
    errors = [pl.col(_temp("error", s.name)) for s in specs]
    any_error = pl.any_horizontal(e.is_not_null() for e in errors) if errors else pl.lit(False)
    problems = (
        pl.concat_list(pl.col(_temp("problem", s.name)) for s in specs).list.drop_nulls()
        if specs
        else pl.lit([], pl.List(pl.String))
    )
    return frame.select(
        pl.col(c.SOURCE_ROW),
        *(_checked_value(s) for s in specs),
        *(
            pl.lit(table.by_name[n].default, DTYPES[table.by_name[n].kind]).alias(n)
            for n in plan.absent
        ),
        *(pl.col(n).cast(pl.String).alias(n) for n in plan.extras),
        pl.when(any_error)
        .then(pl.concat_str(errors, separator="; ", ignore_nulls=True))
        .alias(c.REJECT_REASON),
        problems.alias(PROBLEMS),
        pl.struct(pl.col(list(schema))).alias(SOURCE),
    )


def _temp(step: str, name: str) -> str:
    return f"__{step}_{name}"


def _parsed_columns(
    frame: pl.LazyFrame, specs: list[Field], schema: pl.Schema
) -> tuple[pl.LazyFrame, dict[str, Parsed]]:
    """The frame with each field's parsed value, missing, bad and too-large flags as columns, and
    each field's `Parsed` reading those columns."""
    dated = [
        s.name for s in specs if s.kind in (Kind.DATE, Kind.DATETIME) and is_text(schema[s.name])
    ]
    frame = with_timestamps(
        frame, {_temp("timestamp", n): strip(pl.col(n).cast(pl.String)) for n in dated}
    )
    parsed = {
        s.name: parse(
            s.kind,
            pl.col(s.name),
            schema[s.name],
            pl.col(_temp("timestamp", s.name)) if s.name in dated else None,
        )
        for s in specs
    }
    frame = frame.with_columns(
        expr.alias(_temp(step, name))
        for name, p in parsed.items()
        for step, expr in (
            ("value", p.value),
            ("missing", p.missing),
            ("bad", p.bad),
            ("large", p.too_large),
        )
        if expr is not None
    )
    staged = {
        name: Parsed(
            value=pl.col(_temp("value", name)),
            missing=pl.col(_temp("missing", name)),
            shown=p.shown,
            bad=None if p.bad is None else pl.col(_temp("bad", name)),
            too_large=None if p.too_large is None else pl.col(_temp("large", name)),
        )
        for name, p in parsed.items()
    }
    return frame, staged


def _checked_value(spec: Field) -> pl.Expr:
    """The field's clean value: its default when missing, null when it has an error."""
    dtype = DTYPES[spec.kind]
    return (
        pl.when(pl.col(_temp("missing", spec.name)))
        .then(pl.lit(spec.default, dtype))
        .when(pl.col(_temp("error", spec.name)).is_null())
        .then(pl.col(_temp("value", spec.name)).cast(dtype, strict=False))
        .otherwise(pl.lit(None, dtype))
        .alias(spec.name)
    )


# (table, column) -> the distinct values of that key column in the table's clean output.
KnownKeys = Callable[[str, str], pl.Series]


def settle_rows(
    valid: pl.LazyFrame, table: Table, content: Iterable[str], known: KnownKeys
) -> pl.LazyFrame:
    """Stage two: collapse exact duplicates, then mark repeated keys and orphans for the quarantine.

    `valid` holds stage one's valid rows, in file order. Identical rows (by `content`) collapse to
    the first one; a key seen again with different content keeps its first row; a reference to a
    key that `known(table, column)` does not hold is an orphan. Marked rows get a `_reason`,
    `__problems` and the flags `__conflict` / `__orphan`; kept rows have a null `_reason`.
    """
    rows = valid.filter(pl.struct(list(content)).is_first_distinct()).with_columns(
        pl.lit(None, pl.String).alias(c.REJECT_REASON),
        pl.lit([], pl.List(pl.String)).alias(PROBLEMS),
    )
    return mark_rows(rows, table, known=known, repeated_keys=True)


@dataclass(frozen=True, slots=True)
class _Mark:
    """A problem a row has with other rows: a repeated key or an unknown reference."""

    hit: pl.Expr  # the row has the problem
    reason: pl.Expr  # naming the column and the value
    problem: str  # the same without the value


def mark_rows(
    frame: pl.LazyFrame,
    table: Table,
    *,
    known: KnownKeys | None = None,
    repeated_keys: bool = False,
) -> pl.LazyFrame:
    """Add to a row's `_reason` and `__problems` its references to keys `known` does not hold
    (orphans) and, with `repeated_keys`, a key an earlier row already has; set the flags
    `__orphan` and `__conflict`.

    Rows must be in file order. Helper columns are computed once and dropped at the end.
    """
    helpers: list[str] = []
    conflicts: list[_Mark] = []
    if repeated_keys and table.key:
        # In file order, the first row of a key is its smallest row number.
        frame = frame.with_columns(pl.col(c.SOURCE_ROW).min().over(table.key).alias(_FIRST_ROW))
        helpers.append(_FIRST_ROW)
        conflicts.append(_conflict_mark(table.key))
    orphans = (
        [_orphan_mark(ref, known(ref.table, ref.target)) for ref in table.references]
        if known is not None
        else []
    )

    marks = conflicts + orphans
    hit_columns = [f"__hit_{i}" for i in range(len(marks))]
    frame = frame.with_columns(m.hit.alias(n) for m, n in zip(marks, hit_columns, strict=True))
    helpers.extend(hit_columns)
    hits = [pl.col(n) for n in hit_columns]
    conflict = pl.any_horizontal(hits[: len(conflicts)]) if conflicts else pl.lit(False)
    orphan = pl.any_horizontal(hits[len(conflicts) :]) if orphans else pl.lit(False)
    reason, problems = pl.col(c.REJECT_REASON), pl.col(PROBLEMS)
    if marks:
        reasons = [reason, *(pl.when(h).then(m.reason) for m, h in zip(marks, hits, strict=True))]
        reason = (
            pl.when(reason.is_not_null() | conflict | orphan)
            .then(pl.concat_str(reasons, separator="; ", ignore_nulls=True))
            .otherwise(reason)
        )
        problems = pl.concat_list(
            problems,
            *(pl.when(h).then(pl.lit(m.problem)) for m, h in zip(marks, hits, strict=True)),
        ).list.drop_nulls()
    return frame.with_columns(
        reason.alias(c.REJECT_REASON),
        problems.alias(PROBLEMS),
        conflict.alias(CONFLICT),
        orphan.alias(ORPHAN),
    ).drop(helpers)


def _orphan_mark(ref: Reference, keys: pl.Series) -> _Mark:
    value = pl.col(ref.column)
    reason = pl.concat_str(
        pl.lit(f"orphan: {ref.column} '"), value, pl.lit(f"' not in {ref.table}")
    )
    hit = value.is_not_null() & ~value.is_in(keys.implode())
    return _Mark(hit, reason, f"orphan: {ref.column} not in {ref.table}")


def _conflict_mark(key: tuple[str, ...]) -> _Mark:
    first_row = pl.col(_FIRST_ROW)
    key_name = "+".join(key)
    key_text = pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator="+")
    reason = pl.concat_str(
        pl.lit(f"duplicate {key_name} '"),
        key_text,
        pl.lit("' with different content (first seen in row "),
        first_row.cast(pl.String),
        pl.lit(")"),
    )
    # A row without a value for an optional key column (an order line without a line_id) has no
    # key to repeat.
    given = pl.all_horizontal(pl.col(k).is_not_null() for k in key)
    hit = (pl.col(c.SOURCE_ROW) != first_row) & given
    return _Mark(hit, reason, f"duplicate {key_name} with different content")
