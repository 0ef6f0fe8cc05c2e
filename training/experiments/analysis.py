"""The statistics of one offer experiment: from its outcome table (one row per assigned customer)
to the `ExperimentResult` the version stores and the API serves.

Library choice: tea-tasting, not gbstats. tea-tasting reads a polars frame directly (narwhals),
has Welch tests of means with CUPED (`Mean(value, covariate)`), the delta method for ratio metrics
(`RatioOfMeans`), the sample-ratio check (`SampleRatio`) and power/MDE (`solve_power`). gbstats
pins pandas < 2 and numpy < 2 and works on pandas frames, which this project does not use.
Three pieces are written here, each small and each with its reason next to it: the combination of
two covariates into one (tea-tasting takes one covariate per metric), Holm's adjustment (the NPS
p-value is not a tea-tasting result) and everything about NPS (the project's own math in
`recsvc.domain.nps` is the one NPS definition).

Every number that leaves this module is finite or None: the result is JSON.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np
import polars as pl
import tea_tasting as tt
from scipy import stats
from tea_tasting.aggr import Aggregates

from recsvc.domain.experiments import (
    ARMS,
    OUTCOMES,
    ArmSummary,
    ExperimentResult,
    Outcome,
    OutcomeResult,
    SegmentResult,
    Status,
)
from recsvc.domain.nps import PASSIVE_MIN, PROMOTER_MIN, NpsResult, nps_from_counts, two_sample_z

# A segment is analysed only with this many analysed customers in each arm: below it an interval
# is wide enough to be noise whatever it says.
SEGMENT_MIN_PER_ARM = 20
# The smallest "enough" sample: the one that detects a change of this share of the holdout's mean
# (or of its standard deviation when the mean is 0) at the configured power.
RELATIVE_EFFECT_OF_INTEREST = 0.10
# An arm needs two values for a variance.
_MIN_FOR_TEST = 2
# Revenue and orders in the PRE_PERIOD_DAYS (recsvc.domain.experiments) before assignment.
_COVARIATES = ("pre_revenue", "pre_orders")
_VALUE_COLUMN: dict[Outcome, str] = {
    "conversion": "converted",
    "orders": "orders",
    "revenue": "revenue",
    "churn": "churned",
}
_CUPED_OUTCOMES: tuple[Outcome, ...] = ("conversion", "orders", "revenue", "churn")
_NOTHING: dict[str, Any] = {
    "treatment": None,
    "holdout": None,
    "lift": None,
    "ci_low": None,
    "ci_high": None,
    "relative_lift": None,
    "p_value": None,
    "p_adjusted": None,
}


class AnalysisConfig(msgspec.Struct, frozen=True, kw_only=True):
    experiment: str
    offer_id: str
    holdout_share: float  # configured
    primary: Outcome = "conversion"
    window_days: int = 30
    alpha: float = 0.05
    power: float = 0.8
    min_per_arm: int = 100  # analysed customers in either arm below this: still collecting
    ends: dt.date | None = None


def analyse(
    table: pl.DataFrame, config: AnalysisConfig, *, pending: Mapping[str, int] | None = None
) -> ExperimentResult:
    """The experiment's result from its outcome table. `pending` (customers per arm assigned but
    not yet in the table's complete rows) defaults to the table's incomplete rows."""
    arms = _arm_summaries(table)
    by_arm: dict[str, ArmSummary] = {a.arm: a for a in arms}
    assigned = sum(a.assigned for a in arms)
    done = table.filter(pl.col("complete"))
    waiting: dict[str, int] = (
        dict(pending) if pending is not None else {a.arm: a.assigned - a.analysed for a in arms}
    )
    outcomes = _holm(_outcomes(done, config, cuped=True), config.primary)
    primary = next(o for o in outcomes if o.primary)
    mde, needed = _power(done, config)
    status, detail = _status(config, primary, by_arm, mde, needed, waiting)
    first = table.get_column("assigned_at").min() if table.height else None
    return ExperimentResult(
        experiment=config.experiment,
        offer_id=config.offer_id,
        primary=config.primary,
        status=status,
        status_detail=detail,
        holdout_share=config.holdout_share,
        observed_holdout_share=by_arm["holdout"].assigned / assigned if assigned else None,
        srm_p_value=_sample_ratio_p(
            by_arm["treatment"].assigned, by_arm["holdout"].assigned, config.holdout_share
        ),
        mde=mde,
        window_days=config.window_days,
        # The table's times are naive UTC; the result carries aware ones (the project's convention).
        first_assigned=first.replace(tzinfo=dt.UTC) if isinstance(first, dt.datetime) else None,
        arms=arms,
        outcomes=outcomes,
        segments=_segments(done, config),
        ends=config.ends,
    )


# --- counts --------------------------------------------------------------------------------------


def _arm_summaries(table: pl.DataFrame) -> list[ArmSummary]:
    counts = table.group_by("arm").agg(
        assigned=pl.len(),
        exposed=(pl.col("exposures") > 0).sum(),
        analysed=pl.col("complete").sum(),
    )
    found = {row["arm"]: row for row in counts.iter_rows(named=True)}
    return [
        ArmSummary(
            arm=arm,
            assigned=int(found.get(arm, {}).get("assigned", 0)),
            exposed=int(found.get(arm, {}).get("exposed", 0)),
            analysed=int(found.get(arm, {}).get("analysed", 0)),
        )
        for arm in ARMS
    ]


def _sample_ratio_p(treatment: int, holdout: int, holdout_share: float) -> float | None:
    """Sample-ratio mismatch: the normal test without continuity correction is the chi-square
    goodness-of-fit test of the two assigned counts (z² is the statistic, one degree of freedom)."""
    if treatment + holdout == 0:
        return None
    check = tt.SampleRatio((1 - holdout_share) / holdout_share, method="norm", correction=False)
    counts = {"holdout": Aggregates(count_=holdout), "treatment": Aggregates(count_=treatment)}
    return _finite(check.analyze(counts, "holdout", "treatment").pvalue)


# --- outcomes ------------------------------------------------------------------------------------


def _outcomes(done: pl.DataFrame, config: AnalysisConfig, *, cuped: bool) -> list[OutcomeResult]:
    """Every outcome in `OUTCOMES` order, unadjusted p-values (Holm comes after)."""
    frame, adjusted = _with_cuped_covariates(done) if cuped else (done, frozenset[Outcome]())
    results = _tea_tasting_outcomes(frame, config, adjusted)
    results["nps"] = _nps_outcome(done, config)
    return [results[outcome] for outcome in OUTCOMES]


def _covariate_column(outcome: Outcome) -> str:
    return f"_cuped_{outcome}"


def _with_cuped_covariates(done: pl.DataFrame) -> tuple[pl.DataFrame, frozenset[Outcome]]:
    """One covariate per CUPED outcome: its pooled least-squares prediction from pre-period revenue
    and orders. tea-tasting's CUPED takes one covariate per metric; with the prediction as that
    covariate its pooled theta is 1 by construction, so this is multi-covariate CUPED (regression
    adjustment with theta estimated on both arms together). Returns the outcomes whose covariate
    varies (the others are left unadjusted)."""
    if done.height < _MIN_FOR_TEST:
        return done, frozenset()
    design = np.column_stack(
        [
            np.ones(done.height),
            *(done.get_column(c).cast(pl.Float64).to_numpy() for c in _COVARIATES),
        ]
    )
    columns: list[pl.Series] = []
    adjusted: set[Outcome] = set()
    for outcome in _CUPED_OUTCOMES:
        values = done.get_column(_VALUE_COLUMN[outcome]).cast(pl.Float64).to_numpy()
        theta, *_ = np.linalg.lstsq(design, values, rcond=None)
        prediction = design @ theta
        if float(np.ptp(prediction)) > 1e-12 * max(1.0, float(np.abs(prediction).max())):
            adjusted.add(outcome)
            columns.append(pl.Series(_covariate_column(outcome), prediction))
    return done.with_columns(columns), frozenset(adjusted)


def _tea_tasting_metric(
    outcome: Outcome, config: AnalysisConfig, adjusted: frozenset[Outcome], **power: Any
) -> tt.Mean | tt.RatioOfMeans:
    common: dict[str, Any] = {
        "confidence_level": 1 - config.alpha,
        "alpha": config.alpha,
        "power": config.power,
        **power,
    }
    if outcome == "return_rate":
        # Returned lines over ordered lines, per arm: the delta method's ratio of means.
        return tt.RatioOfMeans("returned", "lines", **common)
    covariate = _covariate_column(outcome) if outcome in adjusted else None
    return tt.Mean(_VALUE_COLUMN[outcome], covariate, **common)


def _testable(frame: pl.DataFrame, outcome: Outcome) -> bool:
    """Both arms have two values and something varies (else the test divides by zero)."""
    if outcome == "return_rate":
        spread = pl.col("returned").std() + pl.col("lines").std()
        enough = (pl.col("lines").sum() > 0) & (pl.len() >= _MIN_FOR_TEST)
    else:
        column = _VALUE_COLUMN[outcome]
        spread = pl.col(column).std()
        enough = pl.len() >= _MIN_FOR_TEST
    stats_by_arm = frame.group_by("arm").agg(enough=enough, spread=spread.fill_null(0.0))
    rows = {row["arm"]: row for row in stats_by_arm.iter_rows(named=True)}
    if not all(arm in rows and rows[arm]["enough"] for arm in ARMS):
        return False
    return sum(rows[arm]["spread"] for arm in ARMS) > 0


def _tea_tasting_outcomes(
    frame: pl.DataFrame, config: AnalysisConfig, adjusted: frozenset[Outcome]
) -> dict[Outcome, OutcomeResult]:
    outcomes: tuple[Outcome, ...] = (*_CUPED_OUTCOMES, "return_rate")
    testable = [o for o in outcomes if _testable(frame, o)]
    found: dict[str, Any] = {}
    if testable:
        experiment = tt.Experiment(
            {o: _tea_tasting_metric(o, config, adjusted) for o in testable}, variant="arm"
        )
        found = dict(experiment.analyze(frame, control="holdout"))
    results: dict[Outcome, OutcomeResult] = {}
    for outcome in outcomes:
        is_primary = outcome == config.primary
        result = found.get(outcome)
        if result is None:
            results[outcome] = OutcomeResult(
                outcome=outcome, primary=is_primary, **{**_NOTHING, **_means(frame, outcome)}
            )
            continue
        # The arms' means are tea-tasting's CUPED-adjusted ones, so the lift shown is exactly
        # treatment - holdout; without CUPED they are the plain means.
        treatment, holdout = _finite(result.treatment), _finite(result.control)
        lift = _finite(result.effect_size)
        results[outcome] = OutcomeResult(
            outcome=outcome,
            primary=is_primary,
            treatment=treatment,
            holdout=holdout,
            lift=lift,
            ci_low=_finite(result.effect_size_ci_lower),
            ci_high=_finite(result.effect_size_ci_upper),
            relative_lift=_relative(lift, holdout),
            p_value=_finite(result.pvalue),
            p_adjusted=None,
            cuped=outcome in adjusted,
        )
    return results


def _means(frame: pl.DataFrame, outcome: Outcome) -> dict[str, float | None]:
    """The plain arm means when no test can be run (an empty arm has none)."""
    if outcome == "return_rate":
        value = pl.col("returned").sum() / pl.col("lines").sum()
    else:
        value = pl.col(_VALUE_COLUMN[outcome]).cast(pl.Float64).mean()
    found = {
        row["arm"]: row["v"] for row in frame.group_by("arm").agg(v=value).iter_rows(named=True)
    }
    return {arm: _finite(found.get(arm)) for arm in ARMS}


def _nps_counts(frame: pl.DataFrame, arm: str) -> NpsResult:
    scores = frame.filter((pl.col("arm") == arm) & pl.col("next_nps").is_not_null()).get_column(
        "next_nps"
    )
    promoters = int((scores >= PROMOTER_MIN).sum())
    passives = int(((scores >= PASSIVE_MIN) & (scores < PROMOTER_MIN)).sum())
    return nps_from_counts(promoters, passives, len(scores) - promoters - passives)


def _nps_outcome(frame: pl.DataFrame, config: AnalysisConfig) -> OutcomeResult:
    """NPS of each arm's first answers after assignment, and the lift's test, from
    `recsvc.domain.nps`: tea-tasting has no NPS metric and the project defines NPS once."""
    treatment, holdout = _nps_counts(frame, "treatment"), _nps_counts(frame, "holdout")
    is_primary = config.primary == "nps"
    test = two_sample_z(treatment, holdout, alpha=config.alpha)
    if (
        test is None
        or treatment.n < _MIN_FOR_TEST
        or holdout.n < _MIN_FOR_TEST
        or treatment.variance is None
        or holdout.variance is None
    ):
        return OutcomeResult(
            outcome="nps",
            primary=is_primary,
            **{**_NOTHING, "treatment": treatment.nps, "holdout": holdout.nps},
        )
    # The interval's standard error is the one two_sample_z tests with: both groups' variances
    # as nps_from_counts computed them. With no spread at all there is no interval to draw.
    se = math.sqrt(treatment.variance / treatment.n + holdout.variance / holdout.n) * 100
    half = float(stats.norm.isf(config.alpha / 2)) * se if se > 0 else None
    return OutcomeResult(
        outcome="nps",
        primary=is_primary,
        treatment=treatment.nps,
        holdout=holdout.nps,
        lift=test.difference,
        ci_low=None if half is None else test.difference - half,
        ci_high=None if half is None else test.difference + half,
        relative_lift=_relative(test.difference, holdout.nps),
        p_value=_finite(test.p_value),
        p_adjusted=None,
    )


def _holm(results: Sequence[OutcomeResult], primary: Outcome) -> list[OutcomeResult]:
    """Holm's step-down adjustment over the secondary outcomes that have a p-value; the primary
    keeps its own. By hand because tea-tasting's `adjust_fwer` takes only its own results and the
    NPS p-value is ours."""
    secondary = sorted(
        (r.p_value, r.outcome) for r in results if r.outcome != primary and r.p_value is not None
    )
    adjusted: dict[Outcome, float] = {}
    running = 0.0
    for rank, (p_value, outcome) in enumerate(secondary):
        running = max(running, min(1.0, (len(secondary) - rank) * p_value))
        adjusted[outcome] = running
    return [
        msgspec.structs.replace(
            r, p_adjusted=r.p_value if r.outcome == primary else adjusted.get(r.outcome)
        )
        for r in results
    ]


# --- power and status ----------------------------------------------------------------------------


class _Needed(msgspec.Struct, frozen=True):
    treatment: int
    holdout: int


def _power(done: pl.DataFrame, config: AnalysisConfig) -> tuple[float | None, _Needed | None]:
    """The primary's minimum detectable effect at the current analysed sizes, and the analysed
    customers per arm needed to detect a change of 10% of the holdout's mean (0.1 standard
    deviations when that mean is 0), both at alpha (two-sided) and the configured power, from the
    pooled variance."""
    counts: dict[str, int] = {arm: done.filter(pl.col("arm") == arm).height for arm in ARMS}
    if min(counts.values()) < _MIN_FOR_TEST:
        return None, None
    ratio = counts["treatment"] / counts["holdout"]
    if config.primary == "nps":
        return _nps_power(done, config, ratio)
    if not _testable(done, config.primary):
        return None, None
    frame, adjusted = (
        _with_cuped_covariates(done)
        if config.primary in _CUPED_OUTCOMES
        else (done, frozenset[Outcome]())
    )
    # The normal approximation: tea-tasting's t-based solver gives the same at these sizes but
    # searches a noncentral t, which is slow.
    metric = _tea_tasting_metric(
        config.primary, config, adjusted, ratio=ratio, n_obs=done.height, use_t=False
    )
    mde = _finite(metric.solve_power(frame, "effect_size")[0].effect_size)
    holdout_mean = _means(done, config.primary)["holdout"]
    effect = _effect_of_interest(holdout_mean, _pooled_sd(done, config.primary))
    if mde is None or effect is None:
        return mde, None
    # Under the normal approximation the detectable effect shrinks with the square root of the
    # sample at a fixed split, so the sample that detects `effect` follows from the MDE.
    return mde, _split(done.height * (mde / effect) ** 2, ratio)


def _nps_power(
    done: pl.DataFrame, config: AnalysisConfig, ratio: float
) -> tuple[float | None, _Needed | None]:
    """NPS as primary: the normal formula on the pooled per-answer variance from
    `nps_from_counts`, in answers, scaled to customers by the share who answered."""
    pooled = _nps_counts(done.with_columns(arm=pl.lit("treatment")), "treatment")
    holdout = _nps_counts(done, "holdout")
    answered = {arm: _nps_counts(done, arm).n for arm in ARMS}
    if pooled.variance is None or min(answered.values()) < _MIN_FOR_TEST:
        return None, None
    z = float(stats.norm.isf(config.alpha / 2) + stats.norm.ppf(config.power))
    sd = math.sqrt(pooled.variance) * 100
    mde = z * sd * math.sqrt(1 / answered["treatment"] + 1 / answered["holdout"])
    effect = _effect_of_interest(holdout.nps, sd)
    if effect is None:
        return _finite(mde), None
    holdout_answers = (z * sd / effect) ** 2 * (1 + 1 / ratio)
    response_rate = pooled.n / done.height
    total = holdout_answers * (1 + ratio) / response_rate
    return _finite(mde), _split(total, ratio)


def _effect_of_interest(holdout_mean: float | None, sd: float | None) -> float | None:
    if holdout_mean is not None and holdout_mean != 0:
        return abs(holdout_mean) * RELATIVE_EFFECT_OF_INTEREST
    if sd is not None and sd > 0:
        return sd * RELATIVE_EFFECT_OF_INTEREST
    return None


def _pooled_sd(done: pl.DataFrame, outcome: Outcome) -> float | None:
    if outcome == "return_rate":
        column = (pl.col("returned") / pl.col("lines")).filter(pl.col("lines") > 0)
    else:
        column = pl.col(_VALUE_COLUMN[outcome]).cast(pl.Float64)
    return _finite(done.select(column.std()).item())


def _split(total: float, ratio: float) -> _Needed:
    holdout = total / (1 + ratio)
    return _Needed(treatment=math.ceil(total - holdout), holdout=math.ceil(holdout))


def _status(
    config: AnalysisConfig,
    primary: OutcomeResult,
    arms: Mapping[str, ArmSummary],
    mde: float | None,
    needed: _Needed | None,
    waiting: Mapping[str, int],
) -> tuple[Status, str]:
    analysed = {arm: arms[arm].analysed for arm in ARMS}
    window = f"with a complete {config.window_days}-day window"
    name = config.primary.replace("_", " ")
    if min(analysed.values()) < config.min_per_arm:
        short: dict[str, int] = {arm: max(0, config.min_per_arm - analysed[arm]) for arm in ARMS}
        return "collecting", (
            f"needs at least {config.min_per_arm:,} customers per arm {window}: "
            f"{_arms_text(short)}{_waiting_text(waiting)}"
        )
    if primary.p_value is not None and primary.p_value < config.alpha:
        return "significant", (
            f"{name} lift {_effect(config.primary, primary.lift)} ({_ci_text(config, primary)}), "
            f"p {_p_text(primary.p_value)}"
        )
    if needed is None:
        return "collecting", (
            f"{name} has not varied between customers yet, so no effect can be measured"
            f"{_waiting_text(waiting)}"
        )
    short = {
        "treatment": max(0, needed.treatment - analysed["treatment"]),
        "holdout": max(0, needed.holdout - analysed["holdout"]),
    }
    if any(short.values()):
        return "collecting", (f"needs about {_arms_text(short)} {window}{_waiting_text(waiting)}")
    bound = "–" if mde is None else _effect(config.primary, mde, signed=False)
    return "no effect detected", (
        f"no effect larger than ±{bound} detected ({name} lift "
        f"{_effect(config.primary, primary.lift)}, {_ci_text(config, primary)})"
    )


def _arms_text(short: Mapping[str, int]) -> str:
    parts = [f"{short[arm]:,} more in the {arm}" for arm in ARMS if short[arm] > 0]
    return " and ".join(parts) if parts else "no more"


def _waiting_text(waiting: Mapping[str, int]) -> str:
    total = sum(waiting.get(arm, 0) for arm in ARMS)
    if not total:
        return ""
    verb = "is" if total == 1 else "are"
    return f" ({total:,} {verb} waiting for their window to end)"


def _effect(outcome: Outcome, value: float | None, *, signed: bool = True) -> str:
    """An effect in the outcome's own unit: shares in percentage points, NPS in NPS points."""
    if value is None:
        return "–"
    sign = "+" if signed else ""
    if outcome in ("conversion", "churn", "return_rate"):
        return f"{value * 100:{sign}.1f} points"
    if outcome == "nps":
        return f"{value:{sign}.1f} NPS points"
    if outcome == "orders":
        return f"{value:{sign}.3f} orders per customer"
    return f"{value:{sign},.2f} revenue per customer"


def _ci_text(config: AnalysisConfig, result: OutcomeResult) -> str:
    level = f"{(1 - config.alpha) * 100:g}% CI"
    if result.ci_low is None or result.ci_high is None:
        return f"{level} not available"
    low = _effect(result.outcome, result.ci_low).split(" ")[0]
    high = _effect(result.outcome, result.ci_high).split(" ")[0]
    return f"{level} {low} to {high}"


def _p_text(p_value: float) -> str:
    return "< 0.001" if p_value < 0.001 else f"= {p_value:.3f}"


# --- segments ------------------------------------------------------------------------------------


def _segments(done: pl.DataFrame, config: AnalysisConfig) -> list[SegmentResult]:
    """The primary outcome within each segment that earned the offer, where both arms have
    `SEGMENT_MIN_PER_ARM` analysed customers. Without CUPED: the segment is already a
    pre-period split, and the numbers stay the plain ones a marketer can recount."""
    sizes = (
        done.filter(pl.col("segment").is_not_null())
        .group_by("segment")
        .agg(
            treatment=(pl.col("arm") == "treatment").sum(),
            holdout=(pl.col("arm") == "holdout").sum(),
        )
        .filter(
            (pl.col("treatment") >= SEGMENT_MIN_PER_ARM)
            & (pl.col("holdout") >= SEGMENT_MIN_PER_ARM)
        )
        .sort("segment")
    )
    results = []
    for row in sizes.iter_rows(named=True):
        rows = done.filter(pl.col("segment") == row["segment"])
        if config.primary == "nps":
            result = _nps_outcome(rows, config)
        else:
            result = _tea_tasting_outcomes(rows, config, frozenset())[config.primary]
        results.append(
            SegmentResult(
                segment=row["segment"],
                treatment=int(row["treatment"]),
                holdout=int(row["holdout"]),
                result=msgspec.structs.replace(result, p_adjusted=result.p_value),
            )
        )
    return results


# --- numbers -------------------------------------------------------------------------------------


def _finite(value: object) -> float | None:
    """A plain float, or None for a missing, NaN or infinite one (the result is JSON)."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _relative(lift: float | None, holdout: float | None) -> float | None:
    if lift is None or holdout is None or holdout == 0:
        return None
    return _finite(lift / holdout)
