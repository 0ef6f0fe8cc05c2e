"""The NPS math of recsvc.domain.nps, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import msgspec
import pytest

from recsvc.domain.nps import (
    ADJUSTED_WALD_BELOW,
    Z_95,
    NpsCategory,
    NpsResult,
    category,
    nps_from_counts,
    rest_of,
    two_sample_z,
)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0, NpsCategory.DETRACTOR),
        (6, NpsCategory.DETRACTOR),
        (7, NpsCategory.PASSIVE),
        (8, NpsCategory.PASSIVE),
        (9, NpsCategory.PROMOTER),
        (10, NpsCategory.PROMOTER),
        (None, NpsCategory.UNKNOWN),
    ],
)
def test_category_boundaries(score: int | None, expected: NpsCategory) -> None:
    assert category(score) is expected


def test_a_score_outside_0_to_10_is_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.10"):
        category(11)


def test_all_promoters_is_100_and_all_detractors_is_minus_100() -> None:
    promoters = nps_from_counts(50, 0, 0)
    detractors = nps_from_counts(0, 0, 50)
    assert promoters.nps == 100.0
    assert detractors.nps == -100.0
    # Every answer is the same, so the per-answer variance (and the Wald margin) is zero.
    assert promoters.variance == 0.0
    assert promoters.margin_of_error == 0.0
    assert (promoters.low, promoters.high) == (100.0, 100.0)


def test_mixed_case_with_margin_of_error_by_hand() -> None:
    """50 promoters, 30 passives, 20 detractors (n = 100, Wald since n >= 30).

    p = 0.5, d = 0.2 -> NPS = 30
    var = (p + d) - (p - d)^2 = 0.7 - 0.09 = 0.61
    SE = sqrt(0.61 / 100) = 0.078102
    margin = 1.96 * 0.078102 * 100 = 15.31 points -> interval 14.69 .. 45.31
    """
    result = nps_from_counts(50, 30, 20)
    assert result.nps == pytest.approx(30.0)
    assert result.variance == pytest.approx(0.61)
    assert result.margin_of_error == pytest.approx(15.31, abs=0.01)
    assert result.low == pytest.approx(14.69, abs=0.01)
    assert result.high == pytest.approx(45.31, abs=0.01)
    assert result.method == "wald"
    assert not result.too_small


def test_adjusted_wald_on_a_small_sample_by_hand() -> None:
    """5 promoters, 3 passives, 2 detractors (n = 10 < 30: adjusted Wald).

    n' = 13, p' = 5.75 / 13 = 0.442308, d' = 2.75 / 13 = 0.211538
    NPS' = 0.230769, var' = 0.653846 - 0.053254 = 0.600592
    SE = sqrt(0.600592 / 13) = 0.214940, margin = 1.96 * 21.494 = 42.13 points
    interval = 23.08 -/+ 42.13 = -19.05 .. 65.20; the reported NPS stays the plain 30.
    """
    result = nps_from_counts(5, 3, 2)
    assert result.nps == pytest.approx(30.0)
    assert result.method == "adjusted_wald"
    assert result.margin_of_error == pytest.approx(42.13, abs=0.01)
    assert result.low == pytest.approx(-19.05, abs=0.01)
    assert result.high == pytest.approx(65.20, abs=0.01)
    assert result.too_small


def test_adjusted_wald_keeps_an_interval_when_every_small_answer_agrees() -> None:
    """Five promoters out of five: Wald would claim 100 ± 0; adjusted Wald does not."""
    result = nps_from_counts(5, 0, 0)
    assert result.nps == 100.0
    assert result.margin_of_error is not None and result.margin_of_error > 20
    assert result.high == 100.0  # clipped to the scale


def test_the_interval_method_switches_at_the_documented_n() -> None:
    below = nps_from_counts(ADJUSTED_WALD_BELOW - 1, 0, 0)
    at = nps_from_counts(ADJUSTED_WALD_BELOW, 0, 0)
    assert below.method == "adjusted_wald"
    assert at.method == "wald"


def test_too_small_follows_min_n() -> None:
    assert nps_from_counts(20, 5, 4, min_n=30).too_small
    assert not nps_from_counts(20, 5, 5, min_n=30).too_small
    assert not nps_from_counts(2, 0, 0, min_n=1).too_small


def test_no_answers_has_no_nps() -> None:
    result = nps_from_counts(0, 0, 0)
    assert result.n == 0
    assert result.nps is None and result.margin_of_error is None
    assert result.too_small


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        nps_from_counts(-1, 0, 0)


def test_two_sample_z_on_a_known_case() -> None:
    """A: 60/20/20 of 100 -> NPS 40, var = 0.8 - 0.16 = 0.64.
    B: 40/30/30 of 100 -> NPS 10, var = 0.7 - 0.01 = 0.69.
    SE = sqrt(0.64/100 + 0.69/100) = sqrt(0.0133) = 0.115326
    z = 0.30 / 0.115326 = 2.6013, two-sided p = erfc(2.6013 / sqrt 2) = 0.0093 -> significant.
    """
    test = two_sample_z(nps_from_counts(60, 20, 20), nps_from_counts(40, 30, 30))
    assert test is not None
    assert test.difference == pytest.approx(30.0)
    assert test.z == pytest.approx(2.6013, abs=1e-4)
    assert test.p_value == pytest.approx(0.0093, abs=1e-4)
    assert test.significant


def test_a_small_difference_is_noise() -> None:
    test = two_sample_z(nps_from_counts(45, 30, 25), nps_from_counts(42, 33, 25))
    assert test is not None
    assert not test.significant
    assert test.p_value > 0.05


def test_a_group_below_min_n_is_never_called_significant() -> None:
    small = nps_from_counts(10, 0, 0, min_n=30)  # NPS 100 from 10 answers
    large = nps_from_counts(100, 100, 100)  # NPS 0
    test = two_sample_z(small, large)
    assert test is not None
    assert test.p_value < 0.05
    assert not test.significant


def test_zero_variance_on_both_sides_has_no_z() -> None:
    test = two_sample_z(nps_from_counts(50, 0, 0), nps_from_counts(0, 0, 50))
    assert test is not None
    assert test.z is None and test.p_value == 0.0 and test.significant
    same = two_sample_z(nps_from_counts(50, 0, 0), nps_from_counts(40, 0, 0))
    assert same is not None and not same.significant


def test_no_test_without_answers() -> None:
    assert two_sample_z(nps_from_counts(0, 0, 0), nps_from_counts(5, 5, 5)) is None


def test_rest_of_subtracts_counts() -> None:
    total = nps_from_counts(60, 20, 20)
    group = nps_from_counts(10, 5, 15)
    assert rest_of(total, group) == nps_from_counts(50, 15, 5)


def test_the_margin_uses_z_for_95_percent() -> None:
    assert math.isclose(Z_95, 1.959963984540054)


def test_a_result_survives_json() -> None:
    result = nps_from_counts(50, 30, 20)
    assert msgspec.json.decode(msgspec.json.encode(result), type=NpsResult) == result
