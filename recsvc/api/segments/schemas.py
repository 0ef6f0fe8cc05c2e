"""What the segments endpoints answer: the segment list, and the replies of the member export and
the membership history as OpenAPI shows them."""

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


def streamed_file(operation: Operation, description: str, headers: dict[str, str]) -> None:
    """An export's reply as OpenAPI shows it: one body in the asked-for format, with `headers`
    (name: what it says; a `X-...-Count` or `...-Seq` is an integer) and Content-Disposition."""
    ok = (operation.responses or {}).get("200")
    if not isinstance(ok, OpenAPIResponse):
        return
    ok.description = description
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
        name: OpenAPIHeader(
            schema=Schema(
                type=OpenAPIType.INTEGER
                if name.endswith(("-Count", "-Seq"))
                else OpenAPIType.STRING
            ),
            description=text,
        )
        for name, text in {**headers, "Content-Disposition": "attachment; filename=..."}.items()
    }


@dataclass
class MembersOperation(Operation):
    """The member export's reply: which version it comes from and how many rows it holds."""

    def __post_init__(self) -> None:
        streamed_file(
            self,
            "The members (or the change since `since_version`), streamed",
            {"X-Model-Version": "the version exported", "X-Row-Count": "rows in the body"},
        )


@dataclass
class MembershipsOperation(Operation):
    """The membership history's reply: the journal's last activation it reflects."""

    def __post_init__(self) -> None:
        streamed_file(
            self,
            "One row per membership spell, streamed (only the header row before the first "
            "published version)",
            {
                "X-Model-Version": "the active version as of the history's last activation "
                "(absent before the first)",
                "X-Membership-Seq": "the history's last activation (0 before the first)",
            },
        )


class SegmentList(msgspec.Struct, frozen=True, kw_only=True):
    model_version: str
    customers: int  # all customers of the version (the base of each `share`)
    segments: list[SegmentInfo]  # in precedence order: the first a customer is in is primary
