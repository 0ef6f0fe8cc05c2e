"""The segment list of the active version."""

from __future__ import annotations

from recsvc.api.segments.schemas import SegmentList
from recsvc.version.opened import ActiveModel


def segment_list(model: ActiveModel) -> SegmentList:
    profiles = model.profiles
    return SegmentList(
        model_version=model.version, customers=len(profiles), segments=profiles.segments()
    )
