"""The simulated-feedback model: NPS, CSAT and CES responses (with comments) drawn from purchase history.

Shared by the demo generator and the Online Retail importer, so the same documented model produces
feedback for simulated and for real purchases (docs/demo-data.md describes it). Vectorised throughout:
the generator calls it once per chunk of 50k customers at the million-customer scale.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.contract import CES_RESPONSES, CSAT_RESPONSES, NPS_RESPONSES, Table
from training.sources.comments import MIXED, NEGATIVE, POSITIVE, THEMES, draw_comments

# Optional input column on `customers`: the customer's latent mood, about N(0, 1).
SATISFACTION = "satisfaction"

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR

PRE_DELIVERY, POST_DELIVERY, RELATIONSHIP = "pre_delivery", "post_delivery", "relationship"
_THEME = {theme: i for i, theme in enumerate(THEMES)}  # a theme's column in the weights


@dataclass(frozen=True, slots=True)
class FeedbackTables:
    nps_responses: pl.DataFrame
    csat_responses: pl.DataFrame
    ces_responses: pl.DataFrame


@dataclass(frozen=True, slots=True)
class _Orders:
    """One entry per order (not per line), as numpy arrays; times in microseconds since the epoch."""

    order_id: pl.Series
    customer: np.ndarray  # index into _Customers
    ordered_at: np.ndarray
    delivered_at: np.ndarray  # simulated when received but not recorded
    delivery_recorded: np.ndarray
    days_late: np.ndarray  # 0.0 when on time or no promise is known
    received: np.ndarray  # delivered or returned: a post-delivery survey makes sense
    returned: np.ndarray


@dataclass(frozen=True, slots=True)
class _Customers:
    customer_id: pl.Series
    satisfaction: np.ndarray
    window_start: np.ndarray  # earliest time a relationship survey may be sent
    late_share: np.ndarray  # share of the customer's received orders that came late


def simulate_feedback(
    orders: pl.DataFrame,
    customers: pl.DataFrame,
    *,
    seed: int,
    id_prefix: str = "",
    as_of: dt.datetime | None = None,
) -> FeedbackTables:
    """Draw survey responses for the given order lines and customers (contract columns).

    `orders` holds contract order columns (order_id, customer_id, product_id, quantity, unit_price,
    ordered_at, promised_delivery_at, delivered_at, status); `customers` holds at least customer_id and
    may hold a float column `satisfaction` (a customer's latent mood, about N(0, 1)); when absent it is
    drawn from the seed, leaning towards happier for customers with more orders. `id_prefix` keeps
    response ids unique across chunks. No response is later than `as_of` (default: the latest
    timestamp in `orders`). Orders received without a recorded `delivered_at` count as delivered on
    time three to five days after ordering: lateness is never invented. Deterministic for a seed.
    """
    streams = np.random.SeedSequence(seed).spawn(8)
    rng_mood, rng_pre, rng_post, rng_rel, rng_csat, rng_ces, rng_comment, rng_ship = (
        np.random.default_rng(s) for s in streams
    )
    order_rows, customer_index = _order_level(orders, customers, rng_ship)
    people = _customer_level(customers, order_rows, customer_index, rng_mood)
    cutoff = _cutoff_us(as_of, order_rows)

    nps = [
        _pre_delivery_nps(order_rows, people, rng_pre),
        _post_delivery_nps(order_rows, people, rng_post),
        _relationship_nps(people, cutoff, rng_rel),
    ]
    return FeedbackTables(
        nps_responses=_finish(nps, people, NPS_RESPONSES, "nps", id_prefix, cutoff, rng_comment),
        csat_responses=_finish(
            [_csat(order_rows, people, rng_csat)],
            people,
            CSAT_RESPONSES,
            "csat",
            id_prefix,
            cutoff,
            rng_comment,
        ),
        ces_responses=_finish(
            [_ces(order_rows, people, rng_ces)],
            people,
            CES_RESPONSES,
            "ces",
            id_prefix,
            cutoff,
            rng_comment,
        ),
    )


# --- inputs ---------------------------------------------------------------------------------------


def _as_naive_us(frame: pl.DataFrame, name: str) -> pl.Expr:
    """A timestamp column as naive UTC microseconds (null when the column is missing)."""
    if name not in frame.columns:
        return pl.lit(None, dtype=pl.Datetime("us")).alias(name)
    dtype = frame.schema[name]
    expr = pl.col(name)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.cast(pl.Datetime("us")).alias(name)


def _order_level(
    orders: pl.DataFrame, customers: pl.DataFrame, rng: np.random.Generator
) -> tuple[_Orders, pl.DataFrame]:
    customer_index = pl.DataFrame({c.CUSTOMER_ID: customers[c.CUSTOMER_ID].cast(pl.String)})
    # Customers that appear only in `orders` are added so every order has someone to ask.
    order_customers = orders[c.CUSTOMER_ID].cast(pl.String).unique(maintain_order=True)
    extra = order_customers.filter(~order_customers.is_in(customer_index[c.CUSTOMER_ID].implode()))
    if extra.len():
        customer_index = pl.concat([customer_index, extra.to_frame()])
    customer_index = customer_index.with_row_index("_customer")

    status = (
        pl.col(c.STATUS).cast(pl.String).fill_null("delivered")
        if c.STATUS in orders.columns
        else pl.lit("delivered")
    )
    by_order = (
        orders.lazy()
        .select(
            pl.col(c.ORDER_ID).cast(pl.String),
            pl.col(c.CUSTOMER_ID).cast(pl.String),
            _as_naive_us(orders, c.ORDERED_AT),
            _as_naive_us(orders, c.PROMISED_DELIVERY_AT),
            _as_naive_us(orders, c.DELIVERED_AT),
            status.alias(c.STATUS),
        )
        .group_by(c.ORDER_ID, maintain_order=True)
        .agg(
            pl.col(c.CUSTOMER_ID).first(),
            pl.col(c.ORDERED_AT).min(),
            pl.col(c.PROMISED_DELIVERY_AT).max(),
            pl.col(c.DELIVERED_AT).max(),
            pl.col(c.STATUS).is_in(["delivered", "returned"]).any().alias("_received"),
            (pl.col(c.STATUS) == "returned").any().alias("_returned"),
        )
        .join(customer_index.lazy(), on=c.CUSTOMER_ID, how="left", maintain_order="left")
        .collect()
    )
    ordered_at = by_order[c.ORDERED_AT].dt.epoch("us").to_numpy().astype(np.int64)
    promised = by_order[c.PROMISED_DELIVERY_AT].dt.epoch("us").fill_null(-1).to_numpy()
    recorded = by_order[c.DELIVERED_AT].dt.epoch("us").fill_null(-1).to_numpy()
    received = by_order["_received"].to_numpy() | (recorded >= 0)
    # Received without a recorded delivery (real data): on time, three to five days after ordering.
    assumed = ordered_at + rng.uniform(3.0, 5.0, len(ordered_at)) * US_PER_DAY
    delivered_at = np.where(recorded >= 0, recorded, assumed.astype(np.int64))
    days_late = np.where(
        (recorded >= 0) & (promised >= 0), np.maximum(recorded - promised, 0) / US_PER_DAY, 0.0
    )
    rows = _Orders(
        order_id=by_order[c.ORDER_ID],
        customer=by_order["_customer"].to_numpy().astype(np.int64),
        ordered_at=ordered_at,
        delivered_at=delivered_at,
        delivery_recorded=recorded >= 0,
        days_late=days_late,
        received=received,
        returned=by_order["_returned"].to_numpy(),
    )
    return rows, customer_index


def _customer_level(
    customers: pl.DataFrame, orders: _Orders, customer_index: pl.DataFrame, rng: np.random.Generator
) -> _Customers:
    n = customer_index.height
    n_orders = np.bincount(orders.customer, minlength=n)
    first_order = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_order, orders.customer, orders.ordered_at)
    late = orders.received & (orders.days_late > 0)
    n_received = np.bincount(orders.customer, weights=orders.received, minlength=n)
    n_late = np.bincount(orders.customer, weights=late, minlength=n)
    late_share = np.divide(n_late, n_received, out=np.zeros(n), where=n_received > 0)

    noise = rng.standard_normal(n)
    if SATISFACTION in customers.columns:
        given = customers[SATISFACTION].cast(pl.Float64).fill_nan(None).to_numpy()
        given = np.concatenate([given, np.full(n - len(given), np.nan)])
        satisfaction = np.where(np.isnan(given), noise, given)
    else:
        # Real data: loyal repeat buyers are happier (log order count, standardised over the input).
        loyalty = np.log1p(n_orders).astype(np.float64)
        if n:
            loyalty = (loyalty - loyalty.mean()) / (loyalty.std() or 1.0)
        satisfaction = 0.85 * noise + 0.5 * loyalty

    if c.SIGNUP_DATE in customers.columns:
        signup = (
            customers[c.SIGNUP_DATE].cast(pl.Datetime("us")).dt.epoch("us").fill_null(-1).to_numpy()
        )
        signup = np.concatenate([signup, np.full(n - len(signup), -1)])
    else:
        signup = np.full(n, -1, dtype=np.int64)
    window_start = np.where(signup >= 0, signup, np.iinfo(np.int64).max)
    window_start = np.minimum(window_start, first_order)
    return _Customers(
        customer_id=customer_index[c.CUSTOMER_ID],
        satisfaction=satisfaction,
        window_start=window_start,
        late_share=late_share,
    )


def _cutoff_us(as_of: dt.datetime | None, orders: _Orders) -> int:
    if as_of is not None:
        if as_of.tzinfo is not None:
            as_of = as_of.astimezone(dt.UTC).replace(tzinfo=None)
        return int((as_of - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1))
    if len(orders.ordered_at) == 0:
        return (
            int((dt.datetime(2025, 12, 31) - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000
        )
    recorded = np.where(orders.delivery_recorded, orders.delivered_at, orders.ordered_at)
    return int(max(orders.ordered_at.max(), recorded.max()))


# --- responses ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Drawn:
    """Responses of one kind before ids and comments: parallel arrays."""

    customer: np.ndarray
    score: np.ndarray
    responded_at: np.ndarray
    touchpoint: str
    order_id: pl.Series  # null-typed when not about an order
    sentiment: np.ndarray
    theme_weights: np.ndarray  # (n, len(THEMES)), unnormalised


def _nps_score(utility: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(utility), 0, 10).astype(np.int64)


def _nps_sentiment(score: np.ndarray) -> np.ndarray:
    return np.where(score <= 6, NEGATIVE, np.where(score <= 8, MIXED, POSITIVE))


def _base_weights(sentiment: np.ndarray) -> np.ndarray:
    """Theme mix by sentiment: delivery, price, quality, support, selection, website."""
    table = np.array(
        [
            [3.0, 2.0, 3.0, 2.0, 1.0, 1.5],  # detractors
            [1.5, 3.0, 2.0, 1.0, 2.5, 1.5],  # passives
            [2.0, 2.5, 3.5, 1.5, 1.5, 1.5],  # promoters: quality, value, fast delivery
        ]
    )
    return table[sentiment]


def _pre_delivery_nps(orders: _Orders, people: _Customers, rng: np.random.Generator) -> _Drawn:
    """Right after checkout: the mood plus a small lift from the purchase itself."""
    chosen = np.flatnonzero(rng.random(len(orders.ordered_at)) < 0.10)
    customer = orders.customer[chosen]
    delay = (10 / 60 + rng.exponential(6.0, len(chosen))).clip(max=36.0) * US_PER_HOUR
    responded_at = orders.ordered_at[chosen] + delay.astype(np.int64)
    before_delivery = orders.ordered_at[chosen] + (
        (orders.delivered_at[chosen] - orders.ordered_at[chosen]) // 2
    )
    responded_at = np.where(
        orders.received[chosen] & (responded_at >= orders.delivered_at[chosen]),
        before_delivery,
        responded_at,
    )
    score = _nps_score(
        8.0 + 1.7 * people.satisfaction[customer] + 0.3 + rng.normal(0.0, 1.1, len(chosen))
    )
    sentiment = _nps_sentiment(score)
    weights = _base_weights(sentiment)
    weights[:, _THEME["website"]] += 2.5  # checkout is fresh in mind
    weights[:, _THEME["delivery"]] *= 0.3  # nothing has been delivered yet
    return _Drawn(
        customer,
        score,
        responded_at,
        PRE_DELIVERY,
        orders.order_id.gather(chosen),
        sentiment,
        weights,
    )


def _late_penalty(days_late: np.ndarray) -> np.ndarray:
    """Lateness lowers a post-delivery NPS clearly: a point for being late, half a point per day."""
    return np.where(days_late > 0, 1.0 + 0.5 * np.minimum(days_late, 10.0), 0.0)


def _post_delivery_nps(orders: _Orders, people: _Customers, rng: np.random.Generator) -> _Drawn:
    """A few days after delivery: the mood, minus lateness and returns; late customers answer more."""
    late = orders.days_late > 0
    share = 0.12 + 0.06 * late + 0.04 * orders.returned
    chosen = np.flatnonzero(orders.received & (rng.random(len(orders.ordered_at)) < share))
    customer = orders.customer[chosen]
    days_late = orders.days_late[chosen]
    returned = orders.returned[chosen]
    delay = (2.0 + rng.exponential(36.0, len(chosen))).clip(max=14 * 24.0) * US_PER_HOUR
    responded_at = orders.delivered_at[chosen] + delay.astype(np.int64)
    utility = (
        8.0
        + 1.7 * people.satisfaction[customer]
        + np.where(days_late > 0, 0.0, 0.2)
        - _late_penalty(days_late)
        - 1.6 * returned
        + rng.normal(0.0, 1.1, len(chosen))
    )
    score = _nps_score(utility)
    sentiment = _nps_sentiment(score)
    weights = _base_weights(sentiment)
    is_late = days_late > 0
    weights[:, _THEME["delivery"]] += np.where(is_late, np.array([9.0, 3.0, -1.5])[sentiment], 0.0)
    weights[:, _THEME["quality"]] += 4.0 * returned * (sentiment == NEGATIVE)
    weights[:, _THEME["support"]] += 2.0 * returned * (sentiment != POSITIVE)
    return _Drawn(
        customer,
        score,
        responded_at,
        POST_DELIVERY,
        orders.order_id.gather(chosen),
        sentiment,
        weights,
    )


def _relationship_nps(people: _Customers, cutoff: int, rng: np.random.Generator) -> _Drawn:
    """The periodic survey, not tied to an order: mood, and lingering anger about late deliveries."""
    n = len(people.satisfaction)
    counts = (rng.random(n) < 0.2).astype(np.int64) + (rng.random(n) < 0.05)
    customer = np.repeat(np.arange(n), counts)
    start = np.minimum(people.window_start[customer], cutoff)
    start = np.maximum(start, cutoff - 730 * US_PER_DAY)
    start = np.where(
        people.window_start[customer] == np.iinfo(np.int64).max, cutoff - 365 * US_PER_DAY, start
    )
    responded_at = start + (rng.random(len(customer)) * (cutoff - start)).astype(np.int64)
    late_share = people.late_share[customer]
    utility = (
        7.8
        + 1.7 * people.satisfaction[customer]
        - 2.0 * late_share
        + rng.normal(0.0, 1.1, len(customer))
    )
    score = _nps_score(utility)
    sentiment = _nps_sentiment(score)
    weights = _base_weights(sentiment)
    weights[:, _THEME["delivery"]] += 6.0 * late_share * (sentiment == NEGATIVE)
    weights[:, _THEME["selection"]] += 1.0
    return _Drawn(
        customer,
        score,
        responded_at,
        RELATIONSHIP,
        pl.Series(c.ORDER_ID, [None] * len(customer), dtype=pl.String),
        sentiment,
        weights,
    )


def _panel_orders(
    orders: _Orders,
    people: _Customers,
    rng: np.random.Generator,
    panel_share: float,
    eligible: np.ndarray,
) -> np.ndarray:
    """Orders rated by a survey panel: a share of customers who each rate about a third of their orders."""
    in_panel = rng.random(len(people.satisfaction)) < panel_share
    return np.flatnonzero(
        eligible & in_panel[orders.customer] & (rng.random(len(orders.ordered_at)) < 0.35)
    )


def _csat(orders: _Orders, people: _Customers, rng: np.random.Generator) -> _Drawn:
    """CSAT 1..5 after delivery, for a panel of a quarter of the customers."""
    chosen = _panel_orders(orders, people, rng, 0.25, orders.received)
    customer = orders.customer[chosen]
    days_late = orders.days_late[chosen]
    returned = orders.returned[chosen]
    delay = (1.0 + rng.exponential(24.0, len(chosen))).clip(max=10 * 24.0) * US_PER_HOUR
    utility = (
        4.0
        + 0.85 * people.satisfaction[customer]
        - 0.4 * _late_penalty(days_late)
        - 0.8 * returned
        + rng.normal(0.0, 0.7, len(chosen))
    )
    score = np.clip(np.rint(utility), 1, 5).astype(np.int64)
    sentiment = np.where(score <= 2, NEGATIVE, np.where(score == 3, MIXED, POSITIVE))
    weights = _base_weights(sentiment)
    weights[:, _THEME["delivery"]] += np.where(
        days_late > 0, np.array([9.0, 3.0, 0.0])[sentiment], 0.0
    )
    return _Drawn(
        customer,
        score,
        orders.delivered_at[chosen] + delay.astype(np.int64),
        POST_DELIVERY,
        orders.order_id.gather(chosen),
        sentiment,
        weights,
    )


def _ces(orders: _Orders, people: _Customers, rng: np.random.Generator) -> _Drawn:
    """CES 1..7 (7 = very easy) about checkout, for a panel of 15% of the customers."""
    chosen = _panel_orders(orders, people, rng, 0.15, np.ones(len(orders.ordered_at), dtype=bool))
    customer = orders.customer[chosen]
    delay = (5 / 60 + rng.exponential(3.0, len(chosen))).clip(max=24.0) * US_PER_HOUR
    utility = 5.3 + 0.8 * people.satisfaction[customer] + rng.normal(0.0, 1.0, len(chosen))
    score = np.clip(np.rint(utility), 1, 7).astype(np.int64)
    sentiment = np.where(score <= 3, NEGATIVE, np.where(score <= 5, MIXED, POSITIVE))
    weights = np.tile(np.array([0.5, 0.5, 0.5, 3.0, 0.5, 5.0]), (len(chosen), 1))
    return _Drawn(
        customer,
        score,
        orders.ordered_at[chosen] + delay.astype(np.int64),
        PRE_DELIVERY,
        orders.order_id.gather(chosen),
        sentiment,
        weights,
    )


# --- output --------------------------------------------------------------------------


def _finish(
    parts: list[_Drawn],
    people: _Customers,
    table: Table,
    kind: str,
    id_prefix: str,
    cutoff: int,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Assemble the contract table: drop answers after the cutoff, order by time, assign ids."""
    frames = [
        pl.DataFrame(
            {
                c.CUSTOMER_ID: people.customer_id.gather(drawn.customer),
                c.SCORE: pl.Series(drawn.score, dtype=pl.Int64),
                # Whole seconds, like a survey tool's export.
                c.RESPONDED_AT: pl.Series(
                    drawn.responded_at // 1_000_000 * 1_000_000, dtype=pl.Int64
                ).cast(pl.Datetime("us")),
                c.TOUCHPOINT: pl.repeat(
                    drawn.touchpoint, len(drawn.score), dtype=pl.String, eager=True
                ),
                c.ORDER_ID: drawn.order_id.cast(pl.String),
                c.COMMENT: draw_comments(drawn.sentiment, drawn.theme_weights, rng),
            }
        )
        for drawn in parts
    ]
    cutoff_at = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=cutoff)
    frame = (
        pl.concat(frames)
        .filter(pl.col(c.RESPONDED_AT) <= cutoff_at)
        .sort(c.RESPONDED_AT, c.CUSTOMER_ID, maintain_order=True)
    )
    ids = pl.concat_str(
        pl.lit(f"{kind}-{id_prefix}"), pl.int_range(pl.len()).cast(pl.String).str.zfill(8)
    )
    return frame.select(ids.alias(c.RESPONSE_ID), pl.all()).select(f.name for f in table.fields)


__all__ = ["FeedbackTables", "simulate_feedback"]
