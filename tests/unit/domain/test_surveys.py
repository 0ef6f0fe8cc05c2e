"""The survey rules without I/O: the throttle (an ask holds 90 days, a decline that is the latest
contact 30), the idempotency key, the stratified allocation, and the shipped rules file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from recsvc.domain.surveys import SurveyEvent, SurveyRules, allocate, held_until, reasons, throttled
from recsvc.errors import ConfigError
from recsvc.service.surveys import load_survey_rules

RULES = SurveyRules()
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


def test_an_ask_holds_90_days_and_a_later_decline_30() -> None:
    assert held_until(None, None, RULES) is None
    assert held_until(T0, None, RULES) == T0 + days(90)
    assert held_until(T0, T0 + days(1), RULES) == T0 + days(31)
    # A send after the decline starts a full throttle again.
    assert held_until(T0 + days(40), T0, RULES) == T0 + days(130)
    assert held_until(None, T0, RULES) == T0 + days(30)
    assert throttled(T0, None, T0 + days(89), RULES)
    assert not throttled(T0, None, T0 + days(90), RULES)
    assert not throttled(T0, T0, T0 + days(30), RULES)


def test_a_send_is_keyed_by_customer_touchpoint_and_utc_day_without_the_id_in_clear() -> None:
    morning = SurveyEvent(kind="sent", customer_id="C1", touchpoint="relationship", at=T0)
    evening = SurveyEvent(
        kind="sent", customer_id="C1", touchpoint="relationship", at=T0 + dt.timedelta(hours=23)
    )
    other_day = SurveyEvent(
        kind="sent", customer_id="C1", touchpoint="relationship", at=T0 + days(1)
    )
    decline = SurveyEvent(kind="declined", customer_id="C1", touchpoint="relationship", at=T0)
    assert morning.key == evening.key
    assert len({morning.key, other_day.key, decline.key}) == 3
    assert "C1" not in morning.key


def test_places_follow_the_margin_of_error_and_never_exceed_what_is_due() -> None:
    assert allocate([100, 100], [10.0, 30.0], 40, 100.0) == [10, 30]
    # The small stratum gives what it cannot use to the others.
    assert allocate([5, 100, 100], [50.0, 10.0, 30.0], 45, 100.0) == [5, 10, 30]
    # A segment without answers counts as the widest.
    assert allocate([100, 100], [None, 50.0], 30, 100.0) == [20, 10]
    assert allocate([3, 2], [1.0, 1.0], 100, 100.0) == [3, 2]
    assert allocate([0, 0], [1.0, 1.0], 10, 100.0) == [0, 0]
    quota = allocate([7, 7, 7], [1.0, 1.0, 1.0], 10, 100.0)
    assert sum(quota) == 10 and quota == [4, 3, 3]  # ties to the lower stratum, deterministic


def test_reasons_name_triggers_only() -> None:
    every = [r for rs in reasons(RULES).values() for r in rs]
    assert every == [
        "pre_delivery_24h",
        "post_delivery_7d",
        "experiment_resurvey",
        "relationship_cadence",
    ]


def test_the_shipped_rules_file_says_what_the_defaults_are() -> None:
    assert load_survey_rules() == SurveyRules()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[throttle]\nthrottle_days = -1\n", "throttle.throttle_days"),
        ("[sampling]\ndaily_kap = 3\n", "daily_kap"),
        ("[triggers]\npost_delivery_days = 'seven'\n", "triggers.post_delivery_days"),
        ("[triggers\n", "not valid TOML"),
    ],
)
def test_a_bad_rules_file_is_a_config_error_naming_file_and_field(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_survey_rules(path)
    assert str(path) in str(caught.value) and named in str(caught.value)
