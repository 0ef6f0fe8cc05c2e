"""The demo shop's offer experiments: what the service would have logged had it shown offers over
the demo's last weeks, and what the offers did.

Customers whose latest NPS answer before the experiment period (`PERIOD_START_DAYS` before the
data's end) made them a detractor, passive or promoter visit the storefront at a random moment of
the period with probability `VISIT_SHARE`; that visit is their assignment to the offer their
category earns (`EFFECTS`), in the arm the service's own hash gives (`recsvc.domain.experiments`,
the shipped catalog's holdout share). The exposure lines go to `_service/exposures.ndjson` (the
training run reads them with `--exposures`).

Treatment works as the effects say, the holdout not at all:
- `conversion`: the chance of one more order (a product they bought before) in the window;
- `nps`: points added to every answer they give in the window (clipped to 10);
and both arms get a re-survey at the same rate (`RESURVEY_SHARE`), so the NPS lift is unbiased.
`passive_engagement` has no effect: the null control.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.experiments import DEFAULT_HOLDOUT_SHARE, DEFAULT_WINDOW_DAYS, Exposure, assign
from recsvc.domain.offers import OfferCatalog, load_offers
from training.sources.feedback_model import US_PER_DAY


@dataclass(frozen=True, slots=True)
class Effect:
    category: str  # the latest NPS category that earns the offer
    segment: str  # the segment the offer is earned by (logged with the exposure)
    conversion: float
    nps: float


EFFECTS: Final = {
    "apology_credit": Effect("detractor", "detractors", conversion=0.20, nps=1.0),
    "promoter_reward": Effect("promoter", "promoters", conversion=0.08, nps=0.0),
    "passive_engagement": Effect("passive", "passives", conversion=0.0, nps=0.0),
}
PERIOD_START_DAYS: Final = 75  # the period starts this long before the data's end
PERIOD_DAYS: Final = 30
VISIT_SHARE: Final = 0.7
RESURVEY_SHARE: Final = 0.5
SIMULATED_VERSION: Final = "demo-simulated"
EXPOSURES_FILE: Final = "exposures.ndjson"
SERVICE_DIR: Final = "_service"
_CATEGORY = {"detractor": (0, 6), "passive": (7, 8), "promoter": (9, 10)}


def _share(catalog: OfferCatalog, offer_id: str) -> float:
    definition = catalog.offers.get(offer_id)
    if definition is None or definition.experiment is None:
        return DEFAULT_HOLDOUT_SHARE
    return definition.experiment.holdout_share


def simulate(
    orders: pl.DataFrame,
    responses: pl.DataFrame,
    end_us: int,
    rng: np.random.Generator,
    id_prefix: str,
) -> tuple[pl.DataFrame, pl.DataFrame, list[Exposure]]:
    """One chunk's orders and answers with the experiments' effects, and the exposure lines."""
    start_us = end_us - PERIOD_START_DAYS * US_PER_DAY
    window_us = DEFAULT_WINDOW_DAYS * US_PER_DAY
    epoch = dt.datetime(1970, 1, 1)
    before = (
        responses.filter(pl.col(c.RESPONDED_AT) < epoch + dt.timedelta(microseconds=start_us))
        .sort(c.RESPONDED_AT)
        .group_by(c.CUSTOMER_ID, maintain_order=True)
        .agg(pl.col(c.SCORE).last())
        .sort(c.CUSTOMER_ID)
    )
    customers = before[c.CUSTOMER_ID].to_list()
    scores = before[c.SCORE].to_numpy()
    visits = rng.random(len(customers)) < VISIT_SHARE
    at_us = start_us + (rng.random(len(customers)) * PERIOD_DAYS * US_PER_DAY).astype(np.int64)
    convert_draw = rng.random(len(customers))
    resurvey_draw = rng.random(len(customers))
    resurvey_at = at_us + ((14 + rng.random(len(customers)) * 14) * US_PER_DAY).astype(np.int64)
    noise = rng.normal(0.0, 1.0, len(customers))

    bought = orders.group_by(c.CUSTOMER_ID).agg(
        pl.col(c.PRODUCT_ID).last(), pl.col(c.UNIT_PRICE).last()
    )
    last_product = dict(zip(bought[c.CUSTOMER_ID], bought[c.PRODUCT_ID], strict=True))
    last_price = dict(zip(bought[c.CUSTOMER_ID], bought[c.UNIT_PRICE], strict=True))
    extra_orders: list[dict[str, object]] = []
    extra_answers: list[dict[str, object]] = []
    shifted: list[tuple[str, int, float]] = []  # customer, assigned at (us), points
    lines: list[Exposure] = []
    catalog = load_offers()
    shares = {offer: _share(catalog, offer) for offer in EFFECTS}
    for k, customer in enumerate(customers):
        if not visits[k]:
            continue
        offer, effect = next(
            ((o, e) for o, e in EFFECTS.items() if _in(scores[k], e.category)), (None, None)
        )
        if offer is None or effect is None:
            continue
        arm = assign(offer, offer, customer, shares[offer])
        assigned = epoch + dt.timedelta(microseconds=int(at_us[k]))
        lines.append(
            Exposure(
                assigned.replace(tzinfo=dt.UTC),
                offer,
                offer,
                customer,
                arm,
                SIMULATED_VERSION,
                effect.segment,
                shares[offer],
            )
        )
        treated = arm == "treatment"
        if treated and convert_draw[k] < effect.conversion and customer in last_product:
            ordered = assigned + dt.timedelta(days=1 + 27 * float(resurvey_draw[k]))
            order_id = f"OX{id_prefix}{len(extra_orders):06d}"
            extra_orders.append(
                {
                    c.LINE_ID: f"{order_id}-1",
                    c.ORDER_ID: order_id,
                    c.CUSTOMER_ID: customer,
                    c.PRODUCT_ID: last_product[customer],
                    c.QUANTITY: 1,
                    c.UNIT_PRICE: last_price[customer],
                    c.ORDERED_AT: ordered,
                    c.PROMISED_DELIVERY_AT: ordered + dt.timedelta(days=3),
                    c.DELIVERED_AT: ordered + dt.timedelta(days=2),
                    c.STATUS: "delivered",
                }
            )
        if treated and effect.nps:
            shifted.append((customer, int(at_us[k]), effect.nps))
        if resurvey_draw[k] < RESURVEY_SHARE and resurvey_at[k] < end_us:
            score = int(np.clip(round(scores[k] + noise[k]), 0, 10))
            extra_answers.append(
                {
                    c.RESPONSE_ID: f"nps-x{id_prefix}{len(extra_answers):06d}",
                    c.CUSTOMER_ID: customer,
                    c.SCORE: score,
                    c.RESPONDED_AT: epoch + dt.timedelta(microseconds=int(resurvey_at[k])),
                    c.TOUCHPOINT: "relationship",
                    c.ORDER_ID: None,
                    c.COMMENT: None,
                }
            )
    if extra_orders:
        orders = pl.concat([orders, pl.DataFrame(extra_orders, schema=orders.schema)])
    if extra_answers:
        responses = pl.concat([responses, pl.DataFrame(extra_answers, schema=responses.schema)])
    if shifted:
        lift = pl.DataFrame(
            shifted, schema={"_c": pl.String, "_at": pl.Int64, "_points": pl.Float64}, orient="row"
        )
        responses = (
            responses.join(lift, left_on=c.CUSTOMER_ID, right_on="_c", how="left")
            .with_columns(
                pl.when(
                    pl.col("_at").is_not_null()
                    & (pl.col(c.RESPONDED_AT).dt.epoch("us") > pl.col("_at"))
                    & (pl.col(c.RESPONDED_AT).dt.epoch("us") <= pl.col("_at") + window_us)
                )
                .then((pl.col(c.SCORE) + pl.col("_points").round(0).cast(pl.Int64)).clip(0, 10))
                .otherwise(pl.col(c.SCORE))
                .alias(c.SCORE)
            )
            .drop("_at", "_points")
        )
    return orders, responses, lines


def _in(score: int, category: str) -> bool:
    low, high = _CATEGORY[category]
    return low <= score <= high


def encode_lines(lines: list[Exposure]) -> bytes:
    encoder = msgspec.json.Encoder()
    return b"".join(encoder.encode(line) + b"\n" for line in lines)
