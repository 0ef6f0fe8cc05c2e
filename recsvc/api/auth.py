"""API keys and scopes: `Authorization: Bearer KEY` or `X-API-Key: KEY`, checked per route.

Scopes: `recommend` (recommendations, offers), `export` (profiles, segments, members, NPS
summaries), `ingest` (NPS and order intake), `admin` (model versions, the erasure log), `privacy`
(erasing a customer, exporting what is held about them), `survey` (who to survey next, sends and
declines), each checked by a per-controller hook
(`RequireScope`). Health probes, `/metrics` and the API docs need no key: they carry no
customer data.

Keys are compared in constant time (SHA-256 digests, so not even the length leaks) and never logged
or echoed. With no keys configured the service runs in development mode: every scope is open, and
`recsvc serve` refuses to bind anything but loopback (`check_bind`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Any, get_args

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.openapi.spec import SecurityScheme

from recsvc.api.params import check_query
from recsvc.errors import ConfigError
from recsvc.service.settings import Scope, Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
CHALLENGE = {"WWW-Authenticate": "Bearer"}
# How OpenAPI documents the two ways of presenting a key (see `create_app`).
SECURITY_SCHEMES = {
    "bearer": SecurityScheme(type="http", scheme="bearer", description="Authorization: Bearer KEY"),
    "api_key": SecurityScheme(
        type="apiKey", name="X-API-Key", security_scheme_in="header", description="X-API-Key: KEY"
    ),
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"api_key": []}]


def presented_key(connection: ASGIConnection) -> str | None:
    return key_in(connection.headers.get("authorization"), connection.headers.get("x-api-key"))


def key_in(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request presents: `Authorization: Bearer KEY`, else `X-API-Key: KEY`."""
    header = authorization or ""
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return api_key or None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def key_digest(key: str) -> str:
    """What the console keeps of a key in its session: the key's SHA-256, never the key."""
    return _digest(key).hex()


def scopes_of(key: str, keys: dict[str, list[Scope]]) -> set[str] | None:
    """The key's scopes, or None for an unknown key; every configured key is compared."""
    return scopes_of_digest(_digest(key), keys)


def scopes_of_digest(presented: bytes, keys: dict[str, list[Scope]]) -> set[str] | None:
    """The scopes of the key with this SHA-256 digest, or None when no configured key has it (a
    key removed from RECSVC_API_KEYS ends the console sessions signed in with it)."""
    found: set[str] | None = None
    for candidate, scopes in keys.items():
        if hmac.compare_digest(_digest(candidate), presented):
            found = set(scopes)
    return found


ALL_SCOPES: frozenset[str] = frozenset(get_args(Scope))


def granted(keys: dict[str, list[Scope]], key: str | None) -> frozenset[str] | None:
    """The scopes a request's key carries: every scope when no keys are configured (development
    mode), None for a missing or unknown key."""
    if not keys:
        return ALL_SCOPES
    found = scopes_of(key, keys) if key is not None else None
    return frozenset(found) if found is not None else None


def check_scope(connection: ASGIConnection, scope: Scope) -> frozenset[str]:
    """Admit a request whose key carries `scope`: 401 without a (known) key, 403 without it.
    Returns every scope the key carries (all of them in development mode)."""
    key = presented_key(connection)
    scopes = granted(connection.app.state.settings.api_keys, key)
    if scopes is None:
        raise NotAuthorizedException(
            "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            if key is None
            else "unknown API key",
            headers=CHALLENGE,
        )
    if scope not in scopes:
        raise PermissionDeniedException(f"this API key lacks the '{scope}' scope")
    return scopes


def scopes(request: Request[Any, Any, Any]) -> frozenset[str]:
    """The scopes of the request's key, as `RequireScope` found them."""
    granted: frozenset[str] = request.state.scopes
    return granted


class RequireScope:
    """A `before_request` hook (set on a controller) running `check_scope` and `check_query`
    first thing; the key's scopes are kept in `request.state.scopes` (see `scopes`).

    A hook rather than a Litestar guard: Litestar copies the route handler for every guard call,
    measurable at thousands of requests per second; the hook is one plain call. It runs before any
    parameter is parsed or body read, inside the route's error handling (so a 401 is counted under
    its route in /metrics). An object rather than a function, so that as a class attribute it is
    not bound as a method."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, request: Request[Any, Any, Any]) -> None:
        request.state.scopes = check_scope(request, self.scope)
        check_query(request)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Development mode (no API keys) opens every scope: allow it on loopback only."""
    if not settings.api_keys and not is_loopback(settings.host):
        raise ConfigError(
            f"refusing to serve {settings.host} without API keys: every endpoint would be open; "
            "set RECSVC_API_KEYS or bind 127.0.0.1"
        )
