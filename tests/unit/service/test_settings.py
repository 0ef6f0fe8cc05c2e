"""Settings come from RECSVC_* variables, with defaults, and a bad value names its variable."""

import pytest

from recsvc.errors import ConfigError
from recsvc.service.settings import Settings, load_settings, settings_table


def test_defaults_apply_when_no_variable_is_set() -> None:
    assert load_settings({}) == Settings()


def test_variables_override_defaults_and_are_coerced() -> None:
    settings = load_settings({"RECSVC_PORT": "9001", "RECSVC_STORE": "redis://localhost:6379/0"})
    assert settings.port == 9001
    assert settings.store == "redis://localhost:6379/0"


def test_explicit_overrides_win_over_variables_and_none_is_ignored() -> None:
    settings = load_settings({"RECSVC_PORT": "9001"}, port=9002, host=None)
    assert settings.port == 9002
    assert settings.host == Settings().host


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RECSVC_PORT", "eighty"),
        ("RECSVC_PORT", "0"),
        ("RECSVC_WORKERS", "-1"),
        ("RECSVC_LOG_LEVEL", "loud"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value})


def test_the_settings_table_lists_every_variable_with_its_default() -> None:
    table = settings_table()
    for name in Settings.__struct_fields__:
        assert f"`RECSVC_{name.upper()}` | `{getattr(Settings(), name)}`" in table


def test_the_readme_configuration_table_is_the_one_the_code_prints() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert settings_table() in readme
