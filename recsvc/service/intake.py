"""Live intake: check posted NPS responses and order lines against the data contract.

Validation is `recsvc.domain.contract.check_record`, the rules the batch validator applies to
files, so a record is accepted live exactly when it would be accepted in a nightly file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from recsvc.domain import columns as c
from recsvc.domain import times
from recsvc.domain.contract import LIVE_ORDER_LINES, NPS_RESPONSES, Field, Kind, Table, check_record
from recsvc.domain.live import LiveOrderLine, LiveResponse
from recsvc.domain.privacy import Suppression

MAX_BATCH = 1_000
# The JSON type each kind of field takes in a JSON body (what the OpenAPI schema says). A file's
# text cells are read by the contract's text rules; a JSON value has a type of its own, so a score
# is a JSON integer here, never "7" or 7.0.
JSON_TYPES: dict[Kind, tuple[type, ...]] = {
    Kind.STR: (str,),
    Kind.ID: (str,),
    Kind.INT: (int,),
    Kind.FLOAT: (int, float),
    Kind.BOOL: (bool,),
    Kind.DATE: (str,),
    Kind.DATETIME: (str,),
}
JSON_TYPE_NAMES = {
    Kind.STR: "a string",
    Kind.ID: "a string",
    Kind.INT: "an integer",
    Kind.FLOAT: "a number",
    Kind.BOOL: "true or false",
    Kind.DATE: "a string (YYYY-MM-DD)",
    Kind.DATETIME: "a string (ISO 8601)",
}


class Rejected(msgspec.Struct, frozen=True):
    index: int
    response_id: str | None
    errors: list[str]


class IntakeResult(msgspec.Struct, frozen=True):
    accepted: int
    duplicates: int
    rejected: list[Rejected]


class RejectedLine(msgspec.Struct, frozen=True):
    index: int
    line_id: str | None
    errors: list[str]


class OrderIntakeResult(msgspec.Struct, frozen=True):
    accepted: int  # new lines and new revisions (a status change) of earlier lines
    duplicates: int  # revisions already stored
    rejected: list[RejectedLine]


class BadBody(ValueError):
    """The body is not a JSON object or array of objects."""


def parse_body(body: bytes) -> list[Any]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadBody(f"body is not valid JSON (UTF-8): {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec's answer to invalid UTF-8 inside a string
        raise BadBody(f"body is not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:  # msgspec's answer to JSON nested thousands of levels deep
        raise BadBody("body is not valid JSON: nested too deeply") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise BadBody("body is an empty list: send one object or a list of them")
    if len(items) > MAX_BATCH:
        raise BadBody(f"at most {MAX_BATCH} items per request, got {len(items)}")
    return items


def json_type_error(spec: Field, raw: Any) -> str | None:
    """The error for a JSON value of the wrong type for its field (null is the contract's call)."""
    if raw is None:
        return None
    is_bool = isinstance(raw, bool)  # a bool is an int to Python, never to JSON
    if (
        is_bool
        if spec.kind is Kind.BOOL
        else not is_bool and isinstance(raw, JSON_TYPES[spec.kind])
    ):
        return None
    return f"{spec.name}: expected {JSON_TYPE_NAMES[spec.kind]}, got a JSON {_json_type(raw)}"


def _json_type(raw: Any) -> str:
    if isinstance(raw, bool):
        return "boolean"
    if isinstance(raw, str):
        return "string"
    if isinstance(raw, int | float):
        return "number"
    if isinstance(raw, list):
        return "array"
    return "object" if isinstance(raw, dict) else type(raw).__name__


T = TypeVar("T", LiveResponse, LiveOrderLine)
# One item's problem: its index in the body, its id when it has a readable one, the errors.
Problem = tuple[int, str | None, list[str]]


def check_items(
    table: Table,
    id_field: str,
    items: list[Any],
    received_at: dt.datetime,
    build: Callable[[dict[str, Any]], T],
    suppression: Suppression | None = None,
) -> tuple[list[T], list[Problem]]:
    """Split posted items into valid records (`build` from the clean values) and problems naming
    index, id and fields. `received_at` (aware UTC) is also the clock an event's time may not run
    ahead of. The same record twice in one body is stored once (a duplicate). A record of a
    customer erased after it is dated is refused (`suppression`: the erasures)."""
    valid: list[T] = []
    rejected: list[Problem] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejected.append((index, None, ["each item must be a JSON object"]))
            continue
        typed = [json_type_error(spec, item.get(spec.name)) for spec in table.fields]
        clean, errors = check_record(table, item, received_at)
        wrong_type = {spec.name: e for spec, e in zip(table.fields, typed, strict=True) if e}
        if wrong_type:  # the type error replaces what the text rules said of the same field
            errors = [e for e in errors if e.partition(":")[0] not in wrong_type]
            errors[:0] = list(wrong_type.values())
        given = clean.get(id_field) if isinstance(clean.get(id_field), str) else None
        if errors:
            rejected.append((index, given, errors))
            continue
        record = build(clean | {"received_at": received_at})
        if suppression and suppression.suppresses(record.customer_id, record.occurred_at):
            erased = suppression.erased_at(record.customer_id)
            rejected.append(
                (
                    index,
                    given,
                    [
                        f"customer_id: the customer was erased at {times.iso(erased)} "
                        "(a privacy request); only data dated after the erasure is taken in"
                        if erased is not None
                        else "customer_id: the customer was erased"
                    ],
                )
            )
            continue
        if record.key in seen:
            continue
        seen.add(record.key)
        valid.append(record)
    return valid, rejected


def _builder(record: type[T]) -> Callable[[dict[str, Any]], T]:
    """A live record from a checked item: its fields are the contract's column names (plus
    `received_at`), so each is taken by name; a missing one is a KeyError, not a default."""
    names = record.__struct_fields__
    return lambda clean: record(**{name: clean[name] for name in names})


def check_responses(
    items: list[Any], received_at: dt.datetime, suppression: Suppression | None = None
) -> tuple[list[LiveResponse], list[Rejected]]:
    """Posted NPS responses: the valid ones, and the rejected naming index, id and fields."""
    valid, problems = check_items(
        NPS_RESPONSES, c.RESPONSE_ID, items, received_at, _builder(LiveResponse), suppression
    )
    return valid, [Rejected(*problem) for problem in problems]


def check_order_lines(
    items: list[Any], received_at: dt.datetime, suppression: Suppression | None = None
) -> tuple[list[LiveOrderLine], list[RejectedLine]]:
    """Posted order lines: the valid ones, and the rejected naming index, line id and fields."""
    valid, problems = check_items(
        LIVE_ORDER_LINES, c.LINE_ID, items, received_at, _builder(LiveOrderLine), suppression
    )
    return valid, [RejectedLine(*problem) for problem in problems]
