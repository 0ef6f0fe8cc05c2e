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
_decoder = msgspec.json.Decoder(Exposure)


def exposure_frame(lines: Iterable[Exposure]) -> pl.DataFrame:
    """The log's lines as a frame (UTC as naive microseconds, the training job's convention)."""
    columns: dict[str, list[object]] = {name: [] for name in EXPOSURE_SCHEMA}
    for line in lines:
        columns["at"].append(line.at.astimezone(dt.UTC).replace(tzinfo=None))
        columns["experiment"].append(line.experiment)
        columns["offer_id"].append(line.offer_id)
        columns["customer_id"].append(line.customer_id)
        columns["arm"].append(line.arm)
        columns["version"].append(line.version)
        columns["segment"].append(line.segment)
        columns["share"].append(line.share)
    return pl.DataFrame(columns, schema=EXPOSURE_SCHEMA)


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
    return (
        exposures.sort("at")
        .group_by("experiment", "customer_id", maintain_order=True)
        .agg(
            pl.col("offer_id").first(),
            pl.col("arm").first(),
            pl.col("segment").first(),
            pl.col("share").last(),
            pl.col("at").first().alias("assigned_at"),
            (pl.col("arm") == "treatment").sum().cast(pl.Int64).alias("exposures"),
        )
        .sort("experiment", "customer_id")
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
        )
        for row in frame.iter_rows(named=True)
    ]


def outcome_table(
    assigned: pl.DataFrame,
    orders: pl.LazyFrame,
    responses: pl.LazyFrame,
    as_of: dt.datetime,
    window_days: int,
) -> pl.DataFrame:
    """One experiment's assignments with their outcomes and covariates (see the module
    docstring). `as_of` is the data's end, UTC (aware or naive)."""
    end = as_of.astimezone(dt.UTC).replace(tzinfo=None) if as_of.tzinfo else as_of
    window = dt.timedelta(days=window_days)
    pre = dt.timedelta(days=PRE_PERIOD_DAYS)
    people = assigned.lazy().select("customer_id", "arm", "segment", "assigned_at", "exposures")
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
        .join(people.select("customer_id", "assigned_at"), on="customer_id", how="inner")
    )
    after = pl.col(c.ORDERED_AT) > pl.col("assigned_at")
    within = after & (pl.col(c.ORDERED_AT) <= pl.col("assigned_at") + window)
    before = (pl.col(c.ORDERED_AT) < pl.col("assigned_at")) & (
        pl.col(c.ORDERED_AT) >= pl.col("assigned_at") - pre
    )
    counted = lines.group_by("customer_id").agg(
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
        .join(people.select("customer_id", "assigned_at"), on="customer_id", how="inner")
        .filter(
            (pl.col(c.RESPONDED_AT) > pl.col("assigned_at"))
            & (pl.col(c.RESPONDED_AT) <= pl.col("assigned_at") + window)
        )
        .sort(c.RESPONDED_AT)
        .group_by("customer_id")
        .agg(pl.col(c.SCORE).first().cast(pl.Int64).alias("next_nps"))
    )
    table = (
        people.join(counted, on="customer_id", how="left")
        .join(answers, on="customer_id", how="left")
        .with_columns(
            pl.col("orders").fill_null(0).cast(pl.Int64),
            pl.col("revenue").fill_null(0.0),
            pl.col("lines").fill_null(0).cast(pl.Int64),
            pl.col("returned").fill_null(0).cast(pl.Int64),
            pl.col("pre_orders").fill_null(0).cast(pl.Int64),
            pl.col("pre_revenue").fill_null(0.0),
            (pl.col("assigned_at") + window <= end).alias("complete"),
        )
        .with_columns(
            (pl.col("orders") > 0).cast(pl.Int64).alias("converted"),
            (pl.col("orders") == 0).cast(pl.Int64).alias("churned"),
        )
        .collect()
    )
    return table.sort("customer_id")
