"""Announcements of changed live records on `{prefix}:live:changes`: written by every Redis store
instance after a change, read by the workers' mirrors (`recsvc.store.redis_mirror`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec
import redis

log = logging.getLogger("recsvc.store")


class LiveChange(msgspec.Struct, frozen=True):
    """One announcement: these customers' live records changed; `erasures`: the erasure log did."""

    customers: list[str] = []
    erasures: bool = False


_encode = msgspec.json.Encoder().encode
decode_change = msgspec.json.Decoder(LiveChange).decode


class LiveChanges:
    """Announces changes on the channel (every store instance has one); a following worker's own
    mirror is brought up to date before the writer returns (read your own writes)."""

    def __init__(self, client: Any, channel: str) -> None:
        self._client = client
        self.channel = channel
        self.mirror: Follower | None = None

    def announce(self, customers: Iterable[str] = (), *, erasures: bool = False) -> None:
        """Call after the change is written, inside the store's `_reachable` (a failed publish
        fails the write's request: its retry announces again, repeated records included)."""
        change = LiveChange(sorted(set(customers)), erasures)
        if not change.customers and not erasures:
            return
        self._client.publish(self.channel, _encode(change))
        if self.mirror is not None:
            try:
                self.mirror.apply(change)
            except redis.RedisError as exc:  # the mirror thread re-reads on the announcement
                log.warning("live mirror: re-reading after a write failed: %s", exc)


class Follower(Protocol):
    """A mirror this process keeps (`RedisLiveMirror`): brought up to date by the writer itself."""

    def apply(self, change: LiveChange) -> None: ...
