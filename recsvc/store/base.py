"""The store interface: what the training job publishes into and the service reads from.

Two implementations share it and one test suite: the embedded `FileStore` (local disk, no server)
and `RedisStore` (`redis://`). A store holds model versions (published atomically, one active,
older ones kept for rollback) and the live NPS responses the service takes in between runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from recsvc.artifacts import LoadedModel, Manifest
from recsvc.live import LiveResponse
from recsvc.version import ActiveModel


class VersionInfo(msgspec.Struct, frozen=True):
    version: str
    created_at: str
    active: bool
    ndcg: float | None = None


class StoreUnavailable(Exception):
    """The store's backing server cannot be reached (the service answers 503 for writes)."""


class Store(Protocol):
    """What both stores provide. Every method is synchronous and safe to call from threads."""

    url: str

    # --- model versions ---------------------------------------------------------------------
    def active_version(self) -> str | None: ...

    def list_versions(self) -> list[VersionInfo]: ...

    def manifest(self, version: str) -> Manifest: ...

    def version_path(self, version: str) -> Path:
        """A stored version's files on local disk (a Redis store downloads them into its cache);
        NotFoundError when the version is not stored."""
        ...

    def publish(self, artifact: Path, *, activate: bool = True, keep: int = 3) -> str:
        """Store an artifact directory as a new version: every file first, then (if `activate`) one
        pointer switch, so readers never see a half-written version. Returns the version."""
        ...

    def activate(self, version: str) -> None:
        """Make a stored version the active one (rollback), after opening it as a worker would
        (`open`): NotFoundError if it is not stored, ArtifactError naming the file that is wrong
        (the pointer does not move)."""
        ...

    def open(self, version: str) -> ActiveModel:
        """A stored version opened as a worker serves it, every file checked against the
        manifest's SHA-256 (`recsvc.version.open_checked`); NotFoundError, ArtifactError."""
        ...

    def prune(self, keep: int) -> list[str]:
        """Remove the oldest versions beyond `keep`, never the active one; returns the removed."""
        ...

    def load_active(self) -> LoadedModel | None:
        """The active version, memory-mapped from local disk (a Redis store caches its files
        locally first, shared by the workers of one machine). None when nothing is published."""
        ...

    # --- live NPS intake --------------------------------------------------------------------
    def add_responses(self, responses: list[LiveResponse]) -> list[bool]:
        """Store responses durably before returning; idempotent by response_id. Returns, per
        response, True if it was new and False if that response_id was already stored."""
        ...

    def live_responses(self, customer_id: str) -> list[LiveResponse]:
        """A customer's live responses, oldest first."""
        ...

    def iter_live_responses(self) -> Iterator[LiveResponse]:
        """Every live response (the nightly run ingests them), in the order they were stored."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable when the backing server cannot be reached."""
        ...

    def close(self) -> None: ...
