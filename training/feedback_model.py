"""The simulated-feedback model: NPS, CSAT and CES responses (with comments) drawn from purchase history.

Shared by the demo generator and the Online Retail importer, so the same documented model produces
feedback for simulated and for real purchases. (Interface stub: implementation in progress.)
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True, slots=True)
class FeedbackTables:
    nps_responses: pl.DataFrame
    csat_responses: pl.DataFrame
    ces_responses: pl.DataFrame


def simulate_feedback(
    orders: pl.DataFrame,
    customers: pl.DataFrame,
    *,
    seed: int,
    id_prefix: str = "",
) -> FeedbackTables:
    """Draw survey responses for the given order lines and customers (contract columns).

    `orders` holds contract order columns (order_id, customer_id, product_id, quantity, unit_price,
    ordered_at, promised_delivery_at, delivered_at, status); `customers` holds at least customer_id and
    may hold a float column `satisfaction` (a customer's latent mood, about N(0, 1)); when absent it is
    drawn from the seed. `id_prefix` keeps response ids unique across chunks. Deterministic for a seed.
    """
    raise NotImplementedError
