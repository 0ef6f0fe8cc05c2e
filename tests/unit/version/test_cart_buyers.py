"""Which buyers a cart reads to find its neighbours (`recsvc.version.carts.cart_buyers`): all of
them while they fit the budget, otherwise the same customers for every product of the cart, so
that a customer's overlap with the cart is counted whole, and about the budget of them."""

from __future__ import annotations

import numpy as np

from recsvc.version.carts import cart_buyers
from recsvc.version.neighbours import item_buyers
from recsvc.version.scoring import Purchases


def shop(seed: int, customers: int = 5_000, items: int = 40) -> Purchases:
    """Random purchase histories: customer i buys each item with its own popularity."""
    rng = np.random.default_rng(seed)
    popularity = rng.uniform(0.01, 0.4, size=items)
    bought = rng.random((customers, items)) < popularity
    rows, cols = np.nonzero(bought)
    indptr = np.zeros(customers + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=customers), out=indptr[1:])
    return Purchases(
        indptr=indptr,
        items=cols.astype(np.int32),
        counts=np.ones(cols.size, dtype=np.int32),
        last_day=np.zeros(cols.size, dtype=np.int32),
    )


def test_a_cart_within_the_budget_reads_every_buyer_of_each_product() -> None:
    purchases = shop(1)
    buyers = item_buyers(purchases, 40)
    cart = np.array([2, 7, 30], dtype=np.int32)
    indptr, rows = buyers
    expected = np.concatenate([rows[indptr[i] : indptr[i + 1]] for i in cart])
    read = cart_buyers(buyers, cart, budget=expected.size)
    np.testing.assert_array_equal(read, expected)
    assert read.dtype == np.int32


def test_past_the_budget_every_product_reads_the_same_customers_and_about_the_budget() -> None:
    for seed in (2, 3, 4):
        purchases = shop(seed)
        buyers = item_buyers(purchases, 40)
        indptr, rows = buyers
        cart = np.arange(0, 40, 3, dtype=np.int32)
        total = int(sum(indptr[i + 1] - indptr[i] for i in cart))
        budget = total // 4
        read = cart_buyers(buyers, cart, budget=budget)
        assert 0.8 * budget <= read.size <= 1.2 * budget, (read.size, budget)
        # One bound for all products: a product reads exactly its buyers below it.
        bound = int(read.max()) + 1
        expected = np.concatenate(
            [rows[indptr[i] : indptr[i + 1]][rows[indptr[i] : indptr[i + 1]] < bound] for i in cart]
        )
        np.testing.assert_array_equal(read, expected)
        # So each customer read is counted with every cart product they bought.
        customers, overlap = np.unique(read, return_counts=True)
        truth = np.array(
            [np.isin(purchases.items[purchases.row(int(u))], cart).sum() for u in customers]
        )
        np.testing.assert_array_equal(overlap, truth)
