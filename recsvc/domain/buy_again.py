"""What a customer's own orders say about buying a product again: the recency-weighted frequency.

A customer's orders are counted back from their latest (0, then 1, ...): an order is its lines
that are not cancelled, placed at the earliest of them (ties in time by the larger order id, the
later), and only orders with a line bought (neither cancelled nor returned) count. A product's
recency-weighted frequency is the sum, over the counted orders that bought it, of
`decay ** orders back`: 1.0 counts orders, 0.9 lets the latest order weigh 1, the one before 0.9.

One rule on both sides: training sums it over the order lines of a version
(`training.recommender.dataset.purchases`), and the service adds the customer's live orders to a
version's weights (`after_newer_orders`, then `live_purchases`' own) with the same
`order_weights`, so a customer's weights are what the next run will compute from the same orders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import msgspec
import numpy as np

from recsvc.domain.live import LiveOrderLine
from recsvc.domain.times import EPOCH


def order_weights(orders_back: np.ndarray, decay: float) -> np.ndarray:
    """The weight (float64) of a purchase in the order `orders_back` orders before the latest."""
    return np.power(float(decay), np.asarray(orders_back, dtype=np.float64))


def after_newer_orders(weights: np.ndarray, newer: int, decay: float) -> np.ndarray:
    """Recency-weighted frequencies after `newer` later orders: every order they sum is that many
    orders further back, so each weight is `decay ** newer` times smaller."""
    if newer == 0:
        return np.asarray(weights, dtype=np.float64)
    return np.asarray(weights, dtype=np.float64) * float(decay) ** newer


class LivePurchase(msgspec.Struct, frozen=True):
    """A product bought in a customer's live orders (the orders a version does not hold)."""

    lines: int  # order lines that bought it
    last_day: int  # day number (days since 1970-01-01) of the latest
    # The live orders that bought it, each counted back from the customer's latest live order
    # (0), ascending.
    orders_back: tuple[int, ...]

    def weight(self, decay: float) -> float:
        """Its recency-weighted frequency over the live orders."""
        return float(order_weights(np.asarray(self.orders_back), decay).sum())


def live_purchases(lines: Sequence[LiveOrderLine]) -> dict[str, LivePurchase]:
    """Each product the lines bought (current revisions of orders the version does not hold).

    The live orders are taken to follow every order of the version: a live order placed before
    the version's last one (sent late) counts as newer until the next run holds it.
    """
    # Each order's time: its earliest line that is not cancelled (as the batch and RFM count it).
    placed: dict[str, dt.datetime] = {}
    for line in lines:
        if line.status != "cancelled":
            at = placed.get(line.order_id)
            placed[line.order_id] = line.ordered_at if at is None else min(at, line.ordered_at)
    buying = {line.order_id for line in lines if line.bought}
    newest_first = sorted(buying, key=lambda order_id: (placed[order_id], order_id), reverse=True)
    back = {order_id: n for n, order_id in enumerate(newest_first)}
    bought: dict[str, tuple[int, int, set[int]]] = {}
    for line in lines:
        if line.bought:
            count, last, orders = bought.get(line.product_id, (0, -(2**31), set()))
            day = (line.ordered_at - EPOCH).days
            orders.add(back[line.order_id])
            bought[line.product_id] = (count + 1, max(last, day), orders)
    return {
        product: LivePurchase(count, last, tuple(sorted(orders)))
        for product, (count, last, orders) in bought.items()
    }


def live_orders(bought: Mapping[str, LivePurchase]) -> int:
    """How many live orders bought something: every one of them bought some product."""
    return max((p.orders_back[-1] + 1 for p in bought.values()), default=0)
