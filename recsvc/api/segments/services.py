"""The segment list of the active version, without the customers this worker masks (erased)."""

from __future__ import annotations

import numpy as np

from recsvc.api.segments.schemas import SegmentList
from recsvc.service.privacy import visible_segments
from recsvc.version.opened import ActiveModel


def segment_list(model: ActiveModel, masked: np.ndarray) -> SegmentList:
    profiles = model.profiles
    return SegmentList(
        model_version=model.version,
        customers=len(profiles) - int(masked.size),
        segments=visible_segments(profiles, masked),
    )
