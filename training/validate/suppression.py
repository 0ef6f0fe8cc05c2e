"""The suppression list (`recsvc.domain.privacy`) applied to a shop's tables: which rows of erased
customers the validator drops before it writes anything (clean tables, quarantine), so no run
directory holds them, whatever the shop's exports still contain.

A table of a customer's events is dated by its `EVENT_TIMES` column, and the domain's rule decides
(`Suppression.suppresses`): an erased customer's row dated at or before their latest erasure goes,
one dated after it (a returning customer's new relationship) stays; a row whose time cannot be read
is undated and goes. The customers table holds undated attributes: an erased customer's row goes
unless they have a kept row in a dated table, so that a returning customer's new rows are not
quarantined as an unknown customer's.

Ids are hashed (`customer_hash`) once per distinct id the tables name, and only while the list
holds anyone; then only the erased customers' own rows are matched and checked, in polars (the
validator skips them by row number: `training.validate.dataset`). An empty list costs nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.privacy import Suppression
from recsvc.domain.times import naive_utc

# The time that dates a row of each table of a customer's events (a live record of the same table
# is dated by its field of the same name). Every other table naming a customer holds attributes.
EVENT_TIMES: dict[str, str] = {
    c.ORDERS: c.ORDERED_AT,
    c.NPS_RESPONSES: c.RESPONDED_AT,
    c.CSAT_RESPONSES: c.RESPONDED_AT,
    c.CES_RESPONSES: c.RESPONDED_AT,
}

_NO_IDS = pl.Series(c.CUSTOMER_ID, [], pl.String)


@dataclass(frozen=True, slots=True)
class ErasedCustomers:
    """The erased customers a shop's tables name, each with their latest erasure (naive UTC, as
    the tables' times are), and those of them who came back (a kept row dated after it)."""

    ids: pl.Series = field(default_factory=lambda: _NO_IDS)
    erased_at: pl.Series = field(default_factory=lambda: pl.Series([], dtype=pl.Datetime("us")))
    returning: pl.Series = field(default_factory=lambda: _NO_IDS)

    @classmethod
    def among(cls, named: Iterable[str], suppression: Suppression) -> ErasedCustomers:
        """The erased customers among `named` (distinct ids); `named` is not even read while the
        list is empty."""
        if not suppression:
            return cls()
        found: dict[str, dt.datetime] = {}
        for customer_id in named:
            at = suppression.erased_at(customer_id)
            if at is not None:
                found[customer_id] = naive_utc(at)
        return cls(
            pl.Series(c.CUSTOMER_ID, list(found), pl.String),
            pl.Series("erased_at", list(found.values()), pl.Datetime("us")),
        )

    def __bool__(self) -> bool:
        return bool(self.ids.len())

    def erasure_of(self, customer_id: pl.Expr) -> pl.Expr:
        """Each row's customer's latest erasure; null for a customer never erased."""
        return customer_id.replace_strict(
            self.ids, self.erased_at, default=None, return_dtype=pl.Datetime("us")
        )

    def came_back(self, rows: pl.LazyFrame, time_column: str) -> pl.LazyFrame:
        """The erased customers (`customer_id`, distinct) with a row in `rows`, a dated table's
        kept rows, after their erasure."""
        return (
            rows.filter(pl.col(c.CUSTOMER_ID).is_in(self.ids.implode()))
            .filter(pl.col(time_column) > self.erasure_of(pl.col(c.CUSTOMER_ID)))
            .select(pl.col(c.CUSTOMER_ID).unique())
        )

    def with_returning(self, returning: pl.Series) -> ErasedCustomers:
        return ErasedCustomers(self.ids, self.erased_at, returning.unique())

    def drops(self, table: str) -> pl.Expr | None:
        """The rows of `table` (its columns read as the contract's, null where unreadable) that
        are suppressed; None when none can be (nobody erased, or the table names no customer)."""
        if not self:
            return None
        customer = pl.col(c.CUSTOMER_ID)
        if table == c.CUSTOMERS:
            erased = customer.is_in(self.ids.implode()) & ~customer.is_in(self.returning.implode())
            return erased.fill_null(False)
        time_column = EVENT_TIMES.get(table)
        if time_column is None:
            return None
        erased_at, when = self.erasure_of(customer), pl.col(time_column)
        return erased_at.is_not_null() & (when.is_null() | (when <= erased_at))
