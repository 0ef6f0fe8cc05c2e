"""What the segments endpoints answer: the segment list, and the member export's reply as OpenAPI
shows it."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIFormat

from recsvc.service.exports.base import MEDIA_TYPES, ExportFormat
from recsvc.version.profiles import SegmentInfo


@dataclass
class MembersOperation(Operation):
    """The export's reply as OpenAPI shows it: one body in the asked-for format, with the headers
    that say which version it comes from and how many rows it holds."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if not isinstance(ok, OpenAPIResponse):
            return
        ok.description = "The members (or the change since `since_version`), streamed"
        ok.content = {
            media_type.split(";")[0]: OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.STRING,
                    format=OpenAPIFormat.BINARY if fmt is ExportFormat.PARQUET else None,
                    description=f"format={fmt.value}",
                )
            )
            for fmt, media_type in MEDIA_TYPES.items()
        }
        ok.headers = {
            "X-Model-Version": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING), description="the version exported"
            ),
            "X-Row-Count": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.INTEGER), description="rows in the body"
            ),
            "Content-Disposition": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING), description="attachment; filename=..."
            ),
        }


class SegmentList(msgspec.Struct, frozen=True, kw_only=True):
    model_version: str
    customers: int  # all customers of the version (the base of each `share`)
    segments: list[SegmentInfo]  # in precedence order: the first a customer is in is primary
