"""Interaction weights from order lines, checked by hand (see training.config.InteractionWeights)."""

import numpy as np
import polars as pl
import pytest

from training.config import InteractionWeights
from training.recommender.dataset import (
    interaction_matrix,
    purchases,
    reorder_days,
    with_price_band,
)

NO_DECAY = 1e9


def _lines(rows: list[tuple[int, int, int, bool]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["u", "i", "day", "returned"], orient="row").with_columns(
        pl.col("u", "i").cast(pl.Int32), pl.col("day").cast(pl.Int32)
    )


def _weights(rows: list[tuple[int, int, int, bool]], **kw: float) -> dict[tuple[int, int], float]:
    weights = InteractionWeights(**{"recency_half_life_days": NO_DECAY, **kw})
    m = interaction_matrix(_lines(rows), 3, 3, weights, as_of_day=100)
    return {
        (int(r), int(c)): round(float(v), 6) for r, c, v in zip(m.row, m.col, m.data, strict=True)
    }


def test_first_purchase_counts_one_and_each_repeat_a_half() -> None:
    assert _weights([(0, 1, 10, False), (0, 1, 20, False), (0, 1, 30, False)]) == {(0, 1): 2.0}


def test_a_returned_purchase_cancels_out_and_the_pair_is_dropped() -> None:
    """Bought once (+1), returned once (-1): nothing left to learn from, so no interaction."""
    assert _weights([(0, 1, 10, False), (0, 1, 12, True), (1, 2, 10, False)]) == {(1, 2): 1.0}


def test_a_return_does_not_make_the_next_purchase_the_first() -> None:
    """Returned then bought again: the kept purchase is the first (+1), minus the return (-1) = 0."""
    assert _weights([(0, 1, 10, True), (0, 1, 20, False), (0, 1, 30, False)]) == {
        (0, 1): pytest.approx(0.5)
    }


def test_recency_halves_the_weight_every_half_life() -> None:
    got = _weights([(0, 0, 100, False), (1, 0, 70, False)], recency_half_life_days=30.0)
    assert got == {(0, 0): pytest.approx(1.0), (1, 0): pytest.approx(0.5)}


def test_purchases_count_kept_lines_and_remember_the_last_day() -> None:
    p = purchases(
        _lines([(0, 2, 5, False), (0, 2, 9, False), (0, 1, 7, True), (2, 0, 3, False)]), 3
    )
    assert p.indptr.tolist() == [0, 1, 1, 2]
    assert p.items.tolist() == [2, 0]
    assert p.counts.tolist() == [2, 1]
    assert p.last_day.tolist() == [9, 3]
    # Lines without order numbers: each purchase day is an order (days 9 and 5: 1 + 0.9).
    assert p.weights(0.9).tolist() == pytest.approx([1.9, 1.0])


def test_reorder_interval_is_the_median_gap_between_one_customers_purchases() -> None:
    """Item 0: gaps 10 and 30 (customer 0), 20 (customer 1): median 20. Item 1: never reordered."""
    days = reorder_days(
        _lines(
            [
                (0, 0, 0, False),
                (0, 0, 10, False),
                (0, 0, 40, False),
                (1, 0, 5, False),
                (1, 0, 25, False),
                (2, 1, 1, False),
            ]
        ),
        2,
    )
    assert days[0] == 20.0
    assert np.isnan(days[1])


def test_price_bands_follow_the_edges_and_missing_prices_are_unknown() -> None:
    products = pl.DataFrame({"price": [1.0, 5.0, 10.0, None, 99.0]})
    bands = with_price_band(products, [5.0, 10.0, 20.0, 50.0])["price_band"].to_list()
    assert bands == ["budget", "low", "mid", "unknown", "premium"]
