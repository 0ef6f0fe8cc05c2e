"""The segment list of the active version, without the customers this worker masks (erased), and
the membership history from the store's journal, without the customers it suppresses."""

from __future__ import annotations

import numpy as np

from recsvc.api.segments.schemas import SegmentList
from recsvc.service.exports.memberships import MembershipExport, plan_memberships
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
