"""An erased customer's rows leave the training run: the suppression step on five-row frames (old
rows go, rows after the erasure stay, a returning customer keeps their attribute row), and the
same rule on live records, whose leftovers are erased from the store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLES
from recsvc.domain.live import LiveOrderLine, LiveResponse
from recsvc.domain.privacy import Suppression, customer_hash
from training.run.live import LiveRead, suppress_live, sweep_erased
from training.validate.suppression import EVENT_TIMES, ErasedCustomers

ERASED_AT = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
BEFORE, AFTER = dt.datetime(2024, 2, 1), dt.datetime(2024, 4, 1)  # naive UTC, as in the frames

# C1 was erased and never came back; C2 was erased and ordered again afterwards; C3 never erased.
SUPPRESSION = Suppression({customer_hash("C1"): ERASED_AT, customer_hash("C2"): ERASED_AT})

CUSTOMERS = pl.LazyFrame({c.CUSTOMER_ID: ["C1", "C2", "C3"], c.COUNTRY: ["DE", "FR", "IT"]})
ORDERS = pl.LazyFrame(
    {
        c.LINE_ID: ["L1", "L2", "L3", "L4", "L5", "L6"],
        c.CUSTOMER_ID: ["C1", "C1", "C1", "C2", "C2", "C3"],
        # L2 is dated at the very moment of the erasure (suppressed: "at or before"); L3's time was
        # unreadable (null: undated, suppressed).
        c.ORDERED_AT: [BEFORE, ERASED_AT.replace(tzinfo=None), None, BEFORE, AFTER, BEFORE],
    },
    schema_overrides={c.ORDERED_AT: pl.Datetime("us")},
)
NPS_RESPONSES = pl.LazyFrame(
    {
        c.RESPONSE_ID: ["R1", "R2", "R3"],
        c.CUSTOMER_ID: ["C1", "C2", "C3"],
        c.RESPONDED_AT: [AFTER - dt.timedelta(days=60), AFTER, BEFORE],
    },
    schema_overrides={c.RESPONDED_AT: pl.Datetime("us")},
)
TABLES_HERE = {c.CUSTOMERS: CUSTOMERS, c.ORDERS: ORDERS, c.NPS_RESPONSES: NPS_RESPONSES}


def erased_customers(suppression: Suppression) -> ErasedCustomers:
    """What the validator does: hash the distinct ids the tables name, then find who came back."""
    named = pl.concat([t.select(c.CUSTOMER_ID) for t in TABLES_HERE.values()]).unique().collect()
    erased = ErasedCustomers.among(named[c.CUSTOMER_ID].to_list(), suppression)
    if not erased:
        return erased
    returning = pl.concat(
        erased.came_back(TABLES_HERE[table], EVENT_TIMES[table]).collect().to_series()
        for table in (c.ORDERS, c.NPS_RESPONSES)
    )
    return erased.with_returning(returning)


def split(erased: ErasedCustomers, table: str) -> tuple[pl.DataFrame, int]:
    """The table's kept rows and how many were suppressed."""
    frame = TABLES_HERE[table].collect()
    drops = erased.drops(table)
    if drops is None:
        return frame, 0
    kept = frame.filter(~drops)
    return kept, frame.height - kept.height


def test_an_erased_customers_rows_up_to_the_erasure_go_and_later_ones_stay() -> None:
    erased = erased_customers(SUPPRESSION)
    assert sorted(erased.ids.to_list()) == ["C1", "C2"]
    assert erased.returning.to_list() == ["C2"]  # an order after the erasure

    orders, orders_suppressed = split(erased, c.ORDERS)
    assert orders[c.LINE_ID].to_list() == ["L5", "L6"]
    assert orders_suppressed == 4

    answers, answers_suppressed = split(erased, c.NPS_RESPONSES)
    assert answers[c.RESPONSE_ID].to_list() == ["R2", "R3"]
    assert answers_suppressed == 1


def test_a_returning_customer_keeps_their_attribute_row_and_the_others_lose_it() -> None:
    customers, suppressed = split(erased_customers(SUPPRESSION), c.CUSTOMERS)
    assert customers[c.CUSTOMER_ID].to_list() == ["C2", "C3"]
    assert suppressed == 1


def test_the_latest_erasure_counts_and_a_customer_who_only_came_back_before_it_stays_erased() -> (
    None
):
    later = ERASED_AT.replace(month=6)  # C2 erased again after their April order
    erased = erased_customers(Suppression({customer_hash("C2"): later}))
    assert erased.returning.len() == 0
    customers, _ = split(erased, c.CUSTOMERS)
    orders, orders_suppressed = split(erased, c.ORDERS)
    assert customers[c.CUSTOMER_ID].to_list() == ["C1", "C3"]
    assert (orders_suppressed, orders.filter(pl.col(c.CUSTOMER_ID) == "C2").height) == (2, 0)


def test_an_empty_list_costs_nothing_not_even_reading_the_ids() -> None:
    def ids_never_read() -> Iterator[str]:
        raise AssertionError("the ids were read although nobody is erased")
        yield ""

    erased = ErasedCustomers.among(ids_never_read(), Suppression())
    assert not erased
    assert all(erased.drops(table) is None for table in TABLES)


def test_a_list_naming_nobody_in_the_shop_drops_nothing() -> None:
    erased = erased_customers(Suppression({customer_hash("someone else"): ERASED_AT}))
    assert not erased
    assert all(erased.drops(table) is None for table in TABLES)


def test_every_table_naming_a_customer_is_dated_or_holds_their_attributes() -> None:
    """A table added to the contract with a customer_id must say how its rows are dated."""
    naming = {name for name, table in TABLES.items() if c.CUSTOMER_ID in table.by_name}
    assert naming == {c.CUSTOMERS, *EVENT_TIMES}
    for table, column in EVENT_TIMES.items():
        assert column in TABLES[table].by_name and TABLES[table].by_name[column].required


# --- live records ---------------------------------------------------------------------------------


def answer(response_id: str, customer_id: str, responded_at: dt.datetime) -> LiveResponse:
    return LiveResponse(
        response_id=response_id,
        customer_id=customer_id,
        score=3,
        responded_at=responded_at,
        touchpoint="post_delivery",
        received_at=responded_at,
    )


OLD_C1 = answer("a1", "C1", ERASED_AT - dt.timedelta(days=1))  # archived, left behind
OLD_C2 = answer("a2", "C2", ERASED_AT)
NEW_C2 = answer("a3", "C2", ERASED_AT + dt.timedelta(seconds=1))  # C2 came back
OTHER = answer("a4", "C3", ERASED_AT - dt.timedelta(days=1))
READ = LiveRead(records=[OLD_C1, OTHER, OLD_C2, NEW_C2], live=[OLD_C2, NEW_C2], archived=2)


def test_live_records_up_to_the_erasure_are_left_out_and_the_archive_count_follows() -> None:
    kept, suppressed = suppress_live(READ, SUPPRESSION)
    assert suppressed == [OLD_C1, OLD_C2]
    assert kept.records == [OTHER, NEW_C2]
    assert (kept.archived, kept.live) == (1, [NEW_C2])
    assert suppress_live(READ, Suppression()) == (READ, [])


class FakeLog:
    def __init__(self, fail: bool = False) -> None:
        self.erased: list[tuple[str, dt.datetime | None]] = []
        self.fail = fail

    def erase(self, customer_id: str, until: dt.datetime | None = None) -> int:
        if self.fail:
            raise OSError("the disk went away")
        self.erased.append((customer_id, until))
        return 1


def test_leftovers_up_to_each_erasure_are_erased_from_the_store() -> None:
    _, suppressed = suppress_live(READ, SUPPRESSION)
    store_log = FakeLog()
    sweep = sweep_erased(store_log, suppressed, SUPPRESSION)  # type: ignore[arg-type]
    # Each customer up to their own erasure: a returning customer's later records stay.
    assert store_log.erased == [
        ("C1", SUPPRESSION.erased_at("C1")),
        ("C2", SUPPRESSION.erased_at("C2")),
    ]
    assert (sweep.erased, sweep.error) == (2, None)


def test_a_failed_sweep_is_noted_not_raised() -> None:
    _, suppressed = suppress_live(READ, SUPPRESSION)
    sweep = sweep_erased(FakeLog(fail=True), suppressed, SUPPRESSION)  # type: ignore[arg-type]
    assert sweep.error is not None and "the disk went away" in sweep.error


@pytest.mark.parametrize(
    ("table", "record_type"), [(c.ORDERS, LiveOrderLine), (c.NPS_RESPONSES, LiveResponse)]
)
def test_live_records_are_dated_by_the_field_named_like_the_tables_event_time(
    table: str, record_type: type[LiveOrderLine] | type[LiveResponse]
) -> None:
    assert EVENT_TIMES[table] in record_type.__struct_fields__
