"""The intake body as OpenAPI shows it, derived from the data contract (`recsvc.domain.contract`) so the
docs cannot drift from the checks. The body is parsed by hand rather than declared as a Struct: each
item is checked on its own, so one bad item is reported in `rejected` while the others are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat

from recsvc.domain.contract import MAX_ID_LENGTH, NPS_RESPONSES, Field, Kind
from recsvc.service.intake import MAX_BATCH, IntakeResult, Rejected

__all__ = ["IntakeOperation", "IntakeResult", "Rejected", "nps_response_schema"]

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


def nps_response_schema() -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        title="NpsResponse",
        properties={spec.name: _field_schema(spec) for spec in NPS_RESPONSES.fields},
        required=list(NPS_RESPONSES.required_columns),
        additional_properties=False,
        description="One NPS answer, checked against the data contract like a row of a nightly file",
        examples=[
            {
                "response_id": "R-2025-000123",
                "customer_id": "C00000042",
                "score": 3,
                "responded_at": "2025-05-01T12:30:00Z",
                "touchpoint": "post_delivery",
                "order_id": "O-88123",
                "comment": "The parcel came a week late.",
            }
        ],
    )


@dataclass
class IntakeOperation(Operation):
    """The intake operation with its request body: one response object or a list of them."""

    def __post_init__(self) -> None:
        one = nps_response_schema()
        self.request_body = RequestBody(
            required=True,
            description=f"one NPS response, or a list of up to {MAX_BATCH}",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        one_of=[
                            one,
                            Schema(
                                type=OpenAPIType.ARRAY, items=one, min_items=1, max_items=MAX_BATCH
                            ),
                        ]
                    )
                )
            },
        )
