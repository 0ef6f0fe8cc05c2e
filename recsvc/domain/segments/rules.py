"""Declared customer segments: the segments file, its small expression language, and evaluation.

A segment is a name, a boolean expression over the columns of the per-customer table, a priority
and a description, declared in TOML (`recsvc/defaults/segments.toml` ships the defaults; a shop's own
file adds, replaces or switches off segments). Expressions are a safe subset of Python expressions,
parsed with `ast` into a small rule tree and checked before any data is touched: an error names the
segment and the problem. Two backends read the tree: `evaluate` here (pure Python; the service uses it
on one customer record, e.g. when a new NPS answer arrives) and `training.customers.segments.compile_rule`
(a polars expression for the batch run). Both use the same three-valued logic for missing values.

Language (see docs/segments-and-nps.md for the marketer's version):
- comparisons `== != < <= > >=` between a column and a value (or two columns of the same kind);
  chained comparisons such as `1 <= r_score <= 2` mean "both";
- `column in ['a', 'b']` / `column not in [...]`; for a list column, `'shoes' in favourite_categories`;
- missing values: `column is None` / `column is not None` (`== None` / `!= None` mean the same);
- `and`, `or`, `not`, parentheses; `True`/`False` (also `true`/`false`), numbers, 'strings';
- a yes/no column may stand alone: `last_delivery_late`, `not last_delivery_late`.
A comparison with a missing value is neither true nor false ("unknown"): `not` keeps it unknown,
`unknown and False` is False, `unknown or True` is True, and a customer is a member only when the
whole expression is True. So `nps_score < 7` and `not (nps_score < 7)` both leave out customers who
never answered; ask for them with `nps_score is None`.

Priority: a larger number wins. A customer's primary segment is the member segment with the highest
priority; segments without a priority rank below all that have one, earlier in the file first.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from recsvc.domain.contract import parse_datetime
from recsvc.domain.customer_table import COLUMNS, ValueKind
from recsvc.errors import ConfigError

ORDERED_KINDS = frozenset({ValueKind.NUMBER, ValueKind.DATE, ValueKind.DATETIME})
_NAME_ALIASES: dict[str, bool | None] = {"true": True, "false": False, "null": None, "none": None}


# --- the rule tree -------------------------------------------------------------------------------

LiteralValue: TypeAlias = str | int | float | bool | dt.date | dt.datetime | None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: ValueKind


@dataclass(frozen=True, slots=True)
class Value:
    value: LiteralValue


Operand: TypeAlias = Column | Value


@dataclass(frozen=True, slots=True)
class Compare:
    """`left op right`; unknown when either side is missing."""

    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class InValues:
    """`column in (values)` (negated: `not in`); unknown when the column is missing."""

    column: Column
    values: tuple[LiteralValue, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class ListContains:
    """`'value' in list_column` (negated: `not in`); unknown when the list is missing."""

    column: Column
    value: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class IsMissing:
    """`column is None` (negated: `is not None`); never unknown."""

    column: Column
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Truth:
    """A yes/no column standing alone."""

    column: Column


@dataclass(frozen=True, slots=True)
class Constant:
    value: bool


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Negation:
    item: Rule


Rule: TypeAlias = (
    Compare | InValues | ListContains | IsMissing | Truth | Constant | AllOf | AnyOf | Negation
)


@dataclass(frozen=True, slots=True)
class SegmentDefinition:
    name: str
    expression: str
    priority: int | None
    description: str
    rule: Rule
    source: str = ""  # the file it came from, for messages
    order: int = 0  # position across the loaded files, to rank segments without a priority

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(_columns_of(self.rule))


# --- parsing expressions -------------------------------------------------------------------------


class _RuleError(Exception):
    """A problem in one expression; turned into a ConfigError naming the segment."""

    def __init__(self, message: str, node: ast.AST | None = None) -> None:
        position = getattr(node, "col_offset", None)
        if position is not None:
            message = f"{message} (at character {position + 1})"
        super().__init__(message)


def _describe_kind(kind: ValueKind) -> str:
    return {
        ValueKind.STRING: "text",
        ValueKind.NUMBER: "a number",
        ValueKind.BOOL: "yes/no (True/False)",
        ValueKind.DATE: "a date",
        ValueKind.DATETIME: "a date-time",
        ValueKind.STRING_LIST: "a list of texts",
    }[kind]


class _Parser:
    def __init__(self, columns: Mapping[str, ValueKind], choices: Mapping[str, tuple[str, ...]]):
        self.columns = columns
        self.choices = choices

    def parse(self, expression: str) -> Rule:
        text = expression.strip()
        if not text:
            raise _RuleError("the expression is empty")
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as error:
            if error.offset and error.offset <= len(text):
                where = f"at character {error.offset}"
            else:  # Python reports an unfinished expression at offset 0
                where = "at the end of the expression"
            raise _RuleError(f"syntax error: {error.msg} ({where})") from None
        return self.rule(tree.body)

    # A rule is something true/false/unknown.
    def rule(self, node: ast.expr) -> Rule:
        if isinstance(node, ast.BoolOp):
            items = tuple(self.rule(v) for v in node.values)
            return AllOf(items) if isinstance(node.op, ast.And) else AnyOf(items)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Negation(self.rule(node.operand))
        if isinstance(node, ast.Compare):
            parts = [
                self.comparison(node, left, op, right)
                for left, op, right in zip(
                    [node.left, *node.comparators[:-1]], node.ops, node.comparators, strict=True
                )
            ]
            return parts[0] if len(parts) == 1 else AllOf(tuple(parts))
        operand = self.operand(node)
        if isinstance(operand, Value):
            if isinstance(operand.value, bool):
                return Constant(operand.value)
            raise _RuleError(f"{operand.value!r} on its own is not a yes/no condition", node)
        if operand.kind is not ValueKind.BOOL:
            raise _RuleError(
                f"column '{operand.name}' is {_describe_kind(operand.kind)}, not yes/no; "
                f"compare it with something, e.g. {operand.name} == ...",
                node,
            )
        return Truth(operand)

    def operand(self, node: ast.expr) -> Operand:
        if isinstance(node, ast.Name):
            if node.id in self.columns:
                return Column(node.id, self.columns[node.id])
            if node.id.lower() in _NAME_ALIASES:
                return Value(_NAME_ALIASES[node.id.lower()])
            known = ", ".join(sorted(self.columns))
            raise _RuleError(f"unknown column '{node.id}'; known columns: {known}", node)
        return Value(self.literal(node))

    def literal(self, node: ast.expr) -> LiteralValue:
        if isinstance(node, ast.Constant) and (
            node.value is None or isinstance(node.value, str | int | float | bool)
        ):
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)
        ):
            value = node.operand.value
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Name) and node.id.lower() in _NAME_ALIASES:
            return _NAME_ALIASES[node.id.lower()]
        raise _RuleError(f"'{ast.unparse(node)}' is not allowed here; {_ALLOWED}", node)

    def comparison(self, node: ast.Compare, left: ast.expr, op: ast.cmpop, right: ast.expr) -> Rule:
        if isinstance(op, ast.In | ast.NotIn):
            return self.membership(node, left, right, negate=isinstance(op, ast.NotIn))
        if isinstance(op, ast.Is | ast.IsNot):
            return self.null_check(node, left, right, negate=isinstance(op, ast.IsNot))
        symbol = _OP_SYMBOLS[type(op)]
        a, b = self.operand(left), self.operand(right)
        if (isinstance(a, Value) and a.value is None) or (isinstance(b, Value) and b.value is None):
            if symbol not in ("==", "!="):
                raise _RuleError(f"'{symbol}' cannot compare with None; use 'is None'", node)
            return self.null_check(node, left, right, negate=symbol == "!=")
        if isinstance(a, Value) and isinstance(b, Value):
            raise _RuleError("compares two fixed values; one side must be a column", node)
        column = a if isinstance(a, Column) else b
        assert isinstance(column, Column)
        if column.kind is ValueKind.STRING_LIST:
            raise _RuleError(
                f"column '{column.name}' is a list; use 'value' in {column.name}", node
            )
        if symbol not in ("==", "!=") and column.kind not in ORDERED_KINDS:
            raise _RuleError(
                f"'{symbol}' needs numbers or dates, but '{column.name}' is "
                f"{_describe_kind(column.kind)}",
                node,
            )
        if isinstance(a, Column) and isinstance(b, Column):
            if a.kind is not b.kind:
                raise _RuleError(
                    f"cannot compare '{a.name}' ({_describe_kind(a.kind)}) with "
                    f"'{b.name}' ({_describe_kind(b.kind)})",
                    node,
                )
            return Compare(symbol, a, b)
        value_node = right if isinstance(a, Column) else left
        value = self.typed_value(column, value_node)
        if isinstance(a, Column):
            return Compare(symbol, a, Value(value))
        return Compare(symbol, Value(value), column)

    def typed_value(self, column: Column, node: ast.expr) -> LiteralValue:
        """A literal checked (and converted) for comparing with `column`."""
        value = self.literal(node)
        kind = column.kind
        wrong = f"'{column.name}' is {_describe_kind(kind)}, but {ast.unparse(node)} is not"
        if kind is ValueKind.NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _RuleError(wrong, node)
            return value
        if kind is ValueKind.BOOL:
            if not isinstance(value, bool):
                raise _RuleError(wrong, node)
            return value
        if not isinstance(value, str):
            raise _RuleError(wrong, node)
        if kind is ValueKind.STRING:
            choices = self.choices.get(column.name)
            if choices is not None and value not in choices:
                raise _RuleError(
                    f"'{value}' is not a value of '{column.name}'; expected one of "
                    f"{', '.join(choices)}",
                    node,
                )
            return value
        parsed = parse_datetime(value)
        if parsed is None:
            raise _RuleError(
                f"'{column.name}' is {_describe_kind(kind)}; write it as 'YYYY-MM-DD', got {value!r}",
                node,
            )
        return parsed.date() if kind is ValueKind.DATE else parsed

    def membership(self, node: ast.Compare, left: ast.expr, right: ast.expr, negate: bool) -> Rule:
        container = self.operand(right) if isinstance(right, ast.Name) else None
        if isinstance(container, Column):
            if container.kind is not ValueKind.STRING_LIST:
                raise _RuleError(
                    f"'in {container.name}' needs a list column; '{container.name}' is "
                    f"{_describe_kind(container.kind)}",
                    node,
                )
            item = self.literal(left)
            if not isinstance(item, str):
                raise _RuleError(f"'{container.name}' holds texts; write 'value' in ...", node)
            return ListContains(container, item, negate)
        column = self.operand(left)
        if not isinstance(column, Column):
            raise _RuleError("the left side of 'in' must be a column", node)
        if not isinstance(right, ast.List | ast.Tuple | ast.Set):
            raise _RuleError("'in' needs a list of values, e.g. ['a', 'b']", node)
        if not right.elts:
            raise _RuleError("'in' needs at least one value", node)
        if column.kind is ValueKind.STRING_LIST:
            raise _RuleError(
                f"column '{column.name}' is a list; use 'value' in {column.name}", node
            )
        values = tuple(self.typed_value(column, element) for element in right.elts)
        return InValues(column, values, negate)

    def null_check(self, node: ast.Compare, left: ast.expr, right: ast.expr, negate: bool) -> Rule:
        a, b = self.operand(left), self.operand(right)
        if isinstance(a, Column) and isinstance(b, Value) and b.value is None:
            return IsMissing(a, negate)
        if isinstance(b, Column) and isinstance(a, Value) and a.value is None:
            return IsMissing(b, negate)
        raise _RuleError("'is' only checks for a missing value: column is None", node)


_OP_SYMBOLS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}
_ALLOWED = (
    "use column names, 'text', numbers, True/False, None, lists [..], "
    "== != < <= > >= in, not in, is None, and, or, not, parentheses"
)


def _columns_of(rule: Rule) -> Iterable[str]:
    match rule:
        case AllOf(items) | AnyOf(items):
            for item in items:
                yield from _columns_of(item)
        case Negation(item):
            yield from _columns_of(item)
        case Compare(_, left, right):
            yield from (o.name for o in (left, right) if isinstance(o, Column))
        case InValues(column) | ListContains(column) | IsMissing(column) | Truth(column):
            yield column.name
        case Constant():
            pass


def known_columns(extra_columns: Iterable[str] = ()) -> dict[str, ValueKind]:
    """The columns an expression may use: the customer table's, plus extra string attributes."""
    columns = {name: spec.kind for name, spec in COLUMNS.items()}
    for name in extra_columns:
        columns.setdefault(name, ValueKind.STRING)
    return columns


def parse_rule(
    name: str, expression: str, extra_columns: Iterable[str] = (), source: str = ""
) -> Rule:
    """Parse and check one expression; a ConfigError names the segment and the problem."""
    columns = known_columns(extra_columns)
    choices = {n: spec.choices for n, spec in COLUMNS.items() if spec.choices is not None}
    try:
        return _Parser(columns, choices).parse(expression)
    except _RuleError as error:
        raise ConfigError(f"{source_prefix(source)}segment '{name}': {error}") from None
    except RecursionError:
        raise ConfigError(
            f"{source_prefix(source)}segment '{name}': expression is too deep"
        ) from None


def source_prefix(source: str) -> str:
    return f"{source}: " if source else ""
