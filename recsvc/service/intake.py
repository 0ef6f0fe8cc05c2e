"""Live NPS intake: check posted responses against the data contract.

Validation is `recsvc.domain.contract.check_record`, the rules the batch validator applies to files, so a
response is accepted live exactly when it would be accepted in a nightly file.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from recsvc.domain import columns as c
from recsvc.domain.contract import NPS_RESPONSES, Field, Kind, check_record
from recsvc.domain.live import LiveResponse

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
        raise BadBody("body is an empty list: send one response object or a list of them")
    if len(items) > MAX_BATCH:
        raise BadBody(f"at most {MAX_BATCH} responses per request, got {len(items)}")
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


def check_responses(
    items: list[Any], received_at: dt.datetime
) -> tuple[list[LiveResponse], list[Rejected]]:
    """Split posted items into valid responses and rejections naming index, id and fields.

    `received_at` (aware UTC) is also the clock a `responded_at` may not run ahead of.
    """
    valid: list[LiveResponse] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejected.append(Rejected(index, None, ["each response must be a JSON object"]))
            continue
        typed = [json_type_error(spec, item.get(spec.name)) for spec in NPS_RESPONSES.fields]
        clean, errors = check_record(NPS_RESPONSES, item, received_at)
        wrong_type = {
            spec.name: e for spec, e in zip(NPS_RESPONSES.fields, typed, strict=True) if e
        }
        if wrong_type:  # the type error replaces what the text rules said of the same field
            errors = [e for e in errors if e.partition(":")[0] not in wrong_type]
            errors[:0] = list(wrong_type.values())
        response_id = (
            clean.get(c.RESPONSE_ID) if isinstance(clean.get(c.RESPONSE_ID), str) else None
        )
        if response_id is not None and response_id in seen and not errors:
            # The same id twice in one batch: the first is stored, the second is a duplicate.
            continue
        if errors:
            rejected.append(Rejected(index, response_id, errors))
            continue
        assert response_id is not None
        seen.add(response_id)
        valid.append(
            LiveResponse(
                response_id=response_id,
                customer_id=clean[c.CUSTOMER_ID],
                score=clean[c.SCORE],
                responded_at=clean[c.RESPONDED_AT],
                touchpoint=clean[c.TOUCHPOINT],
                order_id=clean[c.ORDER_ID],
                comment=clean[c.COMMENT],
                received_at=received_at,
            )
        )
    return valid, rejected
