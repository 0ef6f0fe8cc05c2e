"""API keys: constant-time lookup of a key's scopes, the loopback-only rule of development mode,
and configured keys that are checked without ever being quoted."""

from __future__ import annotations

import pytest

from recsvc.api.auth import check_bind, is_loopback, scopes_of
from recsvc.errors import ConfigError
from recsvc.service.settings import Settings, load_settings

KEYS: dict[str, list[str]] = {
    "recommend-key-0123456789": ["recommend"],
    "admin-and-export-key-0123": ["admin", "export"],
}


def test_a_key_has_its_configured_scopes_and_an_unknown_key_none() -> None:
    assert scopes_of("recommend-key-0123456789", KEYS) == {"recommend"}  # type: ignore[arg-type]
    assert scopes_of("admin-and-export-key-0123", KEYS) == {"admin", "export"}  # type: ignore[arg-type]
    assert scopes_of("recommend-key-012345678", KEYS) is None  # type: ignore[arg-type]
    assert scopes_of("", KEYS) is None  # type: ignore[arg-type]
    assert scopes_of("ключ\udcff", KEYS) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.com", ""])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_development_mode_binds_only_loopback() -> None:
    check_bind(Settings(host="127.0.0.1"))
    with pytest.raises(ConfigError, match=r"refusing to serve 0\.0\.0\.0 without API keys"):
        check_bind(Settings(host="0.0.0.0"))
    check_bind(Settings(host="0.0.0.0", api_keys=KEYS))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "keys",
    ['{"tiny": ["admin"]}', '{"has a blank in it, long enough": ["admin"]}'],
)
def test_a_weak_key_is_refused_without_being_quoted(keys: str) -> None:
    with pytest.raises(ConfigError, match="RECSVC_API_KEYS: key number 1") as error:
        load_settings({"RECSVC_API_KEYS": keys})
    assert "tiny" not in str(error.value) and "blank" not in str(error.value)


def test_keys_that_are_not_json_are_refused_without_being_quoted() -> None:
    with pytest.raises(ConfigError, match="not a JSON object") as error:
        load_settings({"RECSVC_API_KEYS": "secret-key-0123456789: admin"})
    assert "secret" not in str(error.value)


def test_an_unknown_scope_is_refused() -> None:
    with pytest.raises(ConfigError, match="RECSVC_API_KEYS"):
        load_settings({"RECSVC_API_KEYS": '{"long-enough-key-0123": ["superuser"]}'})


def test_a_settings_object_with_a_weak_key_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="api_keys"):
        Settings(api_keys={"tiny": ["admin"]})
