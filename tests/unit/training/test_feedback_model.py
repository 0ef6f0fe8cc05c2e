"""The simulated-feedback model on small hand-built purchase histories."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLES, TOUCHPOINTS
from training.sources.feedback_model import SATISFACTION, FeedbackTables, simulate_feedback

AS_OF = dt.datetime(2025, 12, 31, 23, 59, 59)
DELIVERY_WORDS = "deliver|arriv|courier|parcel|shipping"
SURVEYS = {c.NPS_RESPONSES: (0, 10), c.CSAT_RESPONSES: (1, 5), c.CES_RESPONSES: (1, 7)}


def _history(
    n_customers: int = 3_000,
    orders_per_customer: int = 6,
    late_share: float = 0.25,
    *,
    with_delivery: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Order lines (two per order) for customers with a known satisfaction; a quarter arrive late."""
    rng = np.random.default_rng(11)
    n_orders = n_customers * orders_per_customer
    owner = np.repeat(np.arange(n_customers), orders_per_customer)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    day = 86_400_000_000
    ordered = start + (rng.random(n_orders) * 600 * day).astype(np.int64)
    promised = ordered + 3 * day
    late = rng.random(n_orders) < late_share
    delivered = np.where(late, promised + (1 + rng.random(n_orders) * 4) * day, promised - day)
    status = np.where(rng.random(n_orders) < 0.05, "returned", "delivered")
    line_order = np.repeat(np.arange(n_orders), 2)

    def stamp(values: np.ndarray) -> pl.Series:
        return pl.Series(values[line_order].astype(np.int64)).cast(pl.Datetime("us"))

    orders = pl.DataFrame(
        {
            c.ORDER_ID: [f"O{i}" for i in line_order],
            c.CUSTOMER_ID: [f"C{i}" for i in owner[line_order]],
            c.PRODUCT_ID: [f"P{i % 2}" for i in range(len(line_order))],
            c.QUANTITY: 1,
            c.UNIT_PRICE: 9.99,
            c.ORDERED_AT: stamp(ordered),
            c.PROMISED_DELIVERY_AT: stamp(promised) if with_delivery else None,
            c.DELIVERED_AT: stamp(delivered) if with_delivery else None,
            c.STATUS: status[line_order],
        }
    ).with_columns(pl.col(c.PROMISED_DELIVERY_AT, c.DELIVERED_AT).cast(pl.Datetime("us")))
    customers = pl.DataFrame(
        {
            c.CUSTOMER_ID: [f"C{i}" for i in range(n_customers)],
            SATISFACTION: rng.standard_normal(n_customers),
        }
    )
    return orders, customers


@pytest.fixture(scope="module")
def history() -> tuple[pl.DataFrame, pl.DataFrame]:
    return _history()


@pytest.fixture(scope="module")
def feedback(history: tuple[pl.DataFrame, pl.DataFrame]) -> FeedbackTables:
    orders, customers = history
    return simulate_feedback(orders, customers, seed=5, id_prefix="t-", as_of=AS_OF)


def _tables(feedback: FeedbackTables) -> dict[str, pl.DataFrame]:
    return {
        c.NPS_RESPONSES: feedback.nps_responses,
        c.CSAT_RESPONSES: feedback.csat_responses,
        c.CES_RESPONSES: feedback.ces_responses,
    }


def test_every_survey_table_has_exactly_the_contract_columns_and_types(
    feedback: FeedbackTables,
) -> None:
    expected = {
        c.RESPONSE_ID: pl.String,
        c.CUSTOMER_ID: pl.String,
        c.SCORE: pl.Int64,
        c.RESPONDED_AT: pl.Datetime("us"),
        c.TOUCHPOINT: pl.String,
        c.ORDER_ID: pl.String,
        c.COMMENT: pl.String,
    }
    for name, frame in _tables(feedback).items():
        assert frame.columns == [f.name for f in TABLES[name].fields]
        assert dict(frame.schema) == expected
        assert frame.height > 100, name


def test_scores_ids_touchpoints_and_references_are_valid(
    feedback: FeedbackTables, history: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    orders, customers = history
    for name, frame in _tables(feedback).items():
        low, high = SURVEYS[name]
        assert frame[c.SCORE].min() >= low and frame[c.SCORE].max() <= high
        assert frame[c.RESPONSE_ID].is_unique().all()
        assert frame[c.RESPONSE_ID].str.contains("t-").all()
        assert frame[c.TOUCHPOINT].is_in(list(TOUCHPOINTS)).all()
        assert frame[c.CUSTOMER_ID].is_in(customers[c.CUSTOMER_ID].implode()).all()
        about_order = frame.filter(pl.col(c.ORDER_ID).is_not_null())
        assert about_order[c.ORDER_ID].is_in(orders[c.ORDER_ID].implode()).all()
        assert frame[c.RESPONDED_AT].max() <= AS_OF
    nps = feedback.nps_responses
    assert set(nps[c.TOUCHPOINT]) == set(TOUCHPOINTS)
    # Pre- and post-delivery answers name their order; relationship answers do not.
    assert (nps.filter(pl.col(c.TOUCHPOINT) != "relationship")[c.ORDER_ID].is_not_null()).all()
    assert nps.filter(pl.col(c.TOUCHPOINT) == "relationship")[c.ORDER_ID].is_null().all()


def test_pre_delivery_answers_come_before_delivery_and_post_delivery_answers_after(
    feedback: FeedbackTables, history: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    orders = history[0].unique(c.ORDER_ID)
    timed = feedback.nps_responses.join(orders, on=c.ORDER_ID, suffix="_order")
    pre = timed.filter(pl.col(c.TOUCHPOINT) == "pre_delivery")
    post = timed.filter(pl.col(c.TOUCHPOINT) == "post_delivery")
    assert (pre[c.RESPONDED_AT] >= pre[c.ORDERED_AT].dt.truncate("1s")).all()
    assert (pre[c.RESPONDED_AT] < pre[c.DELIVERED_AT]).all()
    assert (post[c.RESPONDED_AT] >= post[c.DELIVERED_AT].dt.truncate("1s")).all()


def test_the_same_seed_gives_the_same_responses_and_another_seed_different_ones(
    feedback: FeedbackTables, history: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    orders, customers = history
    again = simulate_feedback(orders, customers, seed=5, id_prefix="t-", as_of=AS_OF)
    other = simulate_feedback(orders, customers, seed=6, id_prefix="t-", as_of=AS_OF)
    for name, frame in _tables(feedback).items():
        assert frame.equals(_tables(again)[name])
        assert not frame.equals(_tables(other)[name])


def test_late_deliveries_lower_post_delivery_nps_relative_to_pre_delivery_nps(
    feedback: FeedbackTables, history: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    """Per customer: post-delivery minus pre-delivery score, averaged, late orders vs on-time ones."""
    lines = history[0]
    late = lines.unique(c.ORDER_ID).select(
        c.ORDER_ID, (pl.col(c.DELIVERED_AT) > pl.col(c.PROMISED_DELIVERY_AT)).alias("late")
    )
    nps = feedback.nps_responses.join(late, on=c.ORDER_ID)
    pre = (
        nps.filter(pl.col(c.TOUCHPOINT) == "pre_delivery")
        .group_by(c.CUSTOMER_ID)
        .agg(pl.col(c.SCORE).mean().alias("pre"))
    )
    post = nps.filter(pl.col(c.TOUCHPOINT) == "post_delivery").join(pre, on=c.CUSTOMER_ID)
    gap = post.group_by("late").agg((pl.col(c.SCORE) - pl.col("pre")).mean().alias("gap"))
    by_late = dict(zip(gap["late"], gap["gap"], strict=True))
    assert by_late[True] < by_late[False] - 1.5


def test_detractors_mention_delivery_more_often_than_promoters(feedback: FeedbackTables) -> None:
    commented = feedback.nps_responses.filter(pl.col(c.COMMENT).is_not_null()).with_columns(
        pl.col(c.COMMENT).str.to_lowercase().str.contains(DELIVERY_WORDS).alias("delivery")
    )
    detractors = commented.filter(pl.col(c.SCORE) <= 6)["delivery"].mean()
    promoters = commented.filter(pl.col(c.SCORE) >= 9)["delivery"].mean()
    assert isinstance(detractors, float) and isinstance(promoters, float)
    assert detractors > 1.5 * promoters
    # Comments are for a share of responses, not all.
    share = feedback.nps_responses[c.COMMENT].is_not_null().mean()
    assert share is not None and 0.2 < share < 0.7


def test_csat_and_ces_follow_the_customers_satisfaction(
    feedback: FeedbackTables, history: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    customers = history[1]
    for frame in (feedback.csat_responses, feedback.ces_responses):
        joined = frame.join(customers, on=c.CUSTOMER_ID)
        assert np.corrcoef(joined[c.SCORE].to_numpy(), joined[SATISFACTION].to_numpy())[0, 1] > 0.3
        # A panel: only a share of customers ever answers.
        assert frame[c.CUSTOMER_ID].n_unique() < 0.5 * customers.height


def test_real_purchases_without_delivery_times_or_satisfaction_still_get_feedback() -> None:
    """Online Retail style input: no delivery timestamps, no latent mood; loyal buyers are happier."""
    orders, customers = _history(n_customers=2_000, with_delivery=False)
    # One-time buyers: drop all but the first order of the first half of the customers.
    first_half = pl.col(c.CUSTOMER_ID).str.slice(1).cast(pl.Int64) < 1_000
    first_order = pl.col(c.ORDER_ID) == pl.col(c.ORDER_ID).first().over(c.CUSTOMER_ID)
    orders = orders.filter(~first_half | first_order)
    result = simulate_feedback(orders, customers.select(c.CUSTOMER_ID), seed=1)
    nps = result.nps_responses
    assert set(nps[c.TOUCHPOINT]) == set(TOUCHPOINTS)
    latest = orders[c.ORDERED_AT].max()
    assert isinstance(latest, dt.datetime)
    assert nps[c.RESPONDED_AT].max() <= latest  # default cutoff: nothing after the data ends
    one_time = nps.filter(pl.col(c.CUSTOMER_ID).str.slice(1).cast(pl.Int64) < 1_000)[c.SCORE].mean()
    repeat = nps.filter(pl.col(c.CUSTOMER_ID).str.slice(1).cast(pl.Int64) >= 1_000)[c.SCORE].mean()
    assert isinstance(one_time, float) and isinstance(repeat, float)
    assert repeat > one_time + 0.5


def test_customers_without_orders_can_still_answer_the_relationship_survey() -> None:
    orders, customers = _history(n_customers=200)
    extra = pl.DataFrame({c.CUSTOMER_ID: [f"N{i}" for i in range(2_000)]})
    everyone = pl.concat([customers.select(c.CUSTOMER_ID), extra])
    nps = simulate_feedback(orders, everyone, seed=3, as_of=AS_OF).nps_responses
    newcomers = nps.filter(pl.col(c.CUSTOMER_ID).str.starts_with("N"))
    assert newcomers.height > 100
    assert (newcomers[c.TOUCHPOINT] == "relationship").all()
