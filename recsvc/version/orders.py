"""A version's order history (written by `training.publish.orders`, mapped by the service): what
the service needs to apply a live order line to a customer without the training job's tables.

Files in the version directory:

- `orders.json`: `OrderHistoryFile`, the counts, the run's `as_of` and the `PurchaseModel` (RFM
  quintile edges, churn parameters; `recsvc.domain.rfm`).
- `orders_indptr.npy` (int64, customers + 1) and `orders_time.npy` (int64, microseconds since
  1970 UTC): customer i's counted orders (placed by `as_of`, at least one line not cancelled),
  ascending, are `time[indptr[i]:indptr[i+1]]`: a live order's new typical gap needs them.
- `orders_key.npy` (uint64, sorted): `stable_key(order_id)` of every order in the run's orders
  table, whatever its status. A live line of an order the version holds is the version's already
  (or the shop's file won over it): the service applies only lines of orders it does not hold.
- `order_lines_key.npy` (uint64, sorted): `stable_key` of every live line revision the run took
  in (merged, or dropped because the shop's files hold its order): what compaction moves and what
  makes a resent revision a duplicate once it left live.

A version written before these files has none: the service still excludes live purchases from
recommendations but leaves the customer's RFM and churn as stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import numpy as np

from recsvc.domain.rfm import PurchaseModel
from recsvc.errors import ArtifactError
from recsvc.version.artifacts import holds_keys, id_keys, load_array, reason, where

ORDERS_JSON: Final = "orders.json"
ORDER_INDPTR: Final = "orders_indptr.npy"
ORDER_TIMES: Final = "orders_time.npy"
ORDER_KEYS: Final = "orders_key.npy"
LINE_KEYS: Final = "order_lines_key.npy"
ORDER_FILES: Final = (ORDERS_JSON, ORDER_INDPTR, ORDER_TIMES, ORDER_KEYS, LINE_KEYS)
ORDER_HISTORY_FORMAT: Final = 1


class OrderHistoryFile(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = ORDER_HISTORY_FORMAT
    customers: int
    orders: int  # counted orders in orders_time.npy
    held_orders: int  # keys in orders_key.npy
    held_lines: int  # keys in order_lines_key.npy
    as_of: dt.datetime
    purchases: PurchaseModel


@dataclass(frozen=True, slots=True)
class OrderHistory:
    """A version's order history, memory-mapped (see the module docstring)."""

    indptr: np.ndarray
    times: np.ndarray
    order_keys: np.ndarray
    line_keys: np.ndarray
    as_of: dt.datetime
    purchases: PurchaseModel

    @classmethod
    def open(cls, directory: Path, n_customers: int) -> OrderHistory | None:
        """The version's history; None when the version has none (written before it existed)."""
        path = directory / ORDERS_JSON
        if not path.exists():
            return None
        try:
            info = msgspec.json.decode(path.read_bytes(), type=OrderHistoryFile)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ArtifactError(f"{where(path)}: unreadable: {reason(exc)}") from None
        if info.format_version != ORDER_HISTORY_FORMAT:
            raise ArtifactError(f"{where(path)}: format {info.format_version} is not supported")
        history = cls(
            indptr=load_array(directory / ORDER_INDPTR, "int64"),
            times=load_array(directory / ORDER_TIMES, "int64"),
            order_keys=load_array(directory / ORDER_KEYS, "uint64"),
            line_keys=load_array(directory / LINE_KEYS, "uint64"),
            as_of=info.as_of,
            purchases=info.purchases,
        )
        sizes = (
            history.indptr.size,
            history.times.size,
            history.order_keys.size,
            history.line_keys.size,
        )
        expected = (n_customers + 1, info.orders, info.held_orders, info.held_lines)
        if sizes != expected or info.customers != n_customers or history.indptr[-1] != info.orders:
            raise ArtifactError(
                f"version {directory.name}: order history arrays {sizes} disagree with "
                f"{ORDERS_JSON} and the artifact's {n_customers} customers {expected}"
            )
        return history

    def order_times(self, customer: int) -> list[int]:
        """The customer's counted orders' times (microseconds since 1970 UTC), ascending."""
        start, end = int(self.indptr[customer]), int(self.indptr[customer + 1])
        return [int(t) for t in self.times[start:end].tolist()]

    def holds_orders(self, order_ids: list[str]) -> list[bool]:
        # A customer's lines share few orders: each order id is hashed and searched once.
        distinct = list(dict.fromkeys(order_ids))
        held = dict(
            zip(distinct, holds_keys(self.order_keys, id_keys(distinct)).tolist(), strict=True)
        )
        return [held[o] for o in order_ids]

    def holds_lines(self, revision_keys: list[str]) -> list[bool]:
        return [bool(x) for x in holds_keys(self.line_keys, id_keys(revision_keys))]
