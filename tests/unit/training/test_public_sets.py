"""The public data sets' converters on tiny committed files in each source's own format (RecBole's
MovieLens 100K atomic files, The Complete Journey's Parquet, the Instacart sample's CSV): ratings
and lines as order lines, what is set aside, order times, and output the validator accepts.
`bench/public_data.py` downloads the real files; these tests need no network."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLES
from training.sources import public_sets as ps
from training.validate.dataset import validate_dataset
from training.validate.fields import DTYPES

FIXTURES = Path(__file__).parents[2] / "fixtures" / "public"
ML, CJ, INSTACART = FIXTURES / "ml-100k", FIXTURES / "complete_journey", FIXTURES / "instacart"


def _lines(shop: ps.Shop) -> list[tuple[str, str, str, dt.datetime]]:
    orders = shop.tables[c.ORDERS]
    return sorted(orders.select(c.CUSTOMER_ID, c.ORDER_ID, c.PRODUCT_ID, c.ORDERED_AT).iter_rows())


def _column(shop: ps.Shop, table: str, key: str, column: str) -> dict[str, object]:
    return dict(shop.tables[table].select(key, column).iter_rows())


@pytest.mark.parametrize(
    "shop",
    [
        ps.movielens_100k(ML),
        ps.movielens_100k(ML, min_rating=4),
        ps.complete_journey(CJ),
        ps.complete_journey(CJ, min_buyers=2),
        ps.instacart_sample(INSTACART),
    ],
    ids=["movielens", "movielens-min4", "journey", "journey-min2", "instacart"],
)
def test_tables_are_the_contracts_and_pass_the_validator(shop: ps.Shop, tmp_path: Path) -> None:
    for name, frame in shop.tables.items():
        assert frame.schema == {f.name: DTYPES[f.kind] for f in TABLES[name].fields}, name
    assert shop.tables[c.NPS_RESPONSES].is_empty()
    ps.write_shop(shop, tmp_path / "data", "# Test set\n")
    provenance = (tmp_path / "data" / "PROVENANCE.md").read_text(encoding="utf-8")
    assert provenance.startswith("# Test set") and "nps_responses: empty" in provenance
    report = validate_dataset(
        tmp_path / "data", tmp_path / "validation", show_progress=False
    ).report
    assert report.ok, report.failure
    assert {t.table: t.rejected for t in report.tables} == dict.fromkeys(
        (c.CUSTOMERS, c.PRODUCTS, c.ORDERS, c.NPS_RESPONSES), 0
    )
    assert sum(t.duplicates_collapsed for t in report.tables) == 0


def test_movielens_every_rating_is_a_purchase_and_a_day_is_an_order() -> None:
    shop = ps.movielens_100k(ML)
    day1 = dt.datetime(1997, 9, 22, 21, 57, 58)  # 874965478 s after the epoch, UTC
    assert _lines(shop) == [
        ("1", "1-19970922", "10", day1),
        ("1", "1-19970922", "20", day1),  # rated at 22:02:38, the order's time is the first rating
        ("1", "1-19971015", "30", dt.datetime(1997, 10, 15, 5, 26, 11)),
        ("2", "2-19971204", "10", dt.datetime(1997, 12, 4, 15, 55, 49)),
        ("2", "2-19971204", "40", dt.datetime(1997, 12, 4, 15, 55, 49)),
        ("2", "2-19980220", "20", dt.datetime(1998, 2, 20, 18, 40)),
        ("3", "3-19980404", "30", dt.datetime(1998, 4, 4, 19, 22, 22)),
    ]
    orders = shop.tables[c.ORDERS]
    assert orders.get_column(c.QUANTITY).unique().to_list() == [1]
    assert orders.get_column(c.UNIT_PRICE).unique().to_list() == [ps.NOMINAL_PRICE]
    assert shop.lines_read == 7 and shop.set_aside == {}
    # Users with a rating only (user 4 rated nothing); ages into the demo's bands.
    assert _column(shop, c.CUSTOMERS, c.CUSTOMER_ID, c.AGE_BAND) == {
        "1": "18-24",
        "2": "45-54",
        "3": "under 18",
    }
    assert _column(shop, c.CUSTOMERS, c.CUSTOMER_ID, c.SIGNUP_DATE)["2"] == dt.date(1997, 12, 4)
    # Every movie, rated or not; the first genre listed; no year where the source has none.
    assert _column(shop, c.PRODUCTS, c.PRODUCT_ID, c.CATEGORY) == {
        "10": "Animation",
        "20": "Action",
        "30": "unknown",
        "40": "Crime",
        "50": "Thriller",
    }
    names = _column(shop, c.PRODUCTS, c.PRODUCT_ID, c.NAME)
    assert names["40"] == "Seven (Se7en) (1995)" and names["30"] == "unkonwn"
    assert shop.tables[c.PRODUCTS].get_column(c.PRICE).is_null().all()


def test_movielens_min_rating_leaves_lower_ratings_out() -> None:
    shop = ps.movielens_100k(ML, min_rating=4)
    assert [(u, p) for u, _, p, _ in _lines(shop)] == [
        ("1", "10"),
        ("2", "10"),
        ("2", "20"),
        ("3", "30"),
    ]
    assert shop.set_aside == {ps.BELOW_MIN_RATING: 3}
    assert shop.counts()["set_aside: below min rating"] == 3


def test_complete_journey_lines_set_aside_and_prices() -> None:
    shop = ps.complete_journey(CJ)
    assert shop.lines_read == 10
    # Quantity 0; a product missing from the product table; fuel and a coupon.
    assert shop.set_aside == {ps.INVALID: 1, ps.NOT_IN_CATALOGUE: 1, ps.NOT_GOODS: 2}
    assert [(u, o, p) for u, o, p, _ in _lines(shop)] == [
        ("1", "11", "1001"),
        ("1", "11", "1002"),
        ("1", "12", "1001"),
        ("2", "21", "1001"),
        ("3", "31", "1002"),
        ("3", "31", "1005"),
    ]
    orders = shop.tables[c.ORDERS]
    first = orders.filter(pl.col(c.ORDER_ID) == "11", pl.col(c.PRODUCT_ID) == "1001").row(
        0, named=True
    )
    assert first[c.QUANTITY] == 2 and first[c.UNIT_PRICE] == pytest.approx(1.5)
    assert first[c.ORDERED_AT] == dt.datetime(2017, 1, 2, 10, 0)
    assert first[c.STATUS] == "delivered" and first[c.DELIVERED_AT] is None
    # Demographics' age where the household has them.
    assert _column(shop, c.CUSTOMERS, c.CUSTOMER_ID, c.AGE_BAND) == {
        "1": "65+",
        "2": None,
        "3": "25-34",
    }
    products = {row[c.PRODUCT_ID]: row for row in shop.tables[c.PRODUCTS].iter_rows(named=True)}
    assert set(products) == {"1001", "1002", "1005"}  # bought ones only
    assert products["1001"][c.PRICE] == pytest.approx(1.5)  # median of 1.50, 1.60, 1.40
    assert products["1001"][c.NAME] == "BREAD:ITALIAN/FRENCH"
    assert (products["1001"][c.CATEGORY], products["1001"][c.BRAND]) == ("BREAD", "National")
    assert (products["1002"][c.NAME], products["1002"][c.BRAND]) == ("VEGETABLES", "Private")
    assert products["1005"][c.CATEGORY] == "DRUG GM"  # no category: the department


def test_complete_journey_min_buyers_sets_rare_products_aside() -> None:
    shop = ps.complete_journey(CJ, min_buyers=2)
    # 1005: household 3's line counts, household 2's line of it has no quantity.
    assert shop.set_aside[ps.RARE_PRODUCT] == 1
    assert "1005" not in shop.tables[c.ORDERS].get_column(c.PRODUCT_ID).to_list()
    assert set(shop.tables[c.PRODUCTS].get_column(c.PRODUCT_ID)) == {"1001", "1002"}


def test_instacart_times_are_rebuilt_from_the_days_between_orders() -> None:
    shop = ps.instacart_sample(INSTACART)
    times = dict(shop.tables[c.ORDERS].select(c.ORDER_ID, c.ORDERED_AT).unique().iter_rows())
    assert times == {
        # customer 1: 15 then 21 days between orders; the last on the end day at its hour
        "100": dt.datetime(2017, 3, 26, 8),
        "101": dt.datetime(2017, 4, 10, 7),
        "102": dt.datetime(2017, 5, 1, 12),
        # customer 2: 30 days between
        "200": dt.datetime(2017, 4, 1, 9),
        "201": dt.datetime(2017, 5, 1, 10),
    }
    assert shop.tables[c.ORDERS].height == 7
    assert shop.tables[c.PRODUCTS].get_column(c.CATEGORY).unique().to_list() == [ps.UNKNOWN]
    assert _column(shop, c.CUSTOMERS, c.CUSTOMER_ID, c.SIGNUP_DATE) == {
        "1": dt.date(2017, 3, 26),
        "2": dt.date(2017, 4, 1),
    }
