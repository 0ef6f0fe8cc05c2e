"""API keys and scopes: `Authorization: Bearer KEY` or `X-API-Key: KEY`, checked by route guards.

Keys are compared in constant time and never logged. With no keys configured the service runs in
development mode: every scope is open, and `recsvc serve` refuses to bind anything but loopback.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Literal

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

Scope = Literal["recommend", "export", "ingest", "admin"]


def presented_key(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return connection.headers.get("x-api-key") or None


def scopes_of(key: str, keys: dict[str, list[str]]) -> set[str] | None:
    """The key's scopes, or None for an unknown key; every configured key is compared."""
    found: set[str] | None = None
    for candidate, scopes in keys.items():
        if hmac.compare_digest(candidate.encode(), key.encode()):
            found = set(scopes)
    return found


def requires(scope: Scope) -> Callable[[ASGIConnection, BaseRouteHandler], None]:
    """A guard that admits requests whose key carries `scope` (401 without a key, 403 without it)."""

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        keys: dict[str, list[str]] = connection.app.state.settings.api_keys
        if not keys:
            return
        key = presented_key(connection)
        if key is None:
            raise NotAuthorizedException(
                "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            )
        scopes = scopes_of(key, keys)
        if scopes is None:
            raise NotAuthorizedException("unknown API key")
        if scope not in scopes:
            raise PermissionDeniedException(f"this API key lacks the '{scope}' scope")

    return guard
