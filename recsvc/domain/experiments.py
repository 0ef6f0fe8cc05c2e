"""Experiments on offers and on personalisation: who is in which arm, what is logged, and the
shape of an experiment's result.

Assignment is a pure function of (experiment id, offer id, customer id): every worker, replica,
restart and model version puts a customer in the same arm, and two offers' assignments are
independent because each hashes its own ids. Nothing about an assignment needs to be stored for
the analysis to be right: outcomes are intent-to-treat, and the exposure log only says *when* a
customer was first eligible (the start of their outcome window) and whether an offer was shown.

The result structs cross from the training run (which computes them into the version's
`experiments.json`) to the service (which serves them): one definition for both sides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Arm = Literal["treatment", "holdout"]
ARMS: tuple[Arm, Arm] = ("treatment", "holdout")
Outcome = Literal["conversion", "orders", "revenue", "return_rate", "churn", "nps"]
OUTCOMES: tuple[Outcome, ...] = ("conversion", "orders", "revenue", "return_rate", "churn", "nps")
Status = Literal["collecting", "significant", "no effect detected"]
# The personalisation experiment's id: the recommendations endpoint's holdout (popular products
# of the customer's segment instead of their personal ranking).
RECOMMENDATIONS_EXPERIMENT = "recommendations"
DEFAULT_HOLDOUT_SHARE = 0.10
DEFAULT_WINDOW_DAYS = 30
PRE_PERIOD_DAYS = 90  # CUPED's covariates: revenue and orders in the 90 days before assignment


def holdout_draw(experiment: str, offer_id: str, customer_id: str) -> float:
    """A uniform draw in [0, 1) fixed by the three ids (BLAKE2b, 64 bits): the customer's position
    in this experiment. Separators keep ("ab", "c") and ("a", "bc") apart."""
    digest = hashlib.blake2b(
        f"{experiment}\x1f{offer_id}\x1f{customer_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign(experiment: str, offer_id: str, customer_id: str, holdout_share: float) -> Arm:
    """The customer's arm: `holdout` for a draw below the share, else `treatment`."""
    return (
        "holdout"
        if holdout_draw(experiment, offer_id, customer_id) < holdout_share
        else "treatment"
    )


class ExperimentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An offer's `[offers.<id>.experiment]` table. `id` salts the assignment: a new id starts a
    new experiment with fresh arms; by default it is the offer's id."""

    id: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")] | None = None
    holdout_share: Annotated[float, Meta(gt=0, lt=1)] = DEFAULT_HOLDOUT_SHARE
    ends: dt.date | None = None  # after this day (UTC) no one is assigned; the offer shows to all
    # What a holdout customer gets instead: nothing, or the next-best offer they earn that is not
    # in an experiment.
    fallback: Literal["none", "next_best"] = "none"
    primary: Outcome = "conversion"  # the outcome that decides the status
    window_days: Annotated[int, Meta(ge=1, le=365)] = DEFAULT_WINDOW_DAYS

    def running(self, day: dt.date) -> bool:
        return self.ends is None or day <= self.ends


class Exposure(msgspec.Struct, frozen=True, array_like=True):
    """One line of the exposure log: at `at`, the offer (or the recommendations) was shown to the
    customer in the treatment arm (`shown`), or withheld from a holdout customer. A customer's
    first line in an experiment is their assignment: the start of their outcome window."""

    at: dt.datetime
    experiment: str
    offer_id: str
    customer_id: str
    arm: Arm
    version: str  # the model version that answered
    segment: str | None  # the segment that earned the offer (the recommendations: the customer's)
    share: float  # the holdout share configured when the line was logged (for the SRM check)


# --- results: computed by the nightly run, served by GET /v1/experiments ---------------------


class ArmSummary(msgspec.Struct, frozen=True, kw_only=True):
    arm: Arm
    assigned: int  # customers assigned so far
    exposed: int  # of them, shown the offer at least once (0 for the holdout)
    analysed: int  # of them, with a complete outcome window


class OutcomeResult(msgspec.Struct, frozen=True, kw_only=True):
    """One outcome: the arms' means and the treatment's lift over the holdout (absolute, and
    relative to the holdout's mean), with a 95% interval and p-values."""

    outcome: Outcome
    primary: bool
    treatment: float | None
    holdout: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    relative_lift: float | None
    p_value: float | None
    # Holm-adjusted over the secondary outcomes (the primary's is its own p-value).
    p_adjusted: float | None
    cuped: bool = False  # variance reduced with pre-assignment revenue and orders


class SegmentResult(msgspec.Struct, frozen=True, kw_only=True):
    segment: str
    treatment: int  # customers analysed per arm
    holdout: int
    result: OutcomeResult  # the primary outcome within the segment


class ExperimentResult(msgspec.Struct, frozen=True, kw_only=True):
    experiment: str
    offer_id: str  # "recommendations" for the personalisation experiment
    primary: Outcome
    status: Status
    status_detail: str  # e.g. "needs about 420 more customers per arm with a complete window"
    holdout_share: float  # configured
    observed_holdout_share: float | None
    srm_p_value: float | None  # sample-ratio mismatch: a small value means broken assignment
    mde: float | None  # the primary's minimum detectable effect (absolute) at 80% power
    window_days: int
    first_assigned: dt.datetime | None
    arms: list[ArmSummary]
    outcomes: list[OutcomeResult]
    segments: list[SegmentResult] = []
    ends: dt.date | None = None


class Assignment(msgspec.Struct, frozen=True, array_like=True):
    """A customer's place in one experiment, as the nightly run found it in the exposure log:
    the arm, and when they were first eligible (the first logged line)."""

    experiment: str
    offer_id: str
    customer_id: str
    arm: Arm
    assigned_at: dt.datetime
    exposures: int  # lines where the offer was shown (0 for the holdout)
    segment: str | None = None  # the segment that earned the offer, at assignment
    share: float = DEFAULT_HOLDOUT_SHARE  # the holdout share of the latest line


class Compacted(msgspec.Struct, frozen=True):
    """The exposure log's lines before `through`, folded into assignments by a training run (the
    lines themselves are then removed from the log)."""

    through: dt.datetime | None = None
    assignments: list[Assignment] = []
