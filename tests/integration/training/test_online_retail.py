"""The Online Retail importer on a committed sample of the real file (277 lines: 32 customers' full
histories, one more customer's CRUK and DOT lines, and guest lines): contract tables, what is set
aside, cancellations as returns, categories, input formats and the provenance of the simulated
feedback."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLES
from recsvc.errors import DataContractError
from training.sources.online_retail import import_online_retail, match_cancellations
from training.sources.retail_categories import category_of
from training.sources.retail_lines import merged_lines, read_source, typed_lines
from training.sources.retail_report import ImportSummary, format_summary
from training.validate.fields import DTYPES

SAMPLE = Path(__file__).parents[2] / "fixtures" / "online_retail_sample.csv"
# The sample's non-product lines of known customers, by code or, for two services booked under
# ordinary codes, by description.
SERVICE_CODES = ["POST", "DOT", "M", "C2", "D", "BANK CHARGES", "CRUK", "PADS"]
SERVICE_DESCRIPTIONS = ["Next Day Carriage", "PACKING CHARGE"]


def _import(src: Path, out: Path) -> ImportSummary:
    return import_online_retail(src, out, seed=7, show_progress=False)


def _tables(out: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(out / f"{name}.parquet") for name in TABLES}


def _sample() -> pl.DataFrame:
    """The sample typed like the real Parquet file."""
    return pl.read_csv(
        SAMPLE,
        schema_overrides={"InvoiceNo": pl.String, "StockCode": pl.String, "CustomerID": pl.Int64},
    ).with_columns(pl.col("InvoiceDate").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us"))


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportSummary, Path]:
    out = tmp_path_factory.mktemp("online_retail")
    return _import(SAMPLE, out), out


@pytest.fixture(scope="module")
def tables(imported: tuple[ImportSummary, Path]) -> dict[str, pl.DataFrame]:
    return _tables(imported[1])


def _lines(orders: pl.DataFrame, order_id: str, product_id: str) -> list[tuple[str, int]]:
    rows = orders.filter(pl.col(c.ORDER_ID) == order_id, pl.col(c.PRODUCT_ID) == product_id)
    return sorted(rows.select(c.STATUS, c.QUANTITY).iter_rows())


def test_every_table_has_the_contract_columns_and_types(tables: dict[str, pl.DataFrame]) -> None:
    for name, table in TABLES.items():
        expected = {f.name: DTYPES[f.kind] for f in table.fields}
        assert dict(tables[name].schema) == expected, name
        assert tables[name].height > 0, name


def test_guest_lines_are_set_aside_and_counted(imported: tuple[ImportSummary, Path]) -> None:
    summary, _ = imported
    sample = _sample()
    assert summary.guest_lines == sample.filter(pl.col("CustomerID").is_null()).height
    assert summary.lines_read == sample.height


def test_non_product_codes_are_set_aside_and_counted(
    imported: tuple[ImportSummary, Path], tables: dict[str, pl.DataFrame]
) -> None:
    summary, _ = imported
    known = _sample().filter(pl.col("CustomerID").is_not_null())
    services = known.filter(
        pl.col("StockCode").is_in(SERVICE_CODES) | pl.col("Description").is_in(SERVICE_DESCRIPTIONS)
    )
    assert summary.non_product_lines == services.height
    assert summary.non_product_by_code == dict(
        services.get_column("StockCode").value_counts().iter_rows()
    )
    service_ids = [*SERVICE_CODES, "23444", "23574"]
    for name in (c.ORDERS, c.PRODUCTS):
        assert tables[name].filter(pl.col(c.PRODUCT_ID).is_in(service_ids)).is_empty(), name


def test_every_source_line_is_accounted_for(imported: tuple[ImportSummary, Path]) -> None:
    s, _ = imported
    set_aside = s.guest_lines + s.non_product_lines + s.invalid_lines
    assert s.lines_read == set_aside + s.purchase_lines + s.cancellation_lines
    assert s.cancellation_lines == s.matched_cancellation_lines + s.unmatched_cancellation_lines
    assert s.order_lines == s.delivered_lines + s.returned_lines


def test_a_zero_price_line_of_a_known_customer_is_invalid(
    imported: tuple[ImportSummary, Path],
) -> None:
    known = _sample().filter(
        pl.col("CustomerID").is_not_null(),
        ~pl.col("StockCode").is_in(SERVICE_CODES),
        ~pl.col("Description").is_in(SERVICE_DESCRIPTIONS),
    )
    assert imported[0].invalid_lines == known.filter(pl.col("UnitPrice") <= 0).height > 0


def test_a_fully_cancelled_purchase_becomes_a_return(tables: dict[str, pl.DataFrame]) -> None:
    # 12346 bought 74,215 storage jars (541431) and cancelled them all 16 minutes later (C541433).
    assert _lines(tables[c.ORDERS], "541431", "23166") == [("returned", 74215)]
    assert tables[c.ORDERS].filter(pl.col(c.ORDER_ID).str.starts_with("C")).is_empty()


def test_each_cancellation_returns_part_of_the_latest_earlier_purchase(
    tables: dict[str, pl.DataFrame],
) -> None:
    # 15100 bought 32, 32 and 16 sewing boxes and cancelled 12, 7 and 3, each after the next purchase.
    orders = tables[c.ORDERS]
    assert _lines(orders, "536374", "21258") == [("delivered", 20), ("returned", 12)]
    assert _lines(orders, "537767", "21258") == [("delivered", 25), ("returned", 7)]
    assert _lines(orders, "540563", "21258") == [("delivered", 13), ("returned", 3)]


def test_a_cancellation_without_an_earlier_purchase_is_counted_not_applied(
    imported: tuple[ImportSummary, Path], tables: dict[str, pl.DataFrame]
) -> None:
    # 16138's only line cancels a cake tin bought before the file begins.
    assert "16138" not in tables[c.CUSTOMERS].get_column(c.CUSTOMER_ID).to_list()
    assert imported[0].unmatched_cancellation_lines >= 1


def test_cancellation_matching_follows_the_sequential_rule(
    imported: tuple[ImportSummary, Path],
) -> None:
    """The joins-in-rounds matching gives what taking cancellations one by one in time order gives."""
    raw, _ = read_source(SAMPLE)
    lines = typed_lines(raw, SAMPLE)
    purchases = merged_lines(lines, cancellations=False).collect().with_row_index("line")
    cancellations = merged_lines(lines, cancellations=True).collect().with_row_index("cancellation")
    returned, unmatched = match_cancellations(purchases, cancellations)

    history = defaultdict(list)
    for line, customer, product, at, quantity in purchases.select(
        "line", c.CUSTOMER_ID, c.PRODUCT_ID, c.ORDERED_AT, c.QUANTITY
    ).iter_rows():
        history[customer, product].append((line, at, quantity))
    taken: dict[int, int] = defaultdict(int)
    expected_unmatched = []
    for cancel, customer, product, at, quantity in cancellations.select(
        "cancellation", c.CUSTOMER_ID, c.PRODUCT_ID, c.ORDERED_AT, c.QUANTITY
    ).iter_rows():
        fits = [
            line
            for line, bought_at, bought in history[customer, product]
            if bought_at <= at and bought - taken[line] >= quantity
        ]
        if fits:
            taken[max(fits)] += quantity
        else:
            expected_unmatched.append(cancel)

    assert dict(returned.iter_rows()) == {line: n for line, n in taken.items() if n}
    assert unmatched.get_column("cancellation").to_list() == expected_unmatched
    assert imported[0].unmatched_cancellation_lines == len(expected_unmatched)


def test_repeated_lines_of_a_code_in_one_invoice_are_summed(
    tables: dict[str, pl.DataFrame],
) -> None:
    # Invoice 558894 lists 22427 twice: 6 at 5.95 and 12 at 5.45.
    line = tables[c.ORDERS].filter(pl.col(c.ORDER_ID) == "558894", pl.col(c.PRODUCT_ID) == "22427")
    assert line.height == 1
    assert line.get_column(c.QUANTITY).item() == 18
    assert line.get_column(c.UNIT_PRICE).item() == pytest.approx((6 * 5.95 + 12 * 5.45) / 18)


def test_customers_are_the_known_buyers_with_their_first_purchase_day(
    tables: dict[str, pl.DataFrame],
) -> None:
    customers = tables[c.CUSTOMERS]
    buyers = set(tables[c.ORDERS].get_column(c.CUSTOMER_ID).unique().to_list())
    assert set(customers.get_column(c.CUSTOMER_ID).to_list()) == buyers
    assert customers.get_column(c.AGE_BAND).null_count() == customers.height
    japan = customers.filter(pl.col(c.CUSTOMER_ID) == "12755").row(0, named=True)
    assert japan[c.COUNTRY] == "Japan"
    assert str(japan[c.SIGNUP_DATE]) == "2010-12-09"


def test_categories_follow_the_keyword_rule(tables: dict[str, pl.DataFrame]) -> None:
    by_id = dict(tables[c.PRODUCTS].select(c.PRODUCT_ID, c.CATEGORY).iter_rows())
    assert by_id["21801"] == "christmas"  # CHRISTMAS TREE DECORATION WITH BELL
    assert by_id["23203"] == "bags"  # JUMBO BAG VINTAGE DOILY
    assert by_id["22328"] == "kitchen & dining"  # ROUND SNACK BOXES SET OF 4 FRUITS
    assert by_id["22585"] == "stationery & cards"  # PACK OF 6 BIRDY GIFT TAGS
    assert by_id["22749"] == "toys & games"  # FELTCRAFT PRINCESS CHARLOTTE DOLL
    assert by_id["21258"] == "home decor"  # VICTORIAN SEWING BOX LARGE
    assert by_id["22113"] == "home decor"  # GREY HEART HOT WATER BOTTLE: the phrase beats "BOTTLE"
    assert by_id["84949"] == "candles & lights"  # SILVER HANGING T-LIGHT HOLDER


def test_the_first_matching_category_rule_wins_and_unknown_is_other() -> None:
    descriptions = pl.DataFrame(
        {"d": ["CHRISTMAS CANDLE", "RED RETROSPOT CHARLOTTE BAG", "GROOVY CACTUS", None]}
    )
    got = descriptions.select(category_of(pl.col("d"))).to_series().to_list()
    assert got == ["christmas", "bags", "other", "other"]


def test_lowercase_stock_codes_are_the_same_product(tables: dict[str, pl.DataFrame]) -> None:
    ids = tables[c.PRODUCTS].get_column(c.PRODUCT_ID)
    assert "15056BL" in ids.to_list()
    assert ids.str.contains("[a-z]").sum() == 0


def test_csv_and_parquet_inputs_give_identical_tables(
    imported: tuple[ImportSummary, Path], tables: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    src = tmp_path / "online_retail.parquet"
    _sample().write_parquet(src)
    summary = _import(src, tmp_path / "out")
    for name, frame in _tables(tmp_path / "out").items():
        assert frame.equals(tables[name]), name
    assert summary.lines_read == imported[0].lines_read


def test_online_retail_ii_column_names_are_accepted(
    tables: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    src = tmp_path / "online_retail_II.csv"
    renames = {"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"}
    pl.read_csv(SAMPLE, infer_schema=False).rename(renames).write_csv(src)
    summary = _import(src, tmp_path / "out")
    assert summary.release == "Online Retail II"
    assert _tables(tmp_path / "out")[c.ORDERS].equals(tables[c.ORDERS])


def test_an_xlsx_workbook_is_read_sheet_by_sheet(tmp_path: Path) -> None:
    import openpyxl

    sample = _sample().head(60)
    workbook = openpyxl.Workbook()
    for title, part in (("Year 2010", sample.head(30)), ("Year 2011", sample.tail(30))):
        sheet = workbook.create_sheet(title)
        sheet.append(sample.columns)
        for row in part.iter_rows():
            sheet.append(list(row))
    workbook.remove(workbook["Sheet"])
    workbook.save(tmp_path / "online_retail.xlsx")
    sample.write_parquet(tmp_path / "online_retail.parquet")

    from_xlsx = _import(tmp_path / "online_retail.xlsx", tmp_path / "xlsx")
    from_parquet = _import(tmp_path / "online_retail.parquet", tmp_path / "parquet")
    assert from_xlsx.lines_read == 60
    for name in (c.CUSTOMERS, c.PRODUCTS, c.ORDERS):
        xlsx_table = pl.read_parquet(tmp_path / "xlsx" / f"{name}.parquet")
        assert xlsx_table.equals(pl.read_parquet(tmp_path / "parquet" / f"{name}.parquet")), name
    assert from_xlsx.order_lines == from_parquet.order_lines


def test_a_missing_column_is_a_contract_error_naming_it(tmp_path: Path) -> None:
    src = tmp_path / "no_country.csv"
    pl.read_csv(SAMPLE, infer_schema=False).drop("Country").write_csv(src)
    with pytest.raises(DataContractError, match=r"no_country\.csv: missing column Country"):
        _import(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_missing_customer_column_names_both_spellings(tmp_path: Path) -> None:
    src = tmp_path / "no_customer.csv"
    pl.read_csv(SAMPLE, infer_schema=False).drop("CustomerID").write_csv(src)
    with pytest.raises(DataContractError, match=r"missing column CustomerID \(or Customer ID\)"):
        _import(src, tmp_path / "out")


def test_an_unreadable_file_is_a_one_line_contract_error(tmp_path: Path) -> None:
    src = tmp_path / "broken.parquet"
    src.write_bytes(b"not parquet at all")
    with pytest.raises(DataContractError, match=r"broken\.parquet: cannot read the file") as info:
        _import(src, tmp_path / "out")
    assert "\n" not in str(info.value)


def test_simulated_nps_responses_reference_known_customers(
    tables: dict[str, pl.DataFrame],
) -> None:
    nps = tables[c.NPS_RESPONSES]
    customers = set(tables[c.CUSTOMERS].get_column(c.CUSTOMER_ID).to_list())
    assert nps.height > 0
    assert set(nps.get_column(c.CUSTOMER_ID).to_list()) <= customers
    assert nps.get_column(c.SCORE).is_between(0, 10).all()
    orders = set(tables[c.ORDERS].get_column(c.ORDER_ID).to_list())
    assert set(nps.get_column(c.ORDER_ID).drop_nulls().to_list()) <= orders


def test_provenance_says_purchases_are_real_and_feedback_simulated(
    imported: tuple[ImportSummary, Path],
) -> None:
    summary, out = imported
    provenance = (out / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "Purchases are REAL. NPS, CSAT and CES responses are SIMULATED." in provenance
    assert "doi:10.1057/dbm.2012.17" in provenance
    assert "CC BY 4.0" in provenance
    report = json.loads((out / "_import_report.json").read_text(encoding="utf-8"))
    assert report["guest_lines"] == summary.guest_lines
    assert report["unmatched_cancellation_lines"] == summary.unmatched_cancellation_lines
    assert report["nps_responses"] == summary.nps_responses
    assert "NPS" in format_summary(summary)


def test_the_imported_data_passes_the_validator(
    imported: tuple[ImportSummary, Path], tmp_path: Path
) -> None:
    from training.validate.dataset import validate_dataset

    report = validate_dataset(imported[1], tmp_path / "validation", show_progress=False).report
    assert report.ok, report.failure
    assert {t.table: t.rejected for t in report.tables} == dict.fromkeys(TABLES, 0)
    assert {t.table: t.duplicates_collapsed for t in report.tables} == dict.fromkeys(TABLES, 0)
