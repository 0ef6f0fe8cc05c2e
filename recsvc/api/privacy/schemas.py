"""What the privacy endpoints answer."""

from __future__ import annotations

import datetime as dt

import msgspec

from recsvc.domain.privacy import Erasure


class ErasureReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """The erasure, durable: the customer is masked everywhere and their records are removed."""

    erasure_id: str
    customer_hash: str  # how the erasure log and the suppression list know the customer
    erased_at: dt.datetime  # data dated up to here is suppressed; later data is a new relationship
    state: str
    removed: dict[str, int]  # records removed: answers, order lines (live and archived)


class ErasureLogPage(msgspec.Struct, frozen=True, kw_only=True):
    entries: list[Erasure]  # newest first
    total: int
