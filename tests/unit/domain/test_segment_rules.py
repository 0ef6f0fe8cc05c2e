"""Segment definitions: the segments file, the expression language, its errors, and both backends."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from recsvc.domain import customer_table as ct
from recsvc.domain.segments.catalog import DEFAULT_SEGMENTS_PATH, load_segments, parse_segments
from recsvc.domain.segments.evaluate import evaluate, evaluate_rule
from recsvc.domain.segments.rules import SegmentDefinition, parse_rule
from recsvc.errors import ConfigError
from training.customers.segments import assign_segments, compile_rule


def _one(expression: str, extra: tuple[str, ...] = ()) -> SegmentDefinition:
    rules = parse_segments(
        [("test.toml", f'[segments.probe]\nexpression = "{expression}"\n')], extra_columns=extra
    )
    return rules.get("probe")


def _error(expression: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_rule("my_segment", expression, source="mine.toml")
    message = str(caught.value)
    assert "segment 'my_segment'" in message
    assert "mine.toml" in message
    return message


# --- the shipped defaults --------------------------------------------------------------------------


def test_the_defaults_declare_the_required_segments_with_unique_priorities() -> None:
    rules = load_segments()
    required = {
        "promoters",
        "passives",
        "detractors",
        "unknown_nps",
        "brand_ambassadors",
        "high_value_detractors",
        "at_risk_passives",
        *ct.RFM_SEGMENT_NAMES,
    }
    assert required <= set(rules.names)
    priorities = [d.priority for d in rules]
    assert None not in priorities
    assert len(set(priorities)) == len(priorities)
    assert all(d.description for d in rules)


def test_every_customer_falls_in_exactly_one_nps_category_segment() -> None:
    rules = load_segments()
    for category in ("promoter", "passive", "detractor", "unknown"):
        member_of = set(rules.memberships({ct.NPS_CATEGORY: category}))
        assert len(member_of & {"promoters", "passives", "detractors", "unknown_nps"}) == 1


def test_a_new_detractor_moves_to_the_detractor_segments_at_once() -> None:
    """The service's path: one record, pure Python, no polars."""
    rules = load_segments()
    record: dict[str, Any] = {
        ct.NPS_CATEGORY: "promoter",
        ct.RFM_SEGMENT: "champions",
        ct.R_SCORE: 5,
        ct.M_SCORE: 5,
        ct.ORDER_COUNT: 12,
    }
    assert rules.primary_segment(record) == "brand_ambassadors"
    record[ct.NPS_CATEGORY] = "detractor"
    assert rules.primary_segment(record) == "high_value_detractors"
    assert {"high_value_detractors", "detractors", "champions"} <= set(rules.memberships(record))


# --- the language ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "record", "expected"),
    [
        ("nps_category == 'detractor'", {"nps_category": "detractor"}, True),
        ("nps_score >= 9", {"nps_score": 9}, True),
        ("nps_score >= 9", {"nps_score": 8}, False),
        ("1 <= r_score <= 2", {"r_score": 2}, True),
        ("1 <= r_score <= 2", {"r_score": 3}, False),
        ("5 > r_score", {"r_score": 3}, True),
        ("rfm_segment in ['at_risk', 'cant_lose']", {"rfm_segment": "cant_lose"}, True),
        ("rfm_segment not in ['at_risk', 'cant_lose']", {"rfm_segment": "champions"}, True),
        ("'books' in favourite_categories", {"favourite_categories": ["toys", "books"]}, True),
        ("'books' not in favourite_categories", {"favourite_categories": []}, True),
        ("nps_score is None", {"nps_score": None}, True),
        ("nps_score is not None", {"nps_score": 3}, True),
        ("nps_score == None", {"nps_score": None}, True),
        ("last_delivery_late", {"last_delivery_late": True}, True),
        ("not last_delivery_late", {"last_delivery_late": False}, True),
        ("last_delivery_late == true", {"last_delivery_late": True}, True),
        ("churn_risk > 0.5 and return_rate < -0.5 or order_count == 0", {"order_count": 0}, True),
        (
            "post_delivery_score < pre_delivery_score",
            {"post_delivery_score": 4, "pre_delivery_score": 9},
            True,
        ),
        ("signup_date >= '2024-01-01'", {"signup_date": dt.date(2024, 3, 1)}, True),
        ("last_order_at < '2024-01-01'", {"last_order_at": dt.datetime(2023, 12, 31, 23)}, True),
        ("True", {}, True),
    ],
)
def test_valid_expressions(expression: str, record: dict[str, Any], expected: bool) -> None:
    assert evaluate(_one(expression), record) is expected


def test_a_comparison_with_a_missing_value_is_unknown_and_not_does_not_flip_it() -> None:
    rule = parse_rule("s", "nps_score < 7")
    assert evaluate_rule(rule, {"nps_score": None}) is None
    assert evaluate_rule(parse_rule("s", "not (nps_score < 7)"), {"nps_score": None}) is None
    # Kleene logic: unknown and False is False, unknown or True is True.
    assert (
        evaluate_rule(
            parse_rule("s", "nps_score < 7 and order_count > 5"),
            {"nps_score": None, "order_count": 1},
        )
        is False
    )
    assert (
        evaluate_rule(
            parse_rule("s", "nps_score < 7 or order_count > 5"),
            {"nps_score": None, "order_count": 9},
        )
        is True
    )
    # A record without the key is treated as missing.
    assert evaluate(_one("nps_score < 7"), {}) is False


def test_extra_customer_attributes_can_be_used_as_text() -> None:
    definition = _one("loyalty_member == 'yes'", extra=("loyalty_member",))
    assert evaluate(definition, {"loyalty_member": "yes"})


# --- errors name the segment and the problem ---------------------------------------------------------


def test_syntax_error_names_the_position() -> None:
    message = _error("nps_score >= ")
    assert "syntax error" in message and "at the end" in message
    assert "at character 6" in _error("a == (b")


def test_unknown_column_lists_the_known_ones() -> None:
    message = _error("nps_categry == 'detractor'")
    assert "unknown column 'nps_categry'" in message
    assert "nps_category" in message and "rfm_segment" in message


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("nps_score >= 'high'", "is a number"),
        ("nps_category == 3", "is text"),
        ("last_delivery_late == 1", "yes/no"),
        ("nps_category == 'detractr'", "not a value of 'nps_category'"),
        ("rfm_segment in ['champions', 'loyal']", "not a value of 'rfm_segment'"),
        ("country > 'DE'", "needs numbers or dates"),
        ("signup_date > 'yesterday'", "YYYY-MM-DD"),
        ("nps_score", "not yes/no"),
        ("nps_score is 3", "only checks for a missing value"),
        ("nps_score < None", "cannot compare with None"),
        ("3 == 3", "two fixed values"),
        ("len(country) > 2", "not allowed"),
        ("country.lower() == 'de'", "not allowed"),
        ("nps_score + 1 > 3", "not allowed"),
        ("country in 'DE'", "list of values"),
        ("country in []", "at least one value"),
        ("favourite_categories == 'books'", "is a list"),
        ("'books' in country", "needs a list column"),
        ("nps_score == order_count or country == nps_score", "cannot compare"),
        ("   ", "empty"),
    ],
)
def test_invalid_expressions(expression: str, fragment: str) -> None:
    assert fragment in _error(expression)


def _parse_error(text: str, *more: tuple[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_segments([("mine.toml", text), *more])
    return str(caught.value)


def test_file_level_errors() -> None:
    assert "not valid TOML" in _parse_error("[segments\n")
    assert "unknown top-level key" in _parse_error("segmnts = 1\n")
    message = _parse_error('[segments.vip]\nexpresion = "order_count > 3"\n')
    assert "segment 'vip'" in message and "unknown key(s) expresion" in message
    message = _parse_error('[segments.vip]\nexpression = "order_count > 3"\npriority = "high"\n')
    assert "segment 'vip'" in message and "whole number" in message
    assert "needs an expression" in _parse_error("[segments.vip]\npriority = 3\n")
    assert "lower-case" in _parse_error('[segments]\nVIP = "order_count > 3"\n')


def test_duplicate_priorities_are_refused_naming_both_segments() -> None:
    message = _parse_error(
        '[segments.a]\nexpression = "order_count > 3"\npriority = 5\n'
        '[segments.b]\nexpression = "order_count > 9"\npriority = 5\n'
    )
    assert "segment 'b'" in message and "segment 'a'" in message and "priority 5" in message


def test_a_bad_rule_in_a_shops_file_fails_on_load(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text('[segments]\nvip = "monetary_vaue > 1000"\n')
    with pytest.raises(
        ConfigError, match=r"shop.toml: segment 'vip': unknown column 'monetary_vaue'"
    ):
        load_segments([path])
    with pytest.raises(ConfigError, match="cannot read segments file"):
        load_segments([tmp_path / "missing.toml"])


# --- files, overrides and priority --------------------------------------------------------------------


def test_a_shop_file_adds_replaces_and_switches_off_defaults(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(
        "[segments]\ngerman_promoters = \"country == 'DE' and nps_category == 'promoter'\"\n"
        '[segments.detractors]\nexpression = "nps_score <= 5"\npriority = 91\n'
        "[segments.unknown_nps]\nenabled = false\n"
    )
    rules = load_segments([path])
    assert "german_promoters" in rules.names
    assert "unknown_nps" not in rules.names
    assert rules.get("detractors").expression == "nps_score <= 5"
    # The short form has no priority: it ranks after every segment that has one.
    assert rules.names[-1] == "german_promoters"


def test_include_defaults_false_keeps_only_the_shops_segments(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text('include_defaults = false\n[segments]\nvip = "m_score == 5"\n')
    assert load_segments([path]).names == ("vip",)


def test_larger_priority_wins_and_short_forms_keep_file_order() -> None:
    rules = parse_segments(
        [
            (
                "x.toml",
                '[segments]\nlate_one = "order_count >= 0"\nearly = "order_count >= 0"\n'
                '[segments.low]\nexpression = "order_count >= 0"\npriority = 1\n'
                '[segments.high]\nexpression = "order_count >= 0"\npriority = 10\n',
            )
        ]
    )
    assert rules.names == ("high", "low", "late_one", "early")
    assert rules.primary_segment({"order_count": 3}) == "high"


def test_rules_that_need_a_missing_attribute_fail_before_work() -> None:
    rules = parse_segments(
        [("x.toml", "[segments]\ngold = \"loyalty_tier == 'gold'\"\n")],
        extra_columns=("loyalty_tier",),
    )
    with pytest.raises(ConfigError, match="segment 'gold': column\\(s\\) loyalty_tier"):
        rules.check_columns(ct.COLUMNS)


def test_the_default_file_is_shipped_next_to_the_module() -> None:
    assert DEFAULT_SEGMENTS_PATH.is_file()


# --- the two backends agree ----------------------------------------------------------------------------

_RECORDS: list[dict[str, Any]] = [
    {
        "nps_score": 3, "nps_category": "detractor", "rfm_segment": "champions", "r_score": 5,
        "m_score": 5, "churn_risk": 0.2, "last_delivery_late": True, "country": "DE",
        "favourite_categories": ["books", "toys"], "signup_date": dt.date(2023, 5, 1), "order_count": 8,
    },
    {
        "nps_score": 9, "nps_category": "promoter", "rfm_segment": "lost", "r_score": 1,
        "m_score": 2, "churn_risk": 0.95, "last_delivery_late": False, "country": None,
        "favourite_categories": [], "signup_date": dt.date(2024, 5, 1), "order_count": 1,
    },
    {
        "nps_score": None, "nps_category": "unknown", "rfm_segment": None, "r_score": None,
        "m_score": None, "churn_risk": None, "last_delivery_late": None, "country": "FR",
        "favourite_categories": None, "signup_date": None, "order_count": 0,
    },
    {
        "nps_score": 7, "nps_category": "passive", "rfm_segment": "at_risk", "r_score": 2,
        "m_score": 4, "churn_risk": 0.75, "last_delivery_late": None, "country": "DE",
        "favourite_categories": ["garden"], "signup_date": dt.date(2022, 1, 1), "order_count": 4,
    },
]  # fmt: skip
_EXPRESSIONS = [
    "nps_category == 'detractor' and rfm_segment in ['champions', 'loyal_customers', 'cant_lose']",
    "nps_score < 7",
    "not (nps_score < 7)",
    "nps_score >= 7 or churn_risk > 0.5",
    "country != 'DE'",
    "not country == 'DE'",
    "country is None or rfm_segment is not None",
    "rfm_segment not in ['lost']",
    "'books' in favourite_categories",
    "'books' not in favourite_categories",
    "last_delivery_late",
    "not last_delivery_late and order_count > 2",
    "1 <= r_score <= 2",
    "m_score >= 4 and r_score >= 4",
    "signup_date < '2024-01-01'",
    "nps_score == None",
    "order_count > 2.5",
    "m_score in [2, 4.0]",
    "False or order_count == 0",
]


def _frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(
        records,
        schema={
            "nps_score": pl.Int64, "nps_category": pl.String, "rfm_segment": pl.String,
            "r_score": pl.Int64, "m_score": pl.Int64, "churn_risk": pl.Float64,
            "last_delivery_late": pl.Boolean, "country": pl.String,
            "favourite_categories": pl.List(pl.String), "signup_date": pl.Date,
            "order_count": pl.Int64,
        },
    )  # fmt: skip


@pytest.mark.parametrize("expression", _EXPRESSIONS)
def test_python_and_polars_backends_agree(expression: str) -> None:
    rule = parse_rule("probe", expression)
    frame = _frame(_RECORDS)
    batch = frame.select(compile_rule(rule).alias("r"))["r"].to_list()
    single = [evaluate_rule(rule, record) for record in _RECORDS]
    assert batch == single


def test_assigned_segments_match_the_pure_python_memberships() -> None:
    rules = load_segments()
    records = [
        {**r, "churn_risk_level": level, "nps_responses": 1}
        for r, level in zip(_RECORDS, ["low", "high", None, "high"], strict=True)
    ]
    frame = _frame(_RECORDS).with_columns(
        pl.Series("churn_risk_level", ["low", "high", None, "high"], dtype=pl.String)
    )
    assigned = assign_segments(frame.lazy(), rules).collect()
    assert assigned[ct.SEGMENTS].to_list() == [rules.memberships(r) for r in records]
    assert assigned[ct.PRIMARY_SEGMENT].to_list() == [rules.primary_segment(r) for r in records]


def test_the_service_side_loads_rules_and_nps_math_without_polars() -> None:
    """recsvc is the serving path: evaluating rules and NPS must not pull in polars."""
    code = (
        "import sys\n"
        "from recsvc.domain.segments.catalog import load_segments\n"
        "from recsvc.domain.nps import nps_from_counts\n"
        "load_segments().primary_segment({'nps_category': 'detractor'})\n"
        "nps_from_counts(1, 0, 1)\n"
        "assert 'polars' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
