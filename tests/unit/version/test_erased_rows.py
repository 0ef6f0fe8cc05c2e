"""Which of a version's customers a worker hides: those erased after the version's data was
suppressed, matched by hash, cached per suppression list."""

from __future__ import annotations

import datetime as dt

import numpy as np

from recsvc.domain.privacy import Suppression, customer_hash
from recsvc.version.erased import ErasedRows, erasures_as_of, without

T = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
IDS = np.array(sorted(f"C{i:05d}" for i in range(2000)))


def erased(*pairs: tuple[str, dt.datetime]) -> Suppression:
    return Suppression({customer_hash(cid): at for cid, at in pairs})


def test_rows_of_customers_erased_after_the_version() -> None:
    rows = ErasedRows(IDS, as_of=T)
    suppression = erased(
        ("C00042", T + dt.timedelta(hours=1)),  # after the version's data: hidden
        ("C01999", T + dt.timedelta(days=1)),
        ("C00007", T - dt.timedelta(hours=1)),  # before: the version was built without them
        ("C00008", T - dt.timedelta(minutes=1)),  # within the clock margin: masked to be safe
        ("nobody", T + dt.timedelta(hours=1)),  # not in the version
    )
    assert rows.rows(suppression).tolist() == [8, 42, 1999]
    assert rows.rows(suppression) is rows.rows(suppression)  # cached for the same list


def test_a_version_from_before_erasures_hides_every_erased_customer() -> None:
    rows = ErasedRows(IDS, as_of=None)
    assert rows.rows(erased(("C00007", T - dt.timedelta(days=400)))).tolist() == [7]
    assert rows.rows(Suppression()).size == 0


def test_notes_and_without() -> None:
    assert erasures_as_of({}) is None
    assert erasures_as_of({"erasures_as_of": "2026-03-01T00:00:00.000000Z"}) == T
    assert without(np.array([5, 7, 9]), np.array([7])).tolist() == [5, 9]
    assert without(np.array([5, 7]), np.zeros(0, dtype=np.int64)).tolist() == [5, 7]
