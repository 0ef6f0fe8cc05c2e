"""The experiments area's reply shapes shared with the console: the assignment export as a
streamed file, the same bytes from `GET /v1/experiments/{id}/assignments` and the console's
download links."""

from __future__ import annotations

from litestar.response import Stream

from recsvc.service.experiment_results import assignment_export
from recsvc.service.runtime import ModelHolder
from recsvc.version.opened import ActiveModel


def assignment_stream(
    holder: ModelHolder, model: ActiveModel, experiment: str, export_format: str | None
) -> Stream:
    """One experiment's assignments (erased customers left out) as a streamed file."""
    export = assignment_export(model, experiment, holder.suppression(), export_format)
    headers = {
        "Content-Disposition": f'attachment; filename="{export.filename}"',
        "X-Model-Version": export.version,
    }
    return Stream(export.chunks(), media_type=export.media_type, headers=headers)
