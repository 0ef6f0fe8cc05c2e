"""The console's sign-in: a server-side session per signed-in browser, kept in the service's own
store (a file store's directory, or the Redis server under the store's prefix) through Litestar's
stores, so every worker and replica sees it.

- Signing in takes an API key with the `export` scope. The session keeps the key's SHA-256, never
  the key, and a random CSRF token. Scopes are looked up again on every request: a key removed from
  RECSVC_API_KEYS ends its sessions at once, and a key given `admin` later gets it at once.
- The cookie holds only the session id: HttpOnly, SameSite=Strict, path `/console`, Secure when
  the request came over TLS. It lasts `console_session_minutes`; signing out deletes the session.
- Every state-changing form carries the session's CSRF token (synchronizer token). The sign-in
  form, before any session exists, carries a double-submit token: a random value in a short-lived
  cookie and in the form, which must agree.
- A fresh session id is issued at every sign-in, so an id planted before it is worth nothing.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from pathlib import Path
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.stores.base import Store as SessionBackend
from litestar.stores.file import FileStore as FileSessionBackend
from litestar.stores.redis import RedisStore as RedisSessionBackend

from recsvc.api.auth import ALL_SCOPES, scopes_of_digest
from recsvc.service.settings import Settings
from recsvc.store.base import Store
from recsvc.store.files import FileStore
from recsvc.store.redis import RedisStore

CONSOLE_PATH: Final = "/console"
SESSION_COOKIE: Final = "recsvc_console"
SIGN_IN_COOKIE: Final = "recsvc_console_sign_in"
CSRF_FIELD: Final = "csrf_token"
SIGN_IN_SECONDS: Final = 3600  # how long a sign-in form may be left open
SESSIONS_DIR: Final = "console-sessions"


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    key_digest: str  # hex SHA-256 of the key signed in with ("" in development mode)
    csrf: str
    signed_in_at: str  # UTC ISO


_decoder = msgspec.json.Decoder(ConsoleSession)


def session_backend(store: Store) -> SessionBackend:
    """Where sessions live: beside the file store's versions, or in its Redis server."""
    if isinstance(store, FileStore):
        return FileSessionBackend(Path(store.root) / SESSIONS_DIR, create_directories=True)
    if isinstance(store, RedisStore):
        # The store's kind of client, one server or a cluster (each session is one key, so
        # either serves); `Sessions.close` closes it.
        return RedisSessionBackend(
            store.async_client(),
            namespace=f"{store.prefix}:console-sessions",
            handle_client_shutdown=False,
        )
    raise TypeError(f"no console session backend for {type(store).__name__}")


class Sessions:
    """Console sessions on a Litestar store; see the module docstring."""

    def __init__(self, backend: SessionBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings

    @property
    def lifetime(self) -> int:
        return self.settings.console_session_minutes * 60

    async def close(self) -> None:
        """Close the Redis connections (the app's lifespan calls it at shutdown)."""
        if isinstance(self.backend, RedisSessionBackend):
            # Not Litestar's shutdown: it passes `aclose` an argument a cluster client lacks.
            await self.backend._redis.aclose()

    async def create(self, digest: str) -> tuple[str, ConsoleSession]:
        session = ConsoleSession(
            key_digest=digest,
            csrf=secrets.token_urlsafe(32),
            signed_in_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        sid = secrets.token_urlsafe(32)
        if isinstance(self.backend, FileSessionBackend) and Path(self.backend.path).is_dir():
            # Files of sessions nobody came back to are removed here (Redis expires its keys).
            await self.backend.delete_expired()
        await self.backend.set(sid, msgspec.json.encode(session), expires_in=self.lifetime)
        return sid, session

    async def get(self, sid: str | None) -> ConsoleSession | None:
        if not sid or len(sid) > 100:
            return None
        data = await self.backend.get(sid)
        if data is None:
            return None
        try:
            return _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    async def delete(self, sid: str | None) -> None:
        if sid and len(sid) <= 100:
            await self.backend.delete(sid)

    def scopes(self, session: ConsoleSession) -> frozenset[str] | None:
        """The session key's scopes now, or None when the key is no longer configured."""
        keys = self.settings.api_keys
        if not keys:
            return ALL_SCOPES  # development mode: every scope open, as on the API
        try:
            digest = bytes.fromhex(session.key_digest)
        except ValueError:
            return None
        found = scopes_of_digest(digest, keys)
        return frozenset(found) if found is not None else None


def is_tls(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def cookie(request: Request[Any, Any, Any], name: str, value: str, max_age: int) -> Cookie:
    """A console cookie: HttpOnly, SameSite=Strict, path /console, Secure over TLS."""
    return Cookie(
        key=name,
        value=value,
        path=CONSOLE_PATH,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
    )


def ended(response: Response[Any]) -> Response[Any]:
    """The response with the session cookie deleted."""
    response.delete_cookie(SESSION_COOKIE, path=CONSOLE_PATH)
    return response


def same_token(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(expected, given)
