"""A live NPS response: one the service took in over HTTP between two training runs.

Shared by the intake (which checks and stores it), the stores (which keep it), the customer's live
state and NPS summaries (which read it) and the training run (which merges it).
"""

from __future__ import annotations

import datetime as dt

import msgspec

from recsvc.domain.times import utc


class LiveResponse(msgspec.Struct, frozen=True, kw_only=True):
    """An NPS response accepted by the service (already validated against the contract).

    Its times are aware UTC (`recsvc.domain.times`); responses stored by earlier versions carry naive
    ones, which are read as UTC when decoded.
    """

    response_id: str
    customer_id: str
    score: int
    responded_at: dt.datetime
    touchpoint: str
    order_id: str | None = None
    comment: str | None = None
    received_at: dt.datetime

    def __post_init__(self) -> None:
        for name in ("responded_at", "received_at"):
            moment: dt.datetime = getattr(self, name)
            if moment.tzinfo is not dt.UTC:
                msgspec.structs.force_setattr(self, name, utc(moment))
