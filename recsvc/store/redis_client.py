"""How the Redis store reaches Redis: its URL made into a client, for one server
(`redis://HOST:PORT/DB`, `rediss://` for TLS) or a Redis Cluster
(`redis+cluster://HOST:PORT[,HOST:PORT...]`, `rediss+cluster://`), and which client errors mean
that Redis cannot serve right now rather than a mistake of ours.

A cluster URL lists startup nodes: any one that answers tells the client the whole slot map. Its
path may only be empty or `/0` (a cluster has one database). Query parameters are the same for
both: the store's own (`prefix`, `cache_dir`) and redis-py's connection options (`socket_timeout`,
`ssl_*`, ...), which apply to every node.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import URL_QUERY_ARGUMENT_PARSERS, parse_url
from redis.exceptions import (
    AskError,
    ClusterError,
    InvalidResponse,
    RedisClusterException,
    TryAgainError,
)
from redis.retry import Retry

from recsvc.errors import ConfigError

if TYPE_CHECKING:
    import redis.asyncio

SINGLE_SCHEMES = ("redis", "rediss")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
URL_STARTS = tuple(f"{scheme}://" for scheme in (*SINGLE_SCHEMES, *CLUSTER_SCHEMES))
OWN_QUERY_PARAMETERS = ("prefix", "cache_dir")
SOCKET_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 1.0
DEFAULT_PORT = 6379

# Errors that mean Redis cannot answer now: down, unreachable, something else on the port (an
# InvalidResponse), or, on a cluster, a slot no node serves, a failover or resharding under way
# (CLUSTERDOWN, TRYAGAIN, redirections that never settle) or no startup node answering. redis-py
# raises the last kinds as RedisClusterException, which is not a RedisError.
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    InvalidResponse,
    ClusterError,
    TryAgainError,
    AskError,
    RedisClusterException,
)
# Every error a client raises, for the callers that turn any of them into StoreUnavailable.
CLIENT_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)


def redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@dataclass(frozen=True)
class RedisUrl:
    """A Redis store URL taken apart."""

    url: str  # redacted
    own: dict[str, str]  # the store's own query parameters (prefix, cache_dir)
    # A single server's URL without the store's parameters (for a cluster: its first startup
    # node's, carrying the credentials and connection options of all of them).
    client_url: str
    startup_nodes: tuple[tuple[str, int], ...] = ()  # a cluster's; empty for one server

    @property
    def cluster(self) -> bool:
        return bool(self.startup_nodes)

    @classmethod
    def parse(cls, url: str) -> RedisUrl:
        shown = redacted(url)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in (*SINGLE_SCHEMES, *CLUSTER_SCHEMES):
            raise ConfigError(
                f"store URL {shown!r} is not a redis://, rediss://, redis+cluster:// or "
                "rediss+cluster:// URL"
            )
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        own = {name: value for name, value in query if name in OWN_QUERY_PARAMETERS}
        passed = [(name, value) for name, value in query if name not in OWN_QUERY_PARAMETERS]
        for name, _ in passed:
            if name not in URL_QUERY_ARGUMENT_PARSERS and not name.startswith("ssl_"):
                raise ConfigError(f"store URL {shown!r}: unknown parameter {name!r}")
        if parts.scheme in SINGLE_SCHEMES:
            client_url = urllib.parse.urlunsplit(
                parts._replace(query=urllib.parse.urlencode(passed))
            )
            return cls(shown, own, client_url)
        userinfo, _, hosts = parts.netloc.rpartition("@")
        nodes = tuple(_node(host, shown) for host in hosts.split(","))
        if parts.path not in ("", "/", "/0") or any(name == "db" for name, _ in passed):
            raise ConfigError(f"store URL {shown!r}: a Redis Cluster has only database 0")
        first = hosts.split(",")[0]
        client_url = urllib.parse.urlunsplit(
            (
                parts.scheme.removesuffix("+cluster"),
                f"{userinfo}@{first}" if userinfo else first,
                "",
                urllib.parse.urlencode(passed),
                "",
            )
        )
        try:
            parse_url(client_url)  # a bad option value fails here, not at the first request
        except ValueError as exc:
            raise ConfigError(f"store URL {shown!r}: {exc}") from None
        return cls(shown, own, client_url, nodes)

    def connect(self) -> redis.Redis:
        """The client: it connects on first use, so opening a store never waits for Redis.

        URL parameters (e.g. ?socket_timeout=5) override the timeouts here. One server: one
        retry without delay on a broken connection replaces a pooled connection a Redis restart
        has cut; a Redis that is really gone fails within about the connect timeout. A cluster:
        no retry. The cluster client's retries also cover timeouts and CLUSTERDOWN, each with a
        fresh slot map (and a 0.25 s pause after CLUSTERDOWN), so a hung node would cost two or
        more socket timeouts per call rather than one (4 to 8 s measured, against 2). Without
        them, a failover still costs at most one failed call: the client fetches the slot map
        again before it raises. (A connection a node's restart has cut is replaced when it leaves
        the pool, as with one server.)"""
        if not self.cluster:
            try:
                return redis.Redis.from_url(
                    self.client_url,
                    socket_timeout=SOCKET_TIMEOUT_SECONDS,
                    socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                )
            except ValueError as exc:
                raise ConfigError(f"store URL {self.url!r}: {exc}") from None

        def cluster() -> RedisCluster:
            return RedisCluster(
                url=self.client_url,
                # The URL names the first startup node; any one that answers gives the slot map.
                startup_nodes=[ClusterNode(host, port) for host, port in self.startup_nodes[1:]],
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )

        # Typed as the one-server client: the cluster client has the same commands. What differs
        # is which keys one command, transaction or script may touch (one slot), which the key
        # layout (`recsvc.store.redis`) sees to.
        return cast(redis.Redis, LazyCluster(cluster))

    def connect_async(self) -> redis.asyncio.Redis:
        """An asyncio client to the same Redis (the console's sessions); it connects on first
        use. Close it with `aclose()` (no arguments: the cluster client takes none)."""
        import redis.asyncio  # only the service's console needs it
        import redis.asyncio.cluster

        options: dict[str, Any] = {
            "socket_timeout": SOCKET_TIMEOUT_SECONDS,
            "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        }
        if not self.cluster:
            return redis.asyncio.Redis.from_url(self.client_url, **options)
        client = redis.asyncio.cluster.RedisCluster.from_url(
            self.client_url,
            startup_nodes=[
                redis.asyncio.cluster.ClusterNode(host, port)
                for host, port in self.startup_nodes[1:]
            ],
            **options,
        )
        return cast(redis.asyncio.Redis, client)


def _node(text: str, shown: str) -> tuple[str, int]:
    """`host:port`, `host` or `[v6 address]:port` of a cluster URL."""
    parsed = urllib.parse.urlsplit(f"//{text}")
    try:
        host, port = parsed.hostname, parsed.port or DEFAULT_PORT
    except ValueError:
        host = None
    if not host:
        raise ConfigError(f"store URL {shown!r}: {text!r} is not HOST:PORT")
    return host, port


class LazyCluster:
    """A RedisCluster made on first use. Its constructor asks a startup node for the slot map,
    and a store is opened where Redis need not answer yet (a preflight check, a worker starting
    while the cluster is down, which then serves degraded); the one-server client connects on
    first use as well. A failed attempt leaves nothing behind: the next call tries again."""

    def __init__(self, connect: Callable[[], RedisCluster]) -> None:
        self._connect = connect
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def _cluster(self) -> RedisCluster:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
                client = self._client
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster(), name)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
