"""A version's order history (format: `recsvc.version.orders`): each customer's order times, the
orders and live line revisions the version holds, and the RFM edges and churn parameters the
service rescores a customer with when a live order arrives.

Written into the artifact directory before the manifest, so the manifest lists and hashes them.
Vectorised except for the keys (one hash per order id: about a second per million).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.rfm import ChurnModel, PurchaseModel, QuintileEdges, ranks_needed
from recsvc.domain.times import utc
from recsvc.version.artifacts import sorted_id_keys
from recsvc.version.orders import (
    LINE_KEYS,
    ORDER_INDPTR,
    ORDER_KEYS,
    ORDER_TIMES,
    ORDERS_JSON,
    OrderHistoryFile,
)
from training.customers.features import CUSTOMER_ROW, SegmentationConfig
from training.customers.segmentation import CustomerSegments

_INDEX = "_index"


def _edges(values: pl.Series) -> QuintileEdges:
    """The quintile edges of one measure (`recsvc.domain.rfm`): a few order statistics."""
    ordered = values.drop_nulls().sort()
    n = ordered.len()
    if n == 0:
        return QuintileEdges(n=0, at=[None] * 4, after=[None] * 4, joined=[None] * 4)
    needed = ranks_needed(n)

    def at(position: int | None) -> float | None:
        return None if position is None else float(ordered[position])

    return QuintileEdges(
        n=n,
        at=[at(a) for a, _, _ in needed],
        after=[at(b) for _, b, _ in needed],
        joined=[at(j) for _, _, j in needed],
    )


def purchase_model(customer_table: pl.DataFrame, config: SegmentationConfig) -> PurchaseModel:
    """The edges of R, F and M over the customers with orders, and the churn parameters."""
    buyers = customer_table.filter(pl.col(ct.ORDER_COUNT) > 0)
    prior = buyers.select(pl.col(ct.TYPICAL_GAP_DAYS).median()).item()
    return PurchaseModel(
        recency=_edges(buyers[ct.LAST_ORDER_AT].dt.cast_time_unit("us").cast(pl.Int64)),
        frequency=_edges(buyers[ct.ORDER_COUNT].cast(pl.Float64)),
        monetary=_edges(buyers[ct.MONETARY_VALUE].cast(pl.Float64)),
        churn=ChurnModel(
            lost_after_days=config.lost_after_days,
            gap_floor_days=config.churn_gap_floor_days,
            midpoint=config.churn_midpoint,
            steepness=config.churn_steepness,
            prior_gap_days=float(prior) if prior is not None else config.default_gap_days,
        ),
    )


@dataclass(frozen=True, slots=True)
class OrderHistoryData:
    """A version's order history, computed, to be written with the version."""

    arrays: dict[str, np.ndarray]  # file name -> array
    info: OrderHistoryFile

    @property
    def rows(self) -> int:
        return self.info.orders


def order_history(
    segments: CustomerSegments,
    customers: pl.LazyFrame,
    orders: pl.LazyFrame,
    customer_ids: np.ndarray,
    held_lines: Iterable[str],
) -> OrderHistoryData:
    """The order history of the artifact's customers (`customer_ids`, its order): the counted
    orders of `segments.facts` (customer rows of the run's `customers` table), the order ids of
    the run's `orders`, the keys of the live line revisions the run took in (`held_lines`)."""
    index = pl.DataFrame({c.CUSTOMER_ID: pl.Series(customer_ids, dtype=pl.String)}).with_row_index(
        _INDEX
    )
    rows = customers.select(c.CUSTOMER_ID).with_row_index(CUSTOMER_ROW).collect()
    times = (
        segments.facts.select(c.CUSTOMER_ID, c.ORDERED_AT)
        .join(rows, left_on=c.CUSTOMER_ID, right_on=CUSTOMER_ROW)
        .join(index, left_on=f"{c.CUSTOMER_ID}_right", right_on=c.CUSTOMER_ID)
        .select(
            pl.col(_INDEX).cast(pl.Int64),
            pl.col(c.ORDERED_AT).dt.cast_time_unit("us").cast(pl.Int64).alias("t"),
        )
        .sort(_INDEX, "t")
    )
    counts = np.bincount(times[_INDEX].to_numpy(), minlength=customer_ids.size)
    indptr = np.zeros(customer_ids.size + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    order_keys = sorted_id_keys(orders.select(c.ORDER_ID).unique().collect()[c.ORDER_ID].to_list())
    line_keys = sorted_id_keys(held_lines)
    info = OrderHistoryFile(
        customers=int(customer_ids.size),
        orders=int(indptr[-1]),
        held_orders=int(order_keys.size),
        held_lines=int(line_keys.size),
        as_of=utc(segments.as_of),
        purchases=purchase_model(segments.table, segments.config),
    )
    arrays = {
        ORDER_INDPTR: indptr,
        ORDER_TIMES: times["t"].to_numpy().astype(np.int64),
        ORDER_KEYS: order_keys,
        LINE_KEYS: line_keys,
    }
    return OrderHistoryData(arrays, info)


def write_order_history(directory: Path, history: OrderHistoryData) -> None:
    """Write the history's files into the artifact `directory`."""
    for name, array in history.arrays.items():
        np.save(directory / name, np.ascontiguousarray(array), allow_pickle=False)
    (directory / ORDERS_JSON).write_bytes(msgspec.json.encode(history.info))
