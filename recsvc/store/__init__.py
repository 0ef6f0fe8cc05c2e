"""Where model versions and live NPS responses live: published by the training job, read and
written by the service.

`open_store(url)` is the one constructor: `file://PATH` is the embedded store (local disk, no
server), `redis://HOST:PORT/DB` (or `rediss://`, TLS) the Redis store on one server, and
`redis+cluster://HOST:PORT[,HOST:PORT...]` (or `rediss+cluster://`) the same store on a Redis
Cluster, the nodes listed being where the client starts to discover it. A Redis URL takes the
optional query parameters `prefix` (key prefix, default `recsvc`) and `cache_dir` (where a machine
caches model files), and redis-py's connection options (`recsvc.store.redis_client`).
"""

from __future__ import annotations

from pathlib import Path

from recsvc.errors import ConfigError, StoreUnavailable
from recsvc.store.base import LiveResponse, Store, VersionInfo
from recsvc.store.files import FileStore
from recsvc.store.redis import RedisStore
from recsvc.store.redis_client import URL_STARTS as REDIS_URL_STARTS

__all__ = [
    "REDIS_URL_STARTS",
    "FileStore",
    "LiveResponse",
    "RedisStore",
    "Store",
    "StoreUnavailable",
    "VersionInfo",
    "open_store",
]


def open_store(url: str, *, cache_dir: str | None = None) -> Store:
    """The store behind a URL; `cache_dir` (RECSVC_CACHE_DIR) is where a Redis store keeps the
    model files it downloads (the URL's own `cache_dir` parameter wins)."""
    if url.startswith("file://"):
        return FileStore.from_url(url)
    if url.startswith(REDIS_URL_STARTS):
        return RedisStore(url, cache_dir=Path(cache_dir) if cache_dir else None)
    raise ConfigError(
        f"unsupported store URL {url!r}: use file://PATH, redis://HOST:PORT/DB[?prefix=NAME] "
        "or redis+cluster://HOST:PORT[,HOST:PORT...][?prefix=NAME]"
    )
