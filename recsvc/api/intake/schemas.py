"""The intake bodies as OpenAPI shows them, derived from the data contract
(`recsvc.domain.contract`) so the docs cannot drift from the checks. The body is parsed by hand rather than declared as a Struct: each
item is checked on its own, so one bad item is reported in `rejected` while the others are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat

from recsvc.domain.contract import (
    LIVE_ORDER_LINES,
    MAX_ID_LENGTH,
    NPS_RESPONSES,
    Field,
    Kind,
    Table,
)
from recsvc.service.intake import (
    MAX_BATCH,
    IntakeResult,
    OrderIntakeResult,
    Rejected,
    RejectedLine,
)

__all__ = [
    "IntakeOperation",
    "IntakeResult",
    "OrderIntakeOperation",
    "OrderIntakeResult",
    "Rejected",
    "RejectedLine",
    "nps_response_schema",
    "order_line_schema",
]

_TYPES = {
    Kind.STR: OpenAPIType.STRING,
    Kind.ID: OpenAPIType.STRING,
    Kind.INT: OpenAPIType.INTEGER,
    Kind.FLOAT: OpenAPIType.NUMBER,
    Kind.BOOL: OpenAPIType.BOOLEAN,
    Kind.DATE: OpenAPIType.STRING,
    Kind.DATETIME: OpenAPIType.STRING,
}


def _field_schema(spec: Field) -> Schema:
    kind = _TYPES[spec.kind]
    return Schema(
        type=kind if spec.required else [kind, OpenAPIType.NULL],
        format=OpenAPIFormat.DATE_TIME if spec.kind is Kind.DATETIME else None,
        enum=list(spec.choices) if spec.choices else None,
        minimum=spec.minimum,
        maximum=spec.maximum,
        max_length=MAX_ID_LENGTH if spec.kind is Kind.ID else spec.max_length,
        min_length=1 if spec.kind is Kind.ID else None,
        description=spec.doc or None,
    )


def record_schema(table: Table, title: str, description: str, example: dict[str, object]) -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        title=title,
        properties={spec.name: _field_schema(spec) for spec in table.fields},
        required=list(table.required_columns),
        additional_properties=False,
        description=description,
        examples=[example],
    )


def nps_response_schema() -> Schema:
    return record_schema(
        NPS_RESPONSES,
        "NpsResponse",
        "One NPS answer, checked against the data contract like a row of a nightly file",
        {
            "response_id": "R-2025-000123",
            "customer_id": "C00000042",
            "score": 3,
            "responded_at": "2025-05-01T12:30:00Z",
            "touchpoint": "post_delivery",
            "order_id": "O-88123",
            "comment": "The parcel came a week late.",
        },
    )


def order_line_schema() -> Schema:
    return record_schema(
        LIVE_ORDER_LINES,
        "OrderLine",
        "One order line, checked against the data contract like a row of the nightly orders "
        "file; `line_id` is required. Send the line again with its new status (delivered, "
        "returned, cancelled) to update it: the revision received last is the line.",
        {
            "line_id": "O-88123-1",
            "order_id": "O-88123",
            "customer_id": "C00000042",
            "product_id": "P000123",
            "quantity": 1,
            "unit_price": 24.9,
            "ordered_at": "2025-05-01T12:30:00Z",
            "promised_delivery_at": "2025-05-04T18:00:00Z",
            "delivered_at": None,
            "status": "placed",
        },
    )


def _one_or_list(one: Schema, what: str) -> RequestBody:
    return RequestBody(
        required=True,
        description=f"one {what}, or a list of up to {MAX_BATCH}",
        content={
            "application/json": OpenAPIMediaType(
                schema=Schema(
                    one_of=[
                        one,
                        Schema(type=OpenAPIType.ARRAY, items=one, min_items=1, max_items=MAX_BATCH),
                    ]
                )
            )
        },
    )


@dataclass
class IntakeOperation(Operation):
    """The NPS intake operation with its request body: one response object or a list of them."""

    def __post_init__(self) -> None:
        self.request_body = _one_or_list(nps_response_schema(), "NPS response")


@dataclass
class OrderIntakeOperation(Operation):
    """The order intake operation with its request body: one order line or a list of them."""

    def __post_init__(self) -> None:
        self.request_body = _one_or_list(order_line_schema(), "order line")
