"""Evaluating a segment rule on one customer record, in pure Python and three-valued logic (the
service runs it on a customer whose live NPS answer just arrived; `training.customers.segments` is
the polars twin for the batch run)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from recsvc.domain.contract import parse_datetime
from recsvc.domain.segments.rules import (
    AllOf,
    AnyOf,
    Compare,
    Constant,
    InValues,
    IsMissing,
    ListContains,
    Negation,
    Operand,
    Rule,
    SegmentDefinition,
    Truth,
    Value,
)
from recsvc.domain.times import utc

# --- evaluation (pure Python, three-valued) ------------------------------------------------------


def _value(operand: Operand, record: Mapping[str, Any]) -> Any:
    return operand.value if isinstance(operand, Value) else record.get(operand.name)


def _compare(op: str, left: Any, right: Any) -> bool | None:
    if left is None or right is None:
        return None
    # A record as stored spells dates as text (profiles.bin is JSON): read them as the rule's kind.
    if isinstance(left, str) and isinstance(right, dt.date):
        left = parse_datetime(left)
    elif isinstance(right, str) and isinstance(left, dt.date):
        right = parse_datetime(right)
    if left is None or right is None:
        return None
    # One time convention (`recsvc.domain.times`): a naive datetime from a record is UTC.
    if isinstance(left, dt.datetime) and isinstance(right, dt.datetime):
        left, right = utc(left), utc(right)
    # Dates from a record may be datetimes when the column is a date (or the reverse): align them.
    if isinstance(left, dt.datetime) != isinstance(right, dt.datetime) and all(
        isinstance(v, dt.date) for v in (left, right)
    ):
        left = left.date() if isinstance(left, dt.datetime) else left
        right = right.date() if isinstance(right, dt.datetime) else right
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def evaluate_rule(rule: Rule, record: Mapping[str, Any]) -> bool | None:
    """True, False or None (unknown) for one customer record; absent keys count as missing."""
    match rule:
        case AllOf(items):
            result: bool | None = True
            for item in items:
                value = evaluate_rule(item, record)
                if value is False:
                    return False
                if value is None:
                    result = None
            return result
        case AnyOf(items):
            result = False
            for item in items:
                value = evaluate_rule(item, record)
                if value is True:
                    return True
                if value is None:
                    result = None
            return result
        case Negation(item):
            value = evaluate_rule(item, record)
            return None if value is None else not value
        case Compare(op, left, right):
            return _compare(op, _value(left, record), _value(right, record))
        case InValues(column, values, negate):
            current = record.get(column.name)
            if current is None:
                return None
            return (current in values) != negate
        case ListContains(column, value, negate):
            listed = record.get(column.name)
            if listed is None:
                return None
            return (value in listed) != negate
        case IsMissing(column, negate):
            return (record.get(column.name) is None) != negate
        case Truth(column):
            current = record.get(column.name)
            return None if current is None else bool(current)
        case Constant(value):
            return value
    raise TypeError(f"not a rule: {rule!r}")  # pragma: no cover


def evaluate(definition: SegmentDefinition, record: Mapping[str, Any]) -> bool:
    """Is this customer record a member of the segment? Unknown counts as not a member."""
    return evaluate_rule(definition.rule, record) is True
