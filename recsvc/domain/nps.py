"""Net Promoter Score math: categories, the score with its margin of error, and the two-sample test.

The one implementation used wherever NPS is shown: the training report computes promoter, passive
and detractor counts per group with polars and calls `nps_from_counts` on them; the service calls the
same functions on a handful of live responses. Pure Python on purpose (no polars, no numpy).

Per response the NPS "value" is +1 (promoter), 0 (passive) or -1 (detractor), so with promoter and
detractor shares p and d the NPS is p - d and the per-response variance is (p + d) - (p - d)^2.
The standard error of the NPS is sqrt(var / n); the 95% margin of error is 1.96 * SE, reported in
NPS points (x 100). Below `ADJUSTED_WALD_BELOW` responses the interval uses the adjusted-Wald
correction (Sauro & Lewis): add 3 to n and 3/4 to each of the promoter and detractor counts before
computing var and SE, and centre the interval on the adjusted NPS. The reported `nps` itself is
always the plain %promoters - %detractors.
"""

from __future__ import annotations

import math
from enum import StrEnum

import msgspec

PROMOTER_MIN = 9  # 9 and 10 are promoters
PASSIVE_MIN = 7  # 7 and 8 are passives; 0..6 are detractors
Z_95 = 1.959963984540054
# Below this many responses the interval is the adjusted-Wald one: the plain (Wald) interval is
# too narrow for small samples and collapses to zero width when every answer is the same.
ADJUSTED_WALD_BELOW = 30
# Groups with fewer responses than this are shown but flagged `too_small` and never called significant.
DEFAULT_MIN_N = 30


class NpsCategory(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"
    UNKNOWN = "unknown"  # the customer never answered; not the same as passive


def category(score: int | None) -> NpsCategory:
    """The NPS category of a 0..10 score; `None` (no answer) is `unknown`."""
    if score is None:
        return NpsCategory.UNKNOWN
    if not 0 <= score <= 10:
        raise ValueError(f"NPS score must be 0..10, got {score!r}")
    if score >= PROMOTER_MIN:
        return NpsCategory.PROMOTER
    if score >= PASSIVE_MIN:
        return NpsCategory.PASSIVE
    return NpsCategory.DETRACTOR


class NpsResult(msgspec.Struct, frozen=True, kw_only=True):
    """NPS of one group, on -100..100, with n and a 95% interval. Fields are None when n == 0."""

    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    # Per-response variance of the +1/0/-1 values (plain shares, used by the z-test).
    variance: float | None
    margin_of_error: float | None  # half-width of the 95% interval, NPS points
    low: float | None  # interval bounds, clipped to -100..100
    high: float | None
    method: str = "wald"  # "wald" or "adjusted_wald"
    too_small: bool = False  # n below the group minimum: shown, but not to be read as a result

    @property
    def promoter_share(self) -> float | None:
        return self.promoters / self.n if self.n else None

    @property
    def detractor_share(self) -> float | None:
        return self.detractors / self.n if self.n else None


def _variance(promoter_share: float, detractor_share: float) -> float:
    # max(0, ...) guards against -1e-17 from rounding when every answer is the same.
    return max(0.0, (promoter_share + detractor_share) - (promoter_share - detractor_share) ** 2)


def nps_from_counts(
    promoters: int, passives: int, detractors: int, min_n: int = DEFAULT_MIN_N
) -> NpsResult:
    """NPS, margin of error and interval from category counts (see the module docstring)."""
    if min(promoters, passives, detractors) < 0:
        raise ValueError("category counts must not be negative")
    n = promoters + passives + detractors
    if n == 0:
        return NpsResult(
            n=0,
            promoters=0,
            passives=0,
            detractors=0,
            nps=None,
            variance=None,
            margin_of_error=None,
            low=None,
            high=None,
            too_small=True,
        )
    p, d = promoters / n, detractors / n
    variance = _variance(p, d)
    if n < ADJUSTED_WALD_BELOW:
        method = "adjusted_wald"
        n_adj = n + 3
        p_adj, d_adj = (promoters + 0.75) / n_adj, (detractors + 0.75) / n_adj
        centre = p_adj - d_adj
        se = math.sqrt(_variance(p_adj, d_adj) / n_adj)
    else:
        method = "wald"
        centre = p - d
        se = math.sqrt(variance / n)
    margin = Z_95 * se * 100
    return NpsResult(
        n=n,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        nps=(p - d) * 100,
        variance=variance,
        margin_of_error=margin,
        low=max(-100.0, centre * 100 - margin),
        high=min(100.0, centre * 100 + margin),
        method=method,
        too_small=n < min_n,
    )


def rest_of(total: NpsResult, group: NpsResult, min_n: int = DEFAULT_MIN_N) -> NpsResult:
    """The NPS of everyone in `total` who is not in `group` (group must be a subset of total)."""
    return nps_from_counts(
        total.promoters - group.promoters,
        total.passives - group.passives,
        total.detractors - group.detractors,
        min_n=min_n,
    )


class ZTest(msgspec.Struct, frozen=True, kw_only=True):
    """Two-sample z-test of two NPS values: is the difference more than noise?"""

    difference: float  # a.nps - b.nps, NPS points
    z: float | None  # None when both groups have zero variance (the test is undefined)
    p_value: float
    significant: bool


def two_sample_z(a: NpsResult, b: NpsResult, alpha: float = 0.05) -> ZTest | None:
    """z = (NPS_a - NPS_b) / sqrt(var_a/n_a + var_b/n_b), two-sided p-value from the normal.

    Returns None when either group has no responses. `significant` needs p < alpha and neither group
    flagged too small: a group below the minimum n is never reported as a real difference. When both
    variances are zero (every answer in each group in the same category) there is no noise to test
    against: z is None, p is 0 if the values differ and 1 if they are equal.
    """
    if a.nps is None or b.nps is None or a.variance is None or b.variance is None:
        return None
    difference = a.nps - b.nps
    se = math.sqrt(a.variance / a.n + b.variance / b.n)
    if se == 0:
        z = None
        p_value = 0.0 if difference != 0 else 1.0
    else:
        z = (difference / 100) / se
        p_value = math.erfc(abs(z) / math.sqrt(2))
    significant = p_value < alpha and not (a.too_small or b.too_small)
    return ZTest(difference=difference, z=z, p_value=p_value, significant=significant)
