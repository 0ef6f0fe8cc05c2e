"""`GET /v1/segments`, `GET /v1/segments/{name}/members` and `GET /v1/segments/memberships`:
segment sizes and NPS, the streamed member export for marketers (see `recsvc.service.exports` for
the formats and `since_version`) and the segment membership history (one row per spell, see
`recsvc.service.exports.memberships`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from recsvc.api.auth import SECURITY, RequireScope
from recsvc.api.dependencies import Injected
from recsvc.api.errors import KEYED, error_responses
from recsvc.api.params import lists
from recsvc.api.segments.schemas import MembershipsOperation, MembersOperation, SegmentList
from recsvc.api.segments.services import member_stream, membership_history, segment_list
from recsvc.service.exports.base import DEFAULT_FIELDS
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel


class SegmentController(Controller):
    path = "/v1/segments"
    tags = ["segments"]
    before_request = RequireScope("export")
    security = SECURITY

    @get(
        "/",
        summary="Every segment: definition, size, NPS with margin of error",
        responses=error_responses(*KEYED, 503),
        # The first list after an erasure may match the version's customers against it.
        sync_to_thread=True,
    )
    def list_segments(
        self, holder: Injected[ModelHolder], model: Injected[ActiveModel]
    ) -> SegmentList:
        return segment_list(model, holder.masked_rows(model))

    @get(
        "/memberships",
        summary="Stream the segment membership history (CSV, NDJSON or Parquet): one row per spell "
        "a customer spent in a segment",
        description="Columns: segment, customer_id, entered_at, exited_at (empty while a member), "
        "entered_version, exited_version; a row's key is (segment, customer_id, entered_at). "
        "Every publish or rollback closes the spells of those who left a segment and opens "
        "spells for those who entered it, so the open spells are the active version's members.",
        responses=error_responses(*KEYED, 503),
        # Replays the store's journal as the body is written: off the event loop.
        sync_to_thread=True,
        operation_class=MembershipsOperation,
    )
    def memberships(
        self,
        store: Injected[Store],
        holder: Injected[ModelHolder],
        export_format: Annotated[
            str | None,
            QueryParameter(name="format", description="csv (default), ndjson or parquet"),
        ] = None,
        since: Annotated[
            str | None,
            QueryParameter(
                description="only spells that started or ended at or after this moment: ISO 8601 "
                "with a time zone, e.g. 2025-12-30T00:00:00Z",
                schema_extra={"format": "date-time"},
            ),
        ] = None,
    ) -> Stream:
        export = membership_history(store, holder, export_format=export_format, since=since)
        headers = {
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "X-Membership-Seq": str(export.latest.seq if export.latest is not None else 0),
        }
        if export.latest is not None:
            headers["X-Model-Version"] = export.latest.version
        return Stream(export.chunks(), media_type=export.media_type, headers=headers)

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
        store: Injected[Store],
        holder: Injected[ModelHolder],
        model: Injected[ActiveModel],
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
        return member_stream(
            store,
            holder,
            model,
            name,
            export_format=export_format,
            fields=",".join(fields) if fields is not None else None,
            since_version=since_version,
        )
