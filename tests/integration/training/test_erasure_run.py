"""A privacy erasure reaches the next training run: the validator writes no row of an erased
customer (clean tables and quarantine alike), and a run after an erasure publishes a version
without them, counts what it left out, erases their leftover live records from the store, and
notes in the manifest when it read the suppression list. A customer who came back after their
erasure keeps what they did since."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.live import LiveOrderLine, LiveResponse
from recsvc.domain.privacy import Erasure, Suppression, customer_hash
from recsvc.domain.times import naive_utc, parse_iso
from recsvc.store.files import FileStore
from tests.integration.store.test_live_compaction import train as train_small
from training.run.pipeline import RunRecord, format_record
from training.run.records import format_runs
from training.sources.generate import generate
from training.validate.dataset import CLEAN_DIR, QUARANTINE_FILE, validate_dataset
from training.validate.suppression import EVENT_TIMES

ERASED_AT = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


def erasure(customer_id: str, erased_at: dt.datetime) -> Erasure:
    return Erasure(
        erasure_id=uuid.uuid4().hex,
        customer_hash=customer_hash(customer_id),
        erased_at=erased_at,
        requested_by="test",
        state="started",
    )


def holds(folder: Path, customer: str) -> list[str]:
    """The files under `folder` (a run's validator output) that name `customer`."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            named = c.CUSTOMER_ID in frame.columns and customer in frame[c.CUSTOMER_ID]
        else:
            named = path.is_file() and customer.encode() in path.read_bytes()
        if named:
            found.append(path.name)
    return found


# --- the validator --------------------------------------------------------------------------------


def tiny_shop() -> dict[str, list[dict[str, Any]]]:
    """C1 is erased and gone; C2 is erased and ordered again in April; C3 was never erased."""

    def order(line: str, customer: str, when: str) -> dict[str, Any]:
        return {
            "line_id": line,
            "order_id": f"O-{line}",
            "customer_id": customer,
            "product_id": "P1",
            "quantity": 1,
            "unit_price": 9.5,
            "ordered_at": when,
        }

    def answer(response: str, customer: str, when: str, score: Any = 7) -> dict[str, Any]:
        return {
            "response_id": response,
            "customer_id": customer,
            "score": score,
            "responded_at": when,
            "touchpoint": "post_delivery",
            "comment": f"private words of {customer}",
        }

    return {
        c.CUSTOMERS: [{"customer_id": f"C{i}", "country": "DE"} for i in (1, 2, 3)],
        c.PRODUCTS: [{"product_id": "P1", "category": "shoes"}],
        c.ORDERS: [
            order("L1", "C1", "2024-02-01T10:00:00Z"),
            order("L2", "C1", "2024-03-01T12:00:00Z"),  # the very moment of the erasure
            order("L3", "C2", "2024-02-01T10:00:00Z"),
            order("L4", "C2", "2024-04-01T10:00:00Z"),  # after: C2 came back
            order("L5", "C3", "2024-02-01T10:00:00Z"),
        ],
        c.NPS_RESPONSES: [
            answer("R1", "C1", "2024-01-05T08:00:00Z"),
            answer("R2", "C1", "2024-01-06T08:00:00Z", score=42),  # invalid: would be quarantined
            answer("R3", "C2", "2024-04-02T08:00:00Z"),
            answer("R4", "C3", "2024-01-05T08:00:00Z", score=11),  # invalid, not erased
        ],
    }


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ndjson"])
def test_the_validator_writes_no_row_of_an_erased_customer_not_even_to_the_quarantine(
    tmp_path: Path, fmt: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, rows in tiny_shop().items():
        frame, path = pl.DataFrame(rows), data / f"{name}.{fmt}"
        if fmt == "csv":
            frame.write_csv(path)
        elif fmt == "parquet":
            frame.write_parquet(path)
        else:
            frame.write_ndjson(path)
    suppression = Suppression({customer_hash("C1"): ERASED_AT, customer_hash("C2"): ERASED_AT})
    out = tmp_path / "out"
    result = validate_dataset(
        data, out, show_progress=False, suppression=suppression, max_rejected_share=1.0
    )

    clean = {name: pl.read_parquet(path) for name, path in result.clean_paths.items()}
    assert clean[c.CUSTOMERS][c.CUSTOMER_ID].to_list() == ["C2", "C3"]
    assert clean[c.ORDERS][c.LINE_ID].to_list() == ["L4", "L5"]
    assert clean[c.NPS_RESPONSES][c.RESPONSE_ID].to_list() == ["R3"]
    quarantined = pl.read_csv(out / QUARANTINE_FILE, infer_schema=False)
    assert quarantined["raw"].str.contains("R4").to_list() == [True]  # C3's bad answer only
    assert holds(out, "C1") == []
    suppressed = {t.table: t.suppressed for t in result.report.tables}
    assert suppressed == {
        c.CUSTOMERS: 1,
        c.PRODUCTS: 0,
        c.ORDERS: 3,
        c.NPS_RESPONSES: 2,
    }
    orders = next(t for t in result.report.tables if t.table == c.ORDERS)
    assert orders.rows_read == 5 and orders.valid == 2  # rows_read counts the suppressed rows

    nobody = validate_dataset(data, tmp_path / "again", show_progress=False, max_rejected_share=1.0)
    assert all(t.suppressed == 0 for t in nobody.report.tables)
    assert pl.read_parquet(nobody.clean_paths[c.ORDERS]).height == 5


# --- the run --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("erasure") / "data"
    generate(data, 600, seed=5, show_progress=False)
    return data


def rows_of(clean: Path, customer: str, up_to: dt.datetime | None = None) -> dict[str, int]:
    """The rows of `customer` in the clean tables of a run, by table (dated ones up to `up_to`)."""
    counts = {}
    for path in sorted(clean.glob("*.parquet")):
        table = path.stem
        frame = pl.read_parquet(path)
        if c.CUSTOMER_ID not in frame.columns:
            continue
        theirs = frame.filter(pl.col(c.CUSTOMER_ID) == customer)
        if up_to is not None and table in EVENT_TIMES:
            theirs = theirs.filter(pl.col(EVENT_TIMES[table]) <= naive_utc(up_to))
        if theirs.height:
            counts[table] = theirs.height
    return counts


def test_a_run_after_an_erasure_publishes_a_version_without_the_customer(
    shop: Path, tmp_path: Path
) -> None:
    """Train; erase one customer, and another as of a day in the middle of their history (they
    came back); leave old live records of both behind in the store (an erasure racing a
    compaction) and a new answer of the returning customer; train again on the same files."""
    url = f"file://{tmp_path / 'store'}"

    def train() -> RunRecord:
        record = train_small(shop, url, tmp_path / "runs")
        assert record.published and record.version, record
        return record

    first = train()
    assert first.suppressed == {}
    clean = tmp_path / "runs" / first.run_id / "validation" / CLEAN_DIR
    orders = pl.read_parquet(clean / "orders.parquet")
    by_orders = orders.group_by(c.CUSTOMER_ID).agg(
        pl.len(), pl.col(c.ORDERED_AT).min().alias("first"), pl.col(c.ORDERED_AT).max()
    )
    gone, back = by_orders.sort(["len", c.CUSTOMER_ID], descending=[True, False])[
        c.CUSTOMER_ID
    ].to_list()[:2]
    span = by_orders.filter(pl.col(c.CUSTOMER_ID) == back).row(0, named=True)
    back_erased_at = (span["first"] + (span[c.ORDERED_AT] - span["first"]) / 2).replace(
        tzinfo=dt.UTC
    )
    expected = {
        table: rows_of(clean, gone).get(table, 0)
        + rows_of(clean, back, back_erased_at).get(table, 0)
        for table in EVENT_TIMES
    }
    expected[c.CUSTOMERS] = 1  # the returning customer keeps their attributes

    store = FileStore(tmp_path / "store")
    now = dt.datetime.now(dt.UTC)
    store.erasures.append(erasure(gone, now))
    store.erasures.append(erasure(back, back_erased_at))
    store.answers.add(
        [
            LiveResponse(
                response_id=f"left-behind-{customer}",
                customer_id=customer,
                score=1,
                responded_at=when - dt.timedelta(hours=1),
                touchpoint="relationship",
                received_at=when - dt.timedelta(hours=1),
            )
            for customer, when in ((gone, now), (back, back_erased_at))
        ]
        + [
            LiveResponse(
                response_id="back-again",
                customer_id=back,
                score=9,
                responded_at=now,
                touchpoint="relationship",
                received_at=now,
            )
        ]
    )
    store.orders.add(
        [
            LiveOrderLine(
                line_id="left-behind-line",
                order_id="left-behind-order",
                customer_id=gone,
                product_id=str(orders[c.PRODUCT_ID][0]),
                quantity=1,
                unit_price=1.0,
                ordered_at=now - dt.timedelta(hours=1),
                received_at=now - dt.timedelta(hours=1),
            )
        ]
    )
    expected[c.NPS_RESPONSES] += 2  # the two answers left behind
    expected[c.ORDERS] += 1  # and the order line

    second = train()
    assert second.suppressed == {table: n for table, n in expected.items() if n}
    assert "rows of erased customers left out: customers 1, " in format_record(second)
    assert "rows of erased customers left out: customers 1, " in format_runs([second])
    assert second.live is not None
    # The new answer is merged; both old ones left the store.
    assert (second.live.merged, second.live.swept) == (1, 2)
    assert second.live_orders is not None
    assert (second.live_orders.merged, second.live_orders.swept) == (0, 1)
    assert [*store.orders.iter_live(), *store.orders.iter_archived()] == []
    # The leftovers up to each erasure left the store; the returning customer's new answer stays.
    stored = [*store.answers.iter_live(), *store.answers.iter_archived()]
    assert {r.response_id for r in stored} == {"back-again"}

    version = store.open(second.version or "")
    assert version.profiles.index_of(gone) is None
    assert version.profiles.index_of(back) is not None
    assert store.open(first.version or "").profiles.index_of(gone) is not None
    assert "erasures_as_of" in store.manifest(first.version or "").notes
    as_of = store.manifest(second.version or "").notes["erasures_as_of"]
    assert as_of.endswith("Z") and len(as_of) == len("2026-01-01T00:00:00.000000Z")
    assert now < parse_iso(as_of) <= dt.datetime.now(dt.UTC)
    assert holds(tmp_path / "runs" / second.run_id / "validation", gone) == []
    assert holds(tmp_path / "runs" / first.run_id / "validation", gone) != []  # the check checks
