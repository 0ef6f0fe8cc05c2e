"""The segment list of the active version, without the customers this worker masks (erased), and
the membership history from the store's journal, without the customers it suppresses, and a
segment's member export as a streamed file."""

from __future__ import annotations

import numpy as np
from litestar.response import Stream

from recsvc.api.segments.schemas import SegmentList
from recsvc.service.exports.memberships import MembershipExport, plan_memberships
from recsvc.service.exports.plan import plan_export
from recsvc.service.privacy import visible_segments
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel


def segment_list(model: ActiveModel, masked: np.ndarray) -> SegmentList:
    profiles = model.profiles
    return SegmentList(
        model_version=model.version,
        customers=len(profiles) - int(masked.size),
        segments=visible_segments(profiles, masked),
    )


def membership_history(
    store: Store, holder: ModelHolder, *, export_format: str | None, since: str | None
) -> MembershipExport:
    return plan_memberships(
        store.memberships, holder.suppression(), export_format=export_format, since=since
    )


def member_stream(
    store: Store,
    holder: ModelHolder,
    model: ActiveModel,
    name: str,
    *,
    export_format: str | None,
    fields: str | None,
    since_version: str | None,
) -> Stream:
    """A segment's members (or the change since `since_version`) as a streamed file: the API's
    export and the console's export buttons alike."""
    export = plan_export(
        model.profiles,
        model.version,
        name,
        export_format=export_format,
        fields=fields,
        since_version=since_version,
        version_path=store.version_path if since_version is not None else None,
        masked=holder.masked_rows(model),
        suppression=holder.suppression(),
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
