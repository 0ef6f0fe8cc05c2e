"""`GET /v1/segments` and `GET /v1/segments/{name}/members`: segment sizes and NPS, and the
streamed member export for marketers (see `recsvc.service.exports` for the formats and `since_version`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.customer_service import active_model
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.params import lists
from recsvc.service.exports import (
    DEFAULT_FIELDS,
    MEDIA_TYPES,
    ExportFormat,
    VersionPath,
    plan_export,
)
from recsvc.store.base import Store
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


def version_locator(request: Request[Any, Any, Any]) -> VersionPath:
    """Where a stored version's files are on local disk (see `Store.version_path`)."""
    store: Store = request.app.state.store
    return store.version_path


class SegmentController(Controller):
    path = "/v1/segments"
    tags = ["segments"]
    before_request = RequireScope("export")
    security = SECURITY

    @get(
        "/",
        summary="Every segment: definition, size, NPS with margin of error",
        responses=error_responses(*KEYED, 503),
        sync_to_thread=False,
    )
    def list_segments(self, request: Request[Any, Any, Any]) -> SegmentList:
        model = active_model(request.app.state.holder)
        profiles = model.profiles
        return SegmentList(
            model_version=model.version, customers=len(profiles), segments=profiles.segments()
        )

    @get(
        "/{name:str}/members",
        summary="Stream a segment's members (CSV, NDJSON or Parquet), or the change since a version",
        responses=error_responses(*KEYED, 404, 409, 503),
        # Comparing with another version reads and searches both member lists: keep it off the loop.
        sync_to_thread=True,
        opt=lists("fields"),
        operation_class=MembersOperation,
    )
    def members(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        export_format: Annotated[
            str | None,
            QueryParameter(name="format", description="csv (default), ndjson or parquet"),
        ] = None,
        fields: Annotated[
            list[str] | None,
            QueryParameter(
                description="profile columns, repeated or comma-separated (customer_id is always "
                f"first); default: {','.join(DEFAULT_FIELDS)}"
            ),
        ] = None,
        since_version: Annotated[
            str | None,
            QueryParameter(
                description="an earlier stored version: export only who entered or exited the "
                "segment since then, with a `change` column"
            ),
        ] = None,
    ) -> Stream:
        model = active_model(request.app.state.holder)
        export = plan_export(
            model.profiles,
            model.version,
            name,
            export_format=export_format,
            fields=",".join(fields) if fields is not None else None,
            since_version=since_version,
            version_path=version_locator(request) if since_version is not None else None,
        )
        return Stream(
            export.chunks(),
            media_type=export.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{export.filename}"',
                "X-Model-Version": export.version,
                "X-Row-Count": str(export.rows),
            },
        )
