"""The recency-weighted frequency on a hand-made order history, exact: training sums it over a
version's order lines, the service adds live orders to a version's weights, and both give the
numbers of one rule (`recsvc.domain.buy_again`)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.buy_again import LivePurchase, after_newer_orders, live_orders, live_purchases
from recsvc.domain.live import LiveOrderLine
from training.recommender import dataset as ds

T0 = dt.datetime(2025, 3, 1, 9, 0)
# (order id, customer, product, days after T0, status): customer A's orders, oldest first.
HISTORY = [
    ("a1", "A", "coffee", 0, "delivered"),
    ("a1", "A", "filter", 0, "delivered"),
    ("a2", "A", "coffee", 10, "delivered"),
    ("a2", "A", "coffee", 10, "delivered"),  # two lines of one product: one order
    ("a3", "A", "mug", 15, "returned"),  # returned whole: not an order that bought anything
    ("a4", "A", "filter", 20, "cancelled"),  # cancelled: no order at all
    ("a5", "A", "filter", 30, "delivered"),
    ("a5", "A", "mug", 30, "returned"),
    # Two orders at the same moment: the larger order id is the later.
    ("a7", "A", "coffee", 40, "delivered"),
    ("a6", "A", "tea", 40, "delivered"),
    ("b1", "B", "tea", 5, "delivered"),
]
PRODUCTS = ["coffee", "filter", "mug", "tea"]


def _orders(rows: list[tuple[str, str, str, int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            c.ORDER_ID: [r[0] for r in rows],
            c.CUSTOMER_ID: [r[1] for r in rows],
            c.PRODUCT_ID: [r[2] for r in rows],
            c.ORDERED_AT: [T0 + dt.timedelta(days=r[3]) for r in rows],
            c.STATUS: [r[4] for r in rows],
        }
    )


def _space(ids: list[str]) -> ds.FeatureSpace:
    return ds.FeatureSpace(np.array(sorted(ids)), [], np.zeros((len(ids), 0), dtype=np.int32))


def _weights(rows: list[tuple[str, str, str, int, str]], decay: float) -> dict[str, float]:
    """Customer A's weights by product, from the order lines as a run indexes them."""
    lines = ds.indexed_lines(_orders(rows).lazy(), _space(["A", "B"]), _space(PRODUCTS))
    p = ds.purchases(lines, 2, decay)
    assert p.recency_weighted is not None and p.recency_weighted.dtype == np.float32
    span = p.row(0)
    return {
        PRODUCTS[i]: float(w)
        for i, w in zip(p.items[span].tolist(), p.recency_weighted[span].tolist(), strict=True)
    }


def test_each_order_that_bought_a_product_weighs_decay_to_the_power_of_orders_back() -> None:
    """A's counted orders, latest first: a7 (0), a6 (1), a5 (2), a2 (3), a1 (4)."""
    assert _weights(HISTORY, 0.9) == pytest.approx(
        {
            "coffee": 1 + 0.9**3 + 0.9**4,  # a7, a2 (two lines, one order), a1
            "filter": 0.9**2 + 0.9**4,  # a5, a1 (a4 was cancelled)
            "tea": 0.9,  # a6: same moment as a7, smaller order id
        },
        rel=1e-7,
    )


def test_decay_one_counts_orders_not_lines() -> None:
    assert _weights(HISTORY, 1.0) == {"coffee": 3.0, "filter": 2.0, "tea": 1.0}


def test_the_weights_at_another_decay_come_from_the_same_purchases() -> None:
    lines = ds.indexed_lines(_orders(HISTORY).lazy(), _space(["A", "B"]), _space(PRODUCTS))
    p = ds.purchases(lines, 2, 0.9)
    again = ds.purchases(lines, 2, 0.5)
    assert p.weights(0.5).tolist() == again.weights(0.5).tolist()
    assert p.weights(0.5)[p.row(0)].tolist() == [1 + 0.5**3 + 0.5**4, 0.25 + 0.5**4, 0.5]
    # Line counts and last days are the purchases', whatever the decay.
    assert p.counts[p.row(0)].tolist() == [4, 2, 1]


def _live(order: str, product: str, days: int, status: str = "placed") -> LiveOrderLine:
    at = (T0 + dt.timedelta(days=days)).replace(tzinfo=dt.UTC)
    return LiveOrderLine(
        line_id=f"{order}-{product}-{status}",
        order_id=order,
        customer_id="A",
        product_id=product,
        quantity=1,
        unit_price=4.5,
        ordered_at=at,
        status=status,
        received_at=at,
    )


def test_live_orders_are_counted_back_from_the_latest_one() -> None:
    bought = live_purchases(
        [
            _live("x1", "coffee", 50),
            _live("x2", "tea", 55),
            _live("x2", "tea", 55),
            _live("x3", "mug", 60, "returned"),  # bought nothing: not counted
            _live("x4", "coffee", 61, "cancelled"),
            _live("x5", "coffee", 62),
        ]
    )
    day = (T0.date() - dt.date(1970, 1, 1)).days
    assert bought == {
        "coffee": LivePurchase(lines=2, last_day=day + 62, orders_back=(0, 2)),
        "tea": LivePurchase(lines=2, last_day=day + 55, orders_back=(1,)),
    }
    assert live_orders(bought) == 3
    assert bought["coffee"].weight(0.9) == pytest.approx(1 + 0.81)


@pytest.mark.parametrize("decay", [1.0, 0.9, 0.7])
def test_a_version_plus_live_orders_weighs_what_the_next_run_will(decay: float) -> None:
    """The service's rule (the version's weights moved back by the live orders, plus theirs) gives
    what training computes over all the orders once the next run holds them."""
    later = [
        ("x1", "A", "filter", 50, "delivered"),
        ("x2", "A", "coffee", 55, "delivered"),
        ("x2", "A", "mug", 55, "delivered"),
        ("x3", "A", "tea", 58, "returned"),
    ]
    version = _weights(HISTORY, decay)
    bought = live_purchases([_live(o, p, d, s) for o, _, p, d, s in later])
    newer = live_orders(bought)
    assert newer == 2
    served = {
        p: float(after_newer_orders(np.array([w]), newer, decay)[0]) for p, w in version.items()
    }
    for product, purchase in bought.items():
        served[product] = served.get(product, 0.0) + purchase.weight(decay)
    assert served == pytest.approx(_weights(HISTORY + later, decay), rel=1e-6)


def test_a_products_repeat_rate_is_the_share_of_its_buyers_who_bought_it_in_two_orders() -> None:
    """Coffee and filter: A bought each in two orders or more (1 of 1 buyer); tea: A and B once
    each (0 of 2); the mug was only returned (no buyer). Smoothed: (repeaters + 1) / (buyers + 2)."""
    lines = ds.indexed_lines(_orders(HISTORY).lazy(), _space(["A", "B"]), _space(PRODUCTS))
    rates = ds.purchases(lines, 2).repeat_rate(len(PRODUCTS))
    assert rates.dtype == np.float32
    assert dict(zip(PRODUCTS, rates.tolist(), strict=True)) == pytest.approx(
        {"coffee": 2 / 3, "filter": 2 / 3, "mug": 1 / 2, "tea": 1 / 4}
    )
