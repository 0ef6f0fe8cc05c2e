"""Service settings, read once from `RECSVC_*` environment variables.

Each field has a default and a one-line description (its `Meta`); `python -m recsvc settings`
prints them as the table the README shows, so the docs cannot drift from the code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from recsvc.errors import ConfigError

PREFIX = "RECSVC_"
MIN_KEY_LENGTH = 16
Scope = Literal["recommend", "export", "ingest", "admin", "privacy", "survey"]


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    store: Annotated[
        str,
        Meta(
            description="where trained versions are published and read: file://PATH, redis://HOST:PORT/DB "
            "or, on a Redis Cluster, redis+cluster://HOST:PORT[,HOST:PORT...]"
        ),
    ] = "file://./var/store"
    host: Annotated[str, Meta(description="interface the HTTP server binds to")] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535, description="TCP port of the HTTP server")] = 8000
    workers: Annotated[int, Meta(ge=1, le=64, description="number of worker processes")] = 1
    log_level: Annotated[
        str,
        Meta(pattern="^(debug|info|warning|error)$", description="debug, info, warning or error"),
    ] = "info"
    api_keys: Annotated[
        dict[str, list[Scope]],
        Meta(
            description="JSON object of API key -> scopes (recommend, export, ingest, admin, "
            "privacy, survey), e.g. "
            '{"<key>": ["recommend"]}; keys of 16+ characters without spaces; '
            "empty: development mode, every scope open, loopback only"
        ),
    ] = msgspec.field(default_factory=dict)
    offers_file: Annotated[
        str,
        Meta(description="offer catalog (TOML); empty: the shipped recsvc/defaults/offers.toml"),
    ] = ""
    recommendation_holdout_share: Annotated[
        float,
        Meta(
            ge=0,
            lt=1,
            description="the personalisation experiment: this share of customers gets the popular "
            "products of their segment instead of personal recommendations (0: off)",
        ),
    ] = 0.0
    surveys_file: Annotated[
        str,
        Meta(
            description="survey rules (TOML: throttle, triggers, re-survey, daily cap); empty: "
            "the shipped recsvc/defaults/surveys.toml"
        ),
    ] = ""
    webhooks_file: Annotated[
        str,
        Meta(
            description="webhook destinations (TOML: URL, secret variable, events, segments); "
            "empty: no webhooks"
        ),
    ] = ""
    webhook_retry_seconds: Annotated[
        float,
        Meta(
            gt=0,
            le=3600,
            description="first wait before a failed webhook delivery is tried again (then doubling, "
            "jittered, at most 6 h apart, for up to 3 days)",
        ),
    ] = 5.0
    deliver_poll_seconds: Annotated[
        float,
        Meta(
            gt=0,
            le=60,
            description="how often `recsvc deliver` looks for new events and due retries",
        ),
    ] = 1.0
    deliver_lock_seconds: Annotated[
        float,
        Meta(
            ge=3,
            le=600,
            description="Redis store: how long a killed `recsvc deliver` holds the delivery lock "
            "before a standby one takes over (the file store's lock dies with its process)",
        ),
    ] = 15.0
    console_session_minutes: Annotated[
        int,
        Meta(
            ge=1,
            le=10_080,
            description="how long a marketer console sign-in lasts (minutes) before the key is "
            "asked for again",
        ),
    ] = 480
    reload_seconds: Annotated[
        float,
        Meta(gt=0, description="how often workers check the store for a newly activated version"),
    ] = 2.0
    cache_dir: Annotated[
        str, Meta(description="where a Redis store's model files are cached on this machine")
    ] = "./var/cache"
    max_body_bytes: Annotated[
        int, Meta(ge=1024, description="largest request body accepted (bytes)")
    ] = 1_048_576
    # The HTTP server's floor is one 8 KiB read buffer.
    max_header_bytes: Annotated[
        int,
        Meta(
            ge=8192,
            description="largest request line and headers accepted (bytes); more gets 431",
        ),
    ] = 65_536
    # The HTTP server accepts 1 ms to 60 s.
    header_timeout_seconds: Annotated[
        float,
        Meta(
            ge=0.001,
            le=60,
            description="time a client has to send a request's headers, and the longest an idle "
            "keep-alive connection stays open",
        ),
    ] = 10.0

    def __post_init__(self) -> None:
        problem = api_key_problem(self.api_keys)
        if problem:
            raise ValueError(f"api_keys: {problem}")


def api_key_problem(keys: object) -> str | None:
    """What is wrong with configured API keys, without quoting them (keys never reach logs)."""
    if not isinstance(keys, dict):
        return None  # the type check reports it
    for number, key in enumerate(keys, start=1):
        if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH or any(ch.isspace() for ch in key):
            return (
                f"key number {number} must be at least {MIN_KEY_LENGTH} characters without spaces"
            )
    return None


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from `RECSVC_*` variables, then `overrides` (e.g. CLI flags; None is ignored).

    A bad value is a ConfigError naming the variable.
    """
    env = os.environ if environ is None else environ
    if PREFIX + "DETRACTOR_WEBHOOK_URL" in env:
        raise ConfigError(
            f"{PREFIX}DETRACTOR_WEBHOOK_URL was replaced by signed webhooks: list the URL in a "
            f"webhooks file ({PREFIX}WEBHOOKS_FILE) with the nps.response.detractor event and "
            "run `recsvc deliver` (README: Connect your CRM)"
        )
    raw: dict[str, object] = {
        name: env[PREFIX + name.upper()]
        for name in Settings.__struct_fields__
        if PREFIX + name.upper() in env
    }
    raw.update({name: value for name, value in overrides.items() if value is not None})
    try:
        if isinstance(raw.get("api_keys"), str):
            raw["api_keys"] = msgspec.json.decode(str(raw["api_keys"]))
    except msgspec.DecodeError:
        # The decoder's message may quote the text, and the text holds the keys: say no more.
        raise ConfigError(f"invalid value for {PREFIX}API_KEYS: not a JSON object") from None
    problem = api_key_problem(raw.get("api_keys"))
    if problem:
        raise ConfigError(f"invalid value for {PREFIX}API_KEYS: {problem}")
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        # msgspec says e.g. "Expected `int`, got `str` - at `$.port`"; name the variable instead.
        problem, _, where = str(exc).partition(" - at ")
        path = where.strip("`").removeprefix("$.")
        field, bracket, rest = path.partition("[")
        variable = PREFIX + field.upper() if field else "a RECSVC_ variable"
        inside = f" (at [{rest})" if bracket else ""
        raise ConfigError(f"invalid value for {variable}{inside}: {problem}") from None


def settings_table() -> str:
    """The settings as a Markdown table: variable, default, description."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    rows = ["| variable | default | description |", "| --- | --- | --- |"]
    for f in info.fields:
        schema = f.type.extra_json_schema if isinstance(f.type, msgspec.inspect.Metadata) else None
        doc = (schema or {}).get("description", "")
        default = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
        rows.append(f"| `{PREFIX}{f.name.upper()}` | `{default}` | {doc} |")
    return "\n".join(rows)
