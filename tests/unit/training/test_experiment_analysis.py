"""The statistics of an offer experiment on simulated outcome tables: a known effect is found and
covered, a null effect is called significant at the nominal rate, CUPED narrows intervals, broken
splits are flagged, Holm only raises secondaries, NPS uses the project's NPS math, small and empty
experiments give None (never NaN) and say how many customers are missing."""

from __future__ import annotations

import datetime as dt
import math

import msgspec
import numpy as np
import polars as pl
import pytest

from recsvc.domain.experiments import OUTCOMES, ExperimentResult, OutcomeResult
from recsvc.domain.nps import nps_from_counts, two_sample_z
from training.experiments.analysis import AnalysisConfig, analyse

T0 = dt.datetime(2025, 3, 1)
SCHEMA = {
    "customer_id": pl.String,
    "arm": pl.String,
    "segment": pl.String,
    "assigned_at": pl.Datetime("us"),
    "exposures": pl.Int64,
    "complete": pl.Boolean,
    "converted": pl.Int64,
    "orders": pl.Int64,
    "revenue": pl.Float64,
    "lines": pl.Int64,
    "returned": pl.Int64,
    "churned": pl.Int64,
    "next_nps": pl.Int64,
    "pre_orders": pl.Int64,
    "pre_revenue": pl.Float64,
}


def outcome_table(
    n: int,
    *,
    seed: int,
    holdout_share: float = 0.5,
    conversion: float = 0.2,
    conversion_lift: float = 0.0,
    revenue_lift: float = 0.0,
    covariate_strength: float = 0.0,
    nps_promoter_lift: float = 0.0,
    segments: tuple[str, ...] = ("loyal", "new"),
    complete_share: float = 1.0,
) -> pl.DataFrame:
    """A simulated outcome table: `n` customers split at random by `holdout_share`; treatment adds
    the given lifts. `covariate_strength` in [0, 1] is how much of a customer's propensity to buy
    (and so conversion, orders and revenue) the pre-period revenue and orders already show."""
    rng = np.random.default_rng(seed)
    holdout = rng.random(n) < holdout_share
    treated = ~holdout
    propensity = rng.normal(size=n)  # a customer's habit, before and after assignment
    pre_orders = rng.poisson(np.exp(0.3 + 0.6 * propensity * covariate_strength))
    pre_revenue = pre_orders * 40.0 + rng.gamma(2.0, 10.0, size=n) * (pre_orders > 0)
    # Logistic conversion whose base rate is about `conversion`.
    logit = math.log(conversion / (1 - conversion)) + 1.5 * covariate_strength * propensity
    p_convert = 1 / (1 + np.exp(-logit))
    p_convert = p_convert - p_convert.mean() + conversion + conversion_lift * treated
    converted = (rng.random(n) < np.clip(p_convert, 0, 1)).astype(np.int64)
    orders = converted * (1 + rng.poisson(0.5, size=n))
    noise = rng.normal(0, 20, size=n)
    revenue = np.maximum(
        0.0,
        orders * 50.0
        + 30 * covariate_strength * propensity
        + 0.5 * covariate_strength * pre_revenue  # last quarter's spenders spend again
        + noise * (1 - covariate_strength)
        + revenue_lift * treated,
    )
    lines = orders * (1 + rng.poisson(1.0, size=n))
    returned = rng.binomial(lines, 0.1)
    answered = rng.random(n) < 0.3
    promoter_p = np.clip(0.4 + nps_promoter_lift * treated, 0, 0.8)
    draw = rng.random(n)
    score = np.where(draw < promoter_p, 10, np.where(draw < promoter_p + 0.3, 7, 3))
    return pl.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "arm": np.where(holdout, "holdout", "treatment"),
            "segment": [segments[i % len(segments)] for i in range(n)] if segments else None,
            "assigned_at": [T0 + dt.timedelta(minutes=i) for i in range(n)],
            "exposures": np.where(treated, 1 + rng.poisson(1.0, size=n), 0),
            "complete": rng.random(n) < complete_share,
            "converted": converted,
            "orders": orders,
            "revenue": revenue,
            "lines": lines,
            "returned": returned,
            "churned": 1 - converted,
            "next_nps": [int(s) if a else None for s, a in zip(score, answered, strict=True)],
            "pre_orders": pre_orders,
            "pre_revenue": pre_revenue,
        },
        schema=SCHEMA,
    )


def config(**overrides: object) -> AnalysisConfig:
    values: dict[str, object] = {"experiment": "spring", "offer_id": "free_shipping"}
    values["holdout_share"] = 0.5
    values.update(overrides)
    return msgspec.convert(values, AnalysisConfig)


def outcome(result: ExperimentResult, name: str) -> OutcomeResult:
    return next(o for o in result.outcomes if o.outcome == name)


def test_a_known_conversion_lift_is_inside_the_interval_and_significant() -> None:
    result = analyse(outcome_table(4000, seed=7, conversion_lift=0.05), config())
    primary = outcome(result, "conversion")
    assert primary.primary and primary.ci_low is not None and primary.ci_high is not None
    assert primary.ci_low < 0.05 < primary.ci_high
    assert result.status == "significant"
    assert result.status_detail.startswith("conversion lift +")
    assert [o.outcome for o in result.outcomes] == list(OUTCOMES)
    assert primary.lift == pytest.approx(primary.treatment - primary.holdout)  # type: ignore[operator]


def test_a_null_effect_is_called_significant_at_about_alpha() -> None:
    seeds = 200
    alpha = 0.05
    hits = 0
    for seed in range(seeds):
        table = outcome_table(600, seed=1000 + seed, covariate_strength=0.5, segments=())
        primary = outcome(analyse(table, config(min_per_arm=10)), "conversion")
        assert primary.p_value is not None
        hits += primary.p_value < alpha
    rate = hits / seeds
    assert 0.01 < rate <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / seeds), rate


def test_cuped_narrows_the_revenue_interval_when_the_pre_period_predicts_it() -> None:
    table = outcome_table(3000, seed=3, covariate_strength=0.8, revenue_lift=2.0)
    blind = table.with_columns(pre_revenue=pl.lit(0.0), pre_orders=pl.lit(0))
    with_cuped, without = (
        outcome(analyse(table, config()), "revenue"),
        outcome(analyse(blind, config()), "revenue"),
    )
    assert with_cuped.cuped and not without.cuped
    assert with_cuped.ci_high is not None and with_cuped.ci_low is not None
    assert without.ci_high is not None and without.ci_low is not None
    assert with_cuped.ci_high - with_cuped.ci_low < 0.9 * (without.ci_high - without.ci_low)


def test_a_split_that_misses_the_configured_share_is_a_sample_ratio_mismatch() -> None:
    table = outcome_table(2000, seed=11, holdout_share=0.5)
    broken = analyse(table, config(holdout_share=0.1))
    assert broken.srm_p_value is not None and broken.srm_p_value < 0.001
    assert broken.observed_holdout_share == pytest.approx(0.5, abs=0.05)
    right = analyse(outcome_table(2000, seed=11, holdout_share=0.1), config(holdout_share=0.1))
    assert right.srm_p_value is not None and right.srm_p_value > 0.01


def test_holm_raises_only_the_secondaries() -> None:
    result = analyse(outcome_table(3000, seed=5, conversion_lift=0.03, revenue_lift=1.0), config())
    secondaries = [o for o in result.outcomes if not o.primary]
    assert secondaries and all(o.p_value is not None for o in secondaries)
    for o in secondaries:
        assert o.p_adjusted is not None and o.p_value is not None
        assert o.p_adjusted >= o.p_value
    assert any(o.p_adjusted > o.p_value for o in secondaries)  # type: ignore[operator]
    primary = outcome(result, "conversion")
    assert primary.p_adjusted == primary.p_value


def test_a_small_experiment_is_collecting_and_says_how_many_are_missing() -> None:
    table = outcome_table(120, seed=2, complete_share=0.8)
    result = analyse(table, config())
    assert result.status == "collecting"
    holdout = next(a for a in result.arms if a.arm == "holdout")
    missing = 100 - holdout.analysed
    assert f"{missing} more in the holdout" in result.status_detail
    waiting = sum(a.assigned - a.analysed for a in result.arms)
    assert f"({waiting} are waiting for their window to end)" in result.status_detail
    pending = analyse(table, config(), pending={"treatment": 30, "holdout": 12})
    assert "(42 are waiting" in pending.status_detail


def test_an_experiment_below_the_enough_size_is_collecting_with_the_shortfall() -> None:
    # 300 per arm passes min_per_arm but is far from detecting a 10% relative change of 20%.
    result = analyse(outcome_table(600, seed=9), config())
    assert result.status == "collecting"
    assert result.status_detail.startswith("needs about ")
    assert "more in the holdout" in result.status_detail
    assert result.mde is not None and result.mde > 0.02


def test_a_large_null_experiment_detects_no_effect_with_its_bound() -> None:
    result = analyse(outcome_table(40_000, seed=4, conversion=0.3, segments=()), config())
    assert result.status == "no effect detected", result.status_detail
    assert result.mde is not None and result.mde < 0.03
    assert result.status_detail.startswith("no effect larger than ±")


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_tiny_and_empty_arms_give_none_not_nan(rows: int) -> None:
    table = outcome_table(rows, seed=1) if rows else pl.DataFrame(schema=SCHEMA)
    result = analyse(table, config())
    assert result.status == "collecting"
    assert result.mde is None
    for o in result.outcomes:
        assert o.lift is None and o.ci_low is None and o.p_value is None
    encoded = msgspec.json.encode(result)
    assert b"NaN" not in encoded and b"Infinity" not in encoded
    assert msgspec.json.decode(encoded, type=ExperimentResult) == result


def test_an_outcome_that_never_varies_gives_none_and_the_rest_still_works() -> None:
    table = outcome_table(1000, seed=8).with_columns(returned=pl.lit(0), lines=pl.lit(0))
    result = analyse(table, config())
    returns = outcome(result, "return_rate")
    assert returns.lift is None and returns.p_value is None and returns.p_adjusted is None
    assert outcome(result, "conversion").p_value is not None
    assert b"NaN" not in msgspec.json.encode(result)


def test_the_nps_lift_is_the_project_nps_difference_and_its_z_test() -> None:
    table = outcome_table(3000, seed=6, nps_promoter_lift=0.1)
    result = analyse(table, config())
    counts = {}
    for arm in ("treatment", "holdout"):
        scores = table.filter(pl.col("arm") == arm).get_column("next_nps").drop_nulls()
        counts[arm] = nps_from_counts(
            int((scores >= 9).sum()),
            int(((scores >= 7) & (scores <= 8)).sum()),
            int((scores <= 6).sum()),
        )
    test = two_sample_z(counts["treatment"], counts["holdout"])
    assert test is not None
    nps = outcome(result, "nps")
    assert nps.treatment == counts["treatment"].nps and nps.holdout == counts["holdout"].nps
    assert nps.lift == pytest.approx(counts["treatment"].nps - counts["holdout"].nps)  # type: ignore[operator]
    assert nps.p_value == pytest.approx(test.p_value)
    assert nps.ci_low is not None and nps.ci_high is not None
    assert nps.ci_low < test.difference < nps.ci_high


def test_segments_with_enough_customers_are_analysed_and_small_ones_are_left_out() -> None:
    table = outcome_table(2000, seed=12, segments=("loyal", "new", "lapsed"))
    # Shrink "lapsed" to a handful of analysed customers per arm; null segments never show.
    table = table.filter(
        (pl.col("segment") != "lapsed") | (pl.col("customer_id").str.len_chars() < 3)
    )
    table = table.with_columns(
        segment=pl.when(pl.col("customer_id") == "c0").then(None).otherwise(pl.col("segment"))
    )
    result = analyse(table, config())
    assert [s.segment for s in result.segments] == ["loyal", "new"]
    loyal = result.segments[0]
    assert loyal.treatment >= 20 and loyal.holdout >= 20
    assert loyal.result.outcome == "conversion" and loyal.result.lift is not None
