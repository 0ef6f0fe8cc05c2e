"""From the exposure log and the shop's own tables to one outcome table per experiment.

A customer's assignment is their first line in an experiment's log (when they were first eligible:
their outcome window starts there); their arm is the one that line names (the same on every line:
it is a hash of the ids). Outcomes are counted in the `window_days` after assignment, from the
shop's order lines and NPS answers (live ones included: the run has merged them), whatever was
shown afterwards (intent-to-treat):

- conversion: any order line that was not cancelled; churn: none;
- orders (distinct order ids) and revenue (quantity × unit price) per customer;
- lines and returned lines (the return rate is their ratio per arm);
- the score of the customer's first NPS answer after assignment (the re-survey);
- CUPED's covariates: orders and revenue in the `PRE_PERIOD_DAYS` before assignment.

A row is `complete` once its window has ended by the data's end (`as_of`); only complete rows are
analysed, so a window still running never counts as "did not convert".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import msgspec
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.experiments import PRE_PERIOD_DAYS, Assignment, Exposure
from recsvc.domain.rfm import micros
from recsvc.domain.times import naive_utc
from recsvc.errors import DataContractError

EXPOSURE_SCHEMA = pl.Schema(
    {
        "at": pl.Datetime("us"),
        "experiment": pl.String(),
        "offer_id": pl.String(),
        "customer_id": pl.String(),
        "arm": pl.String(),
        "version": pl.String(),
        "segment": pl.String(),
        "share": pl.Float64(),
    }
)
ASSIGNMENT_SCHEMA = pl.Schema(
    {
        "experiment": pl.String(),
        "customer_id": pl.String(),
        "offer_id": pl.String(),
        "arm": pl.String(),
        "segment": pl.String(),
        "share": pl.Float64(),
        "assigned_at": pl.Datetime("us"),
        "exposures": pl.Int64(),
    }
)
_decoder = msgspec.json.Decoder(Exposure)


def exposure_frame(lines: Iterable[Exposure]) -> pl.DataFrame:
    """The log's lines as a frame (UTC as naive microseconds, the training job's convention).
    Column by column from Python attributes: a million lines in about a second."""
    rows = list(lines)
    # Microseconds since the epoch, exact: polars builds naive datetimes from them in one cast.
    at = [micros(line.at) for line in rows]
    return pl.DataFrame(
        {
            "at": pl.Series(at, dtype=pl.Int64).cast(pl.Datetime("us")),
            "experiment": [line.experiment for line in rows],
            "offer_id": [line.offer_id for line in rows],
            "customer_id": [line.customer_id for line in rows],
            "arm": [line.arm for line in rows],
            "version": [line.version for line in rows],
            "segment": [line.segment for line in rows],
            "share": [line.share for line in rows],
        },
        schema=EXPOSURE_SCHEMA,
    )


def read_exposure_file(path: Path) -> pl.DataFrame:
    """Exposure lines kept outside the store (NDJSON, one `Exposure` array per line): lines from
    before this store, or the demo's simulated ones. A bad line is an error naming the line."""
    lines = []
    try:
        with path.open("rb") as file:
            for number, raw in enumerate(file, start=1):
                if not raw.strip():
                    continue
                try:
                    lines.append(_decoder.decode(raw))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise DataContractError(
                        f"{path}: line {number}: not an exposure line: {exc}"
                    ) from None
    except OSError as exc:
        raise DataContractError(f"{path}: cannot read the exposure file: {exc.strerror}") from None
    return exposure_frame(lines)


def assignments(exposures: pl.DataFrame) -> pl.DataFrame:
    """One row per (experiment, customer): offer, arm, segment and share of their first line,
    `assigned_at` (its time) and `exposures` (lines that showed the offer)."""
    return merge_assignments(
        exposures.select(
            "experiment",
            "customer_id",
            "offer_id",
            "arm",
            "segment",
            "share",
            pl.col("at").alias("assigned_at"),
            (pl.col("arm") == "treatment").cast(pl.Int64).alias("exposures"),
        )
    )


def assignment_frame(folded: Iterable[Assignment]) -> pl.DataFrame:
    """Assignments (as a compaction stored them) as the frame `assignments` makes."""
    rows = list(folded)
    return pl.DataFrame(
        {
            "experiment": [a.experiment for a in rows],
            "customer_id": [a.customer_id for a in rows],
            "offer_id": [a.offer_id for a in rows],
            "arm": [a.arm for a in rows],
            "segment": [a.segment for a in rows],
            "share": [a.share for a in rows],
            "assigned_at": pl.Series([micros(a.assigned_at) for a in rows], dtype=pl.Int64).cast(
                pl.Datetime("us")
            ),
            "exposures": [a.exposures for a in rows],
        },
        schema=ASSIGNMENT_SCHEMA,
    )


def merge_assignments(*frames: pl.DataFrame) -> pl.DataFrame:
    """Assignments found in several parts of the log as one: the earliest assignment (its offer,
    arm and segment), the latest share, the exposures added up."""
    return (
        pl.concat([f.select(ASSIGNMENT_SCHEMA.names()) for f in frames])
        .sort("assigned_at")
        .group_by("experiment", "customer_id", maintain_order=True)
        .agg(
            pl.col("offer_id").first(),
            pl.col("arm").first(),
            pl.col("segment").first(),
            pl.col("share").last(),
            pl.col("assigned_at").first(),
            pl.col("exposures").sum(),
        )
        .sort("experiment", "customer_id")
        .select(ASSIGNMENT_SCHEMA.names())
    )


def as_assignments(frame: pl.DataFrame) -> list[Assignment]:
    return [
        Assignment(
            row["experiment"],
            row["offer_id"],
            row["customer_id"],
            row["arm"],
            row["assigned_at"].replace(tzinfo=dt.UTC),
            row["exposures"],
            row["segment"],
            row["share"],
        )
        for row in frame.iter_rows(named=True)
    ]


def outcome_table(
    assigned: pl.DataFrame,
    orders: pl.LazyFrame,
    responses: pl.LazyFrame,
    as_of: dt.datetime,
    window_days: int | None = None,
) -> pl.DataFrame:
    """Assignments with their outcomes and covariates (see the module docstring), one row per
    (experiment, customer): the shop's tables are read once for every experiment. Each row's
    window is its `window_days` column, or `window_days` for all. `as_of` is the data's end,
    UTC (aware or naive)."""
    end = naive_utc(as_of)
    if window_days is not None:
        assigned = assigned.with_columns(pl.lit(window_days, pl.Int64).alias("window_days"))
    if "experiment" not in assigned.columns:
        assigned = assigned.with_columns(pl.lit("").alias("experiment"))
    keys = ["experiment", "customer_id"]
    people = assigned.lazy().select(
        *keys,
        "arm",
        "segment",
        "assigned_at",
        "exposures",
        (pl.col("assigned_at") + pl.duration(days=pl.col("window_days"))).alias("_until"),
    )
    spans = people.select(*keys, "assigned_at", "_until")
    pre = dt.timedelta(days=PRE_PERIOD_DAYS)
    lines = (
        orders.filter(pl.col(c.STATUS) != "cancelled")
        .select(
            pl.col(c.CUSTOMER_ID).alias("customer_id"),
            pl.col(c.ORDER_ID),
            pl.col(c.ORDERED_AT),
            (pl.col(c.QUANTITY).cast(pl.Float64) * pl.col(c.UNIT_PRICE).cast(pl.Float64))
            .fill_null(0.0)
            .alias("_revenue"),
            (pl.col(c.STATUS) == "returned").cast(pl.Int64).alias("_returned"),
        )
        .join(spans, on="customer_id", how="inner")
        .filter(
            (pl.col(c.ORDERED_AT) >= pl.col("assigned_at") - pre)
            & (pl.col(c.ORDERED_AT) <= pl.col("_until"))
        )
    )
    within = pl.col(c.ORDERED_AT) > pl.col("assigned_at")
    before = pl.col(c.ORDERED_AT) < pl.col("assigned_at")
    counted = lines.group_by(keys).agg(
        pl.col(c.ORDER_ID).filter(within).n_unique().alias("orders"),
        pl.col("_revenue").filter(within).sum().alias("revenue"),
        within.sum().cast(pl.Int64).alias("lines"),
        pl.col("_returned").filter(within).sum().alias("returned"),
        pl.col(c.ORDER_ID).filter(before).n_unique().alias("pre_orders"),
        pl.col("_revenue").filter(before).sum().alias("pre_revenue"),
    )
    answers = (
        responses.select(
            pl.col(c.CUSTOMER_ID).alias("customer_id"), pl.col(c.RESPONDED_AT), pl.col(c.SCORE)
        )
        .join(spans, on="customer_id", how="inner")
        .filter(
            (pl.col(c.RESPONDED_AT) > pl.col("assigned_at"))
            & (pl.col(c.RESPONDED_AT) <= pl.col("_until"))
        )
        .sort(c.RESPONDED_AT)
        .group_by(keys)
        .agg(pl.col(c.SCORE).first().cast(pl.Int64).alias("next_nps"))
    )
    table = (
        people.join(counted, on=keys, how="left")
        .join(answers, on=keys, how="left")
        .with_columns(
            pl.col("orders").fill_null(0).cast(pl.Int64),
            pl.col("revenue").fill_null(0.0),
            pl.col("lines").fill_null(0).cast(pl.Int64),
            pl.col("returned").fill_null(0).cast(pl.Int64),
            pl.col("pre_orders").fill_null(0).cast(pl.Int64),
            pl.col("pre_revenue").fill_null(0.0),
            (pl.col("_until") <= end).alias("complete"),
        )
        .with_columns(
            (pl.col("orders") > 0).cast(pl.Int64).alias("converted"),
            (pl.col("orders") == 0).cast(pl.Int64).alias("churned"),
        )
        .drop("_until")
        .collect()
    )
    return table.sort(keys)
