"""Where model versions live: published by the training job, read by the service.

`open_store(url)` is the one constructor: `file://PATH` is the embedded store.
"""

from __future__ import annotations

from recsvc.errors import ConfigError
from recsvc.store.files import FileStore, VersionInfo

__all__ = ["FileStore", "VersionInfo", "open_store"]


def open_store(url: str) -> FileStore:
    if url.startswith("file://"):
        return FileStore.from_url(url)
    raise ConfigError(
        f"unsupported store URL {url!r}: use file://PATH (a Redis store comes with the service issue)"
    )
