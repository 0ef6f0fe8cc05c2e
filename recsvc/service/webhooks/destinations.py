"""Webhook destinations: the TOML file (`RECSVC_WEBHOOKS_FILE`) naming where events go, each with
its URL, secret (read from an environment variable), event and segment filters and batch size.

A bad file is a start-up error (ConfigError) naming the destination and the field.
"""

from __future__ import annotations

import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from recsvc.domain.webhooks import EVENT_TYPES, decode_secret
from recsvc.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class DestinationEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    # The variable's value: one `whsec_` secret, or several separated by spaces while rotating
    # (every one signs each message; receivers accept any).
    secret_env: str
    events: list[str] = msgspec.field(default_factory=lambda: list(EVENT_TYPES))
    segments: list[str] = msgspec.field(default_factory=list)  # empty: every segment
    batch_size: Annotated[int, Meta(ge=1, le=10_000)] = 500
    timeout_seconds: Annotated[float, Meta(gt=0, le=120)] = 10.0


class _DestinationsFile(msgspec.Struct, forbid_unknown_fields=True):
    destinations: dict[str, DestinationEntry]


class Destination(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    url: str
    keys: list[bytes]
    events: frozenset[str]
    segments: frozenset[str]  # empty: every segment
    batch_size: int
    timeout_seconds: float

    def wants(self, event_type: str) -> bool:
        return event_type in self.events

    def wants_segment(self, segment: str) -> bool:
        return not self.segments or segment in self.segments


class Webhooks(msgspec.Struct, frozen=True):
    """The destinations a worker (or the deliverer) was started with."""

    destinations: list[Destination]

    @classmethod
    def from_file(cls, path: str) -> Webhooks:
        return cls(load_destinations(Path(path) if path else None))


def load_destinations(
    path: Path | None, environ: Mapping[str, str] | None = None
) -> list[Destination]:
    """The configured destinations (none without a file); ConfigError naming what is wrong."""
    if path is None:
        return []
    env = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"webhooks file {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"webhooks file {path}: not valid TOML ({exc})") from None
    entries = raw.get("destinations") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(
            f"webhooks file {path}: needs a [destinations.NAME] table per destination"
        )
    destinations = []
    for name, entry in entries.items():
        where = f"webhooks file {path}: destination {name!r}"
        if not NAME.match(name):
            raise ConfigError(f"{where}: a name is 1-64 letters, digits, '-' or '_'")
        try:
            checked = msgspec.convert(entry, DestinationEntry)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        destinations.append(_destination(name, checked, env, where))
    return destinations


def _destination(
    name: str, entry: DestinationEntry, env: Mapping[str, str], where: str
) -> Destination:
    parts = urllib.parse.urlsplit(entry.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: url must be an http:// or https:// URL")
    unknown = sorted(set(entry.events) - set(EVENT_TYPES))
    if unknown or not entry.events:
        raise ConfigError(
            f"{where}: events: {', '.join(unknown) or '(none)'} not among {', '.join(EVENT_TYPES)}"
        )
    secrets = env.get(entry.secret_env, "").split()
    if not secrets:
        raise ConfigError(f"{where}: the variable {entry.secret_env} (secret_env) is not set")
    keys = []
    for number, secret in enumerate(secrets, start=1):
        try:
            keys.append(decode_secret(secret))
        except ValueError as exc:
            raise ConfigError(f"{where}: secret {number} in {entry.secret_env}: {exc}") from None
    return Destination(
        name=name,
        url=entry.url,
        keys=keys,
        events=frozenset(entry.events),
        segments=frozenset(entry.segments),
        batch_size=entry.batch_size,
        timeout_seconds=entry.timeout_seconds,
    )
