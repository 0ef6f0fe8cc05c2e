"""A version's recent orders: the orders that can still trigger a delivery survey, as of the end of
the data the version was trained on (written by `training.publish.recent_orders`, read once per
version by `recsvc.service.surveys`). The order history (`recsvc.version.orders`) keeps no delivery
times; this is where a shop that sends its orders only in its nightly files gets its pre- and
post-delivery triggers from.

File in the version directory: `recent_orders.json`, one `RecentOrdersFile`: the data's end
(`as_of`), how many days before it the orders were placed (`days`, `RECENT_ORDER_DAYS`), and one
JSON array per order, `[customer_id, order_id, placed_at, delivered_at or null, cancelled]`
(about 80 bytes an order: some 8 MB for 100,000 recent orders).

The orders hold customer ids: personal data (`recsvc.domain.privacy.PERSONAL_DATA`, holder
`versions`); whatever reads them leaves out customers a worker masks. A version written before
this file existed has none: no recent orders from the version (`read_recent_orders` is None).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Final

import msgspec

from recsvc.domain.times import utc
from recsvc.errors import ArtifactError
from recsvc.version.artifacts import reason, where

RECENT_ORDERS_FILE: Final = "recent_orders.json"
RECENT_ORDERS_FORMAT: Final = 1


class RecentOrder(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One order from its lines: placed at its earliest line's time, delivered at its latest
    delivered line's (None: no line delivered yet), cancelled when every line is."""

    customer_id: str
    order_id: str
    placed_at: dt.datetime
    delivered_at: dt.datetime | None
    cancelled: bool

    def __post_init__(self) -> None:
        # The time convention: UTC, whichever zone the text or the caller gave.
        if self.placed_at.tzinfo is not dt.UTC:
            msgspec.structs.force_setattr(self, "placed_at", utc(self.placed_at))
        if self.delivered_at is not None and self.delivered_at.tzinfo is not dt.UTC:
            msgspec.structs.force_setattr(self, "delivered_at", utc(self.delivered_at))


class RecentOrdersFile(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = RECENT_ORDERS_FORMAT
    as_of: dt.datetime  # the end of the version's data
    days: int  # orders placed at most this many days before `as_of`
    orders: list[RecentOrder]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RecentOrdersFile)


def write_recent_orders(directory: Path, recent: RecentOrdersFile) -> None:
    (directory / RECENT_ORDERS_FILE).write_bytes(_encoder.encode(recent))


def read_recent_orders(directory: Path) -> RecentOrdersFile | None:
    """The version's recent orders; None for a version written before the file existed."""
    path = directory / RECENT_ORDERS_FILE
    if not path.exists():
        return None
    try:
        recent = _decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ArtifactError(f"{where(path)}: unreadable: {reason(exc)}") from None
    if recent.format_version != RECENT_ORDERS_FORMAT:
        raise ArtifactError(f"{where(path)}: format {recent.format_version} is not supported")
    return recent
