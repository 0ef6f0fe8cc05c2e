"""The last-orders hold-out on hand-made lines: each customer's last k orders held out whole, only
for customers with more than k orders, the same choice however the lines come in; and the tables
the hold-out model's customer features are built from lose exactly those orders and the answers
given from the first of them on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsvc.domain import columns as c
from training.recommender.holdout import customers_on_both_sides, last_orders, tables_without

T0 = dt.datetime(2024, 1, 1)


def _lines(rows: list[tuple[int, str, int, bool]]) -> pl.DataFrame:
    """(customer index, order id, day, returned) -> lines as `indexed_lines(with_orders=True)`."""
    return pl.DataFrame(
        {
            "u": [r[0] for r in rows],
            "i": list(range(len(rows))),
            "day": [r[2] for r in rows],
            "returned": [r[3] for r in rows],
            c.ORDER_ID: [r[1] for r in rows],
            "at": [T0 + dt.timedelta(days=r[2]) for r in rows],
        },
        schema_overrides={"u": pl.Int32, "i": pl.Int32, "day": pl.Int32},
    )


LINES = _lines(
    [
        # customer 0: three orders, the last a basket of three lines
        (0, "a1", 1, False),
        (0, "a2", 5, False),
        (0, "a3", 9, False),
        (0, "a3", 9, False),
        (0, "a3", 9, True),
        # customer 1: one order only: nothing left to train on, so not held out
        (1, "b1", 3, False),
        # customer 2: two orders, the later one returned whole (no purchase): one order counts
        (2, "c1", 2, False),
        (2, "c2", 8, True),
        # customer 3: two orders the same day: the larger order id is the later
        (3, "d1", 4, False),
        (3, "d2", 4, False),
    ]
)


def _held(lines: pl.DataFrame, k: int) -> set[tuple[int, str]]:
    return set(last_orders(lines, k).select("u", c.ORDER_ID).iter_rows())


def test_each_customers_last_order_is_held_out_whole() -> None:
    held = _held(LINES, 1)
    assert held == {(0, "a3"), (3, "d2")}
    # Every line of a held-out order is held out: the basket is never split.
    test = LINES.join(last_orders(LINES, 1), on=["u", c.ORDER_ID], how="semi")
    assert test.filter(pl.col("u") == 0).height == 3


def test_k_orders_are_held_out_for_customers_with_more_than_k() -> None:
    assert _held(LINES, 2) == {(0, "a3"), (0, "a2")}
    assert _held(LINES, 3) == set()


def test_the_choice_does_not_depend_on_the_order_of_the_lines() -> None:
    for seed in range(5):
        shuffled = LINES.sample(fraction=1.0, shuffle=True, seed=seed)
        assert _held(shuffled, 1) == _held(LINES, 1)
        assert last_orders(shuffled, 1).sort("u").equals(last_orders(LINES, 1).sort("u"))


def test_customers_on_both_sides_count_purchases_not_returns() -> None:
    users = np.array([0, 0, 1, 1, 2], dtype=np.int32)
    returned = np.array([False, False, False, True, False])
    held = np.array([False, True, False, True, True])
    # customer 0 bought on both sides; 1's held-out line was returned; 2 bought only in the test
    assert customers_on_both_sides(users, returned, held, 3) == 1


def test_the_tables_without_the_held_out_orders_and_later_answers() -> None:
    orders = pl.DataFrame(
        {
            c.CUSTOMER_ID: ["C0", "C0", "C0", "C1"],
            c.ORDER_ID: ["a1", "a3", "a3", "a3"],  # C1's "a3" is another customer's order
            c.STATUS: ["delivered", "delivered", "cancelled", "delivered"],
        }
    )
    answers = pl.DataFrame(
        {
            c.CUSTOMER_ID: ["C0", "C0", "C1"],
            c.RESPONSE_ID: ["r1", "r2", "r3"],
            c.RESPONDED_AT: [T0, T0 + dt.timedelta(days=10), T0 + dt.timedelta(days=10)],
        }
    )
    held = pl.DataFrame(
        {c.CUSTOMER_ID: ["C0"], c.ORDER_ID: ["a3"], "at": [T0 + dt.timedelta(days=9)]}
    )
    out = tables_without({c.ORDERS: orders.lazy(), c.NPS_RESPONSES: answers.lazy()}, held)
    kept = out[c.ORDERS].collect()
    assert sorted(kept.select(c.CUSTOMER_ID, c.ORDER_ID).iter_rows()) == [
        ("C0", "a1"),
        ("C1", "a3"),
    ]  # the cancelled line of the held-out order went with it
    # A left join keeps no row order in polars: which answers, not in what order.
    assert sorted(out[c.NPS_RESPONSES].collect()[c.RESPONSE_ID].to_list()) == ["r1", "r3"]
    assert out[c.NPS_RESPONSES].collect().columns == answers.columns


@pytest.mark.parametrize("k", [1, 2])
def test_training_keeps_at_least_one_order_of_every_held_out_customer(k: int) -> None:
    held = last_orders(LINES, k)
    train = LINES.join(held, on=["u", c.ORDER_ID], how="anti").filter(~pl.col("returned"))
    assert set(held["u"].to_list()) <= set(train["u"].to_list())
