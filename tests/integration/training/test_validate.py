"""`validate_dataset` end to end on small files: each format, each kind of bad row, the quarantine,
the report, and the one-line errors for folders and files it cannot use."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLES
from recsvc.errors import DataContractError
from training.validate.dataset import QUARANTINE_FILE, REPORT_FILE, validate_dataset
from training.validate.fields import DTYPES
from training.validate.report import ValidationReport, ValidationResult, format_summary

Rows = list[dict[str, Any]]


def good_shop() -> dict[str, Rows]:
    """A tiny valid shop, values typed as JSON would carry them."""
    return {
        c.CUSTOMERS: [
            {
                "customer_id": f"C{i}",
                "signup_date": "2024-01-0" + str(i),
                "country": "DE",
                "age_band": "25-34",
                "tier": "gold",
            }
            for i in range(1, 5)
        ],
        c.PRODUCTS: [
            {
                "product_id": "P1",
                "name": "Shoe",
                "category": "shoes",
                "brand": "acme",
                "price": 59.9,
                "in_stock": True,
            },
            {
                "product_id": "P2",
                "name": "Hat",
                "category": "hats",
                "brand": "acme",
                "price": 19.0,
                "in_stock": False,
            },
        ],
        c.ORDERS: [
            {
                "order_id": f"O{i}",
                "customer_id": f"C{i % 4 + 1}",
                "product_id": f"P{i % 2 + 1}",
                "quantity": 1 + i % 3,
                "unit_price": 19.0,
                "ordered_at": f"2024-02-{i:02d}T10:00:00Z",
                "promised_delivery_at": f"2024-02-{i + 3:02d} 18:00:00",
                "delivered_at": f"2024-02-{i + 2:02d}T09:15:00+01:00",
                "status": "delivered",
            }
            for i in range(1, 9)
        ],
        c.NPS_RESPONSES: [
            {
                "response_id": f"R{i}",
                "customer_id": f"C{i % 4 + 1}",
                "score": i,
                "responded_at": f"2024-03-{i:02d}T08:00:00",
                "touchpoint": "post_delivery",
                "order_id": f"O{i}",
                "comment": "fast, friendly" if i % 2 else None,
            }
            for i in range(1, 9)
        ],
    }


def write_shop(folder: Path, tables: dict[str, Rows], fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        frame = pl.DataFrame(rows, infer_schema_length=None)
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            frame.write_csv(path)
        elif fmt == "parquet":
            frame.write_parquet(path)
        else:
            frame.write_ndjson(path)
    return folder


def validate(
    tmp_path: Path, tables: dict[str, Rows], fmt: str = "csv", **kwargs: Any
) -> ValidationResult:
    data = write_shop(tmp_path / "data", tables, fmt)
    return validate_dataset(data, tmp_path / "out", show_progress=False, **kwargs)


def table_report(result: ValidationResult, name: str) -> Any:
    return next(t for t in result.report.tables if t.table == name)


def quarantine(out: Path) -> pl.DataFrame:
    return pl.read_csv(out / QUARANTINE_FILE, infer_schema=False).with_columns(
        pl.col(c.SOURCE_ROW).cast(pl.Int64)
    )


def with_rows(table: str, *rows: dict[str, Any]) -> dict[str, Rows]:
    """The good shop with `rows` appended to `table` (missing keys copied from its first row)."""
    shop = good_shop()
    shop[table] = shop[table] + [{**shop[table][0], **row} for row in rows]
    return shop


# --- good data ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ndjson"])
def test_good_files_pass_with_zero_rejects(tmp_path: Path, fmt: str) -> None:
    result = validate(tmp_path, good_shop(), fmt)
    assert result.report.ok
    for name, rows in good_shop().items():
        report = table_report(result, name)
        assert (report.rows_read, report.valid, report.rejected) == (len(rows), len(rows), 0)
        clean = pl.read_parquet(result.clean_paths[name])
        for spec in TABLES[name].fields:
            assert clean.schema[spec.name] == DTYPES[spec.kind], f"{name}.{spec.name}"
    assert quarantine(tmp_path / "out").height == 0
    orders = pl.read_parquet(result.clean_paths[c.ORDERS])
    assert orders[c.DELIVERED_AT][0] == dt.datetime(2024, 2, 3, 8, 15)  # +01:00 read as UTC


def test_the_report_is_written_as_json_and_summarised(tmp_path: Path) -> None:
    result = validate(tmp_path, good_shop())
    report = msgspec.json.decode(result.report_path.read_bytes(), type=ValidationReport)
    assert report == result.report
    assert result.report_path == tmp_path / "out" / REPORT_FILE
    summary = format_summary(report)
    assert "validation passed" in summary
    for name in good_shop():
        assert f"{name} ({name}.csv): " in summary


def test_customers_keep_extra_columns_as_text_and_other_tables_drop_them(tmp_path: Path) -> None:
    shop = good_shop()
    shop[c.PRODUCTS] = [{**row, "colour": "red"} for row in shop[c.PRODUCTS]]
    result = validate(tmp_path, shop)
    customers = pl.read_parquet(result.clean_paths[c.CUSTOMERS])
    assert customers["tier"].to_list() == ["gold"] * 4
    assert "colour" not in pl.read_parquet(result.clean_paths[c.PRODUCTS]).columns
    assert table_report(result, c.PRODUCTS).warnings == [
        "dropped column(s) 'colour' (not in the contract)"
    ]


def test_defaults_fill_missing_optional_values(tmp_path: Path) -> None:
    shop = good_shop()
    shop[c.PRODUCTS][0]["in_stock"] = None
    shop[c.ORDERS] = [{k: v for k, v in row.items() if k != c.STATUS} for row in shop[c.ORDERS]]
    result = validate(tmp_path, shop)
    assert pl.read_parquet(result.clean_paths[c.PRODUCTS])[c.IN_STOCK].to_list() == [True, False]
    assert set(pl.read_parquet(result.clean_paths[c.ORDERS])[c.STATUS]) == {"delivered"}
    assert (
        "optional column(s) absent, filled in: line_id=null, status='delivered'"
        in table_report(result, c.ORDERS).warnings
    )


def test_typed_parquet_timestamps_and_whole_floats_are_accepted(tmp_path: Path) -> None:
    shop = good_shop()
    for row in shop[c.NPS_RESPONSES]:
        row[c.SCORE] = float(row[c.SCORE])
        row[c.RESPONDED_AT] = dt.datetime(2024, 3, 1, 8, tzinfo=dt.UTC)
    result = validate(tmp_path, shop, "parquet")
    clean = pl.read_parquet(result.clean_paths[c.NPS_RESPONSES])
    assert clean[c.SCORE].to_list() == list(range(1, 9))
    assert set(clean[c.RESPONDED_AT]) == {dt.datetime(2024, 3, 1, 8)}


# --- bad rows -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "reason"),
    [
        ("11", "score: 11 is out of range (must be >= 0 and <= 10)"),
        ("-1", "score: -1 is out of range (must be >= 0 and <= 10)"),
        ("7.5", "score: expected an integer, got '7.5'"),
        ("ten", "score: expected an integer, got 'ten'"),
        ("", "score: required value is missing"),
    ],
)
def test_a_bad_score_is_quarantined_and_its_neighbours_kept(
    tmp_path: Path, score: str, reason: str
) -> None:
    shop = good_shop()
    shop[c.NPS_RESPONSES][2][c.SCORE] = score  # data row 3 (CSV line 4)
    result = validate(tmp_path, shop, max_rejected_share=0.5)
    assert pl.read_parquet(result.clean_paths[c.NPS_RESPONSES]).height == 7
    rejected = quarantine(tmp_path / "out")
    assert rejected.select(QUARANTINE_COLUMNS).rows() == [
        (c.NPS_RESPONSES, "nps_responses.csv", 3, reason)
    ]
    assert json.loads(rejected["raw"][0])["response_id"] == "R3"


QUARANTINE_COLUMNS = ["table", c.SOURCE_FILE, c.SOURCE_ROW, c.REJECT_REASON]
ID_TAIL = "or separator character (an id is 1 to 128 printable characters)"
LONG_TAIL = "characters (an id is 1 to 128 printable characters)"


@pytest.mark.parametrize(
    ("table", "column", "value", "reason"),
    [
        (c.ORDERS, c.ORDER_ID, "", "order_id: required value is missing"),
        (
            c.ORDERS,
            c.ORDERED_AT,
            "01/02/2024",
            "ordered_at: not a date-time (use ISO 8601, e.g. 2024-05-01T12:30:00Z), got '01/02/2024'",
        ),
        (
            c.CUSTOMERS,
            c.SIGNUP_DATE,
            "2024-02-30",
            "signup_date: not a date (use YYYY-MM-DD), got '2024-02-30'",
        ),
        (
            c.NPS_RESPONSES,
            c.TOUCHPOINT,
            "website",
            "touchpoint: unknown value 'website', expected one of pre_delivery, post_delivery, relationship",
        ),
        (
            c.ORDERS,
            c.STATUS,
            "shipped",
            "status: unknown value 'shipped', expected one of placed, delivered, returned, cancelled",
        ),
        (c.PRODUCTS, c.PRICE, "-5", "price: -5.0 is out of range (must be >= 0)"),
        (c.ORDERS, c.QUANTITY, "0", "quantity: 0 is out of range (must be > 0)"),
        (c.PRODUCTS, c.IN_STOCK, "maybe", "in_stock: expected true or false, got 'maybe'"),
        # The rules the live intake applies too (recsvc.domain.contract): ids, ASCII digits, no future.
        (c.NPS_RESPONSES, c.RESPONSE_ID, "R2\x01", f"response_id: contains a control {ID_TAIL}"),
        (c.NPS_RESPONSES, c.RESPONSE_ID, "R\n2", f"response_id: contains a control {ID_TAIL}"),
        (c.NPS_RESPONSES, c.RESPONSE_ID, "R" * 129, f"response_id: longer than 128 {LONG_TAIL}"),
        (c.NPS_RESPONSES, c.SCORE, "\u0669", "score: expected an integer, got '\u0669'"),
        (
            c.NPS_RESPONSES,
            c.RESPONDED_AT,
            "9999-12-31T00:00:00Z",
            "responded_at: in the future (more than 15 minutes ahead of now; times are UTC)",
        ),
        (
            c.ORDERS,
            c.ORDERED_AT,
            "\u0662\u0660\u0662\u0664-02-01",
            "ordered_at: not a date-time (use ISO 8601, e.g. 2024-05-01T12:30:00Z), "
            "got '\u0662\u0660\u0662\u0664-02-01'",
        ),
        (
            c.NPS_RESPONSES,
            c.COMMENT,
            "y" * 5_001,
            "comment: longer than 5000 characters",
        ),
    ],
)
def test_each_kind_of_bad_value_is_quarantined_with_a_reason_naming_the_field(
    tmp_path: Path, table: str, column: str, value: str, reason: str
) -> None:
    shop = good_shop()
    shop[table][1][column] = value  # data row 2
    result = validate(tmp_path, shop, max_rejected_share=1.0)
    report = table_report(result, table)
    assert (report.rejected, report.valid) == (1, len(shop[table]) - 1)
    assert quarantine(tmp_path / "out").filter(pl.col("table") == table).select(
        QUARANTINE_COLUMNS
    ).rows() == [(table, f"{table}.csv", 2, reason)]


def test_all_problems_of_a_row_are_listed(tmp_path: Path) -> None:
    shop = with_rows(
        c.NPS_RESPONSES,
        {"response_id": "R9", "score": "11", "touchpoint": "web", "customer_id": "C404"},
    )
    validate(tmp_path, shop, max_rejected_share=1.0)
    (reason,) = quarantine(tmp_path / "out")[c.REJECT_REASON].to_list()
    assert reason.split("; ") == [
        "score: 11 is out of range (must be >= 0 and <= 10)",
        "touchpoint: unknown value 'web', expected one of pre_delivery, post_delivery, relationship",
        "orphan: customer_id 'C404' not in customers",
    ]


def test_exact_duplicate_rows_are_collapsed_and_counted_not_quarantined(tmp_path: Path) -> None:
    shop = good_shop()
    shop[c.ORDERS] += shop[c.ORDERS][:3]
    shop[c.CUSTOMERS].append(shop[c.CUSTOMERS][0])
    result = validate(tmp_path, shop)
    orders = table_report(result, c.ORDERS)
    assert (orders.rows_read, orders.valid, orders.duplicates_collapsed, orders.rejected) == (
        11,
        8,
        3,
        0,
    )
    assert table_report(result, c.CUSTOMERS).duplicates_collapsed == 1
    assert pl.read_parquet(result.clean_paths[c.ORDERS]).height == 8


@pytest.mark.parametrize("fmt", ["csv", "parquet", "ndjson"])
def test_a_repeated_key_with_different_content_keeps_the_first_and_quarantines_the_rest(
    tmp_path: Path, fmt: str
) -> None:
    shop = with_rows(c.NPS_RESPONSES, {"response_id": "R2", "score": 0})  # data row 9
    result = validate(tmp_path, shop, fmt, max_rejected_share=0.5)
    report = table_report(result, c.NPS_RESPONSES)
    assert (report.valid, report.rejected, report.key_conflicts) == (8, 1, 1)
    clean = pl.read_parquet(result.clean_paths[c.NPS_RESPONSES])
    assert clean.filter(pl.col(c.RESPONSE_ID) == "R2")[c.SCORE].to_list() == [2]
    rejected = quarantine(tmp_path / "out")
    assert rejected.select(QUARANTINE_COLUMNS).rows() == [
        (
            c.NPS_RESPONSES,
            f"nps_responses.{fmt}",
            9,
            "duplicate response_id 'R2' with different content (first seen in row 2)",
        )
    ]
    assert json.loads(rejected["raw"][0])[c.SCORE] in (0, "0")  # the row as read, typed or not


def test_orphans_are_quarantined_and_counted_separately(tmp_path: Path) -> None:
    shop = with_rows(
        c.ORDERS,
        {"order_id": "O90", "customer_id": "C404"},
        {"order_id": "O91", "product_id": "P404"},
    )
    shop = {
        **shop,
        c.NPS_RESPONSES: with_rows(c.NPS_RESPONSES, {"response_id": "R90", "customer_id": "C404"})[
            c.NPS_RESPONSES
        ],
    }
    result = validate(tmp_path, shop, max_rejected_share=0.5)
    assert (table_report(result, c.ORDERS).orphans, table_report(result, c.ORDERS).rejected) == (
        2,
        2,
    )
    assert table_report(result, c.NPS_RESPONSES).orphans == 1
    assert quarantine(tmp_path / "out").select(c.SOURCE_ROW, c.REJECT_REASON).rows() == [
        (9, "orphan: customer_id 'C404' not in customers"),
        (10, "orphan: product_id 'P404' not in products"),
        (9, "orphan: customer_id 'C404' not in customers"),
    ]


def test_a_response_naming_an_unknown_order_is_kept_with_a_warning(tmp_path: Path) -> None:
    shop = with_rows(c.NPS_RESPONSES, {"response_id": "R90", "order_id": "O404"})
    result = validate(tmp_path, shop)
    report = table_report(result, c.NPS_RESPONSES)
    assert (report.valid, report.rejected) == (9, 0)
    assert report.warnings == [
        "1 response(s) name an order_id that is not in orders (kept: order_id is optional)"
    ]


def test_an_ndjson_column_mixing_booleans_and_numbers_is_read_as_text(tmp_path: Path) -> None:
    data = write_shop(tmp_path / "data", good_shop())
    (data / "products.csv").unlink()
    lines = [
        '{"product_id": "P1", "category": "shoes", "in_stock": true}',
        '{"product_id": "P2", "category": "hats", "in_stock": 0}',
    ]
    (data / "products.ndjson").write_text("\n".join(lines) + "\n")
    result = validate_dataset(data, tmp_path / "out", show_progress=False)
    clean = pl.read_parquet(result.clean_paths[c.PRODUCTS])
    assert clean[c.IN_STOCK].to_list() == [True, False]


def test_too_many_rejects_fail_after_writing_the_report_and_quarantine(tmp_path: Path) -> None:
    shop = good_shop()
    shop[c.NPS_RESPONSES][0][c.SCORE] = 11  # 1 of 8 rows: 12.5% > 5%
    with pytest.raises(DataContractError) as error:
        validate(tmp_path, shop)
    message = str(error.value)
    assert "nps_responses.csv 12.5% (1 of 8 rows)" in message
    assert "\n" not in message
    report = msgspec.json.decode(
        (tmp_path / "out" / REPORT_FILE).read_bytes(), type=ValidationReport
    )
    assert not report.ok
    assert report.failure == message
    assert quarantine(tmp_path / "out").height == 1


# --- folders and files it cannot use ---------------------------------------------------------------


def assert_one_line_error(error: pytest.ExceptionInfo[DataContractError], *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_a_missing_required_table_is_named(tmp_path: Path) -> None:
    shop = good_shop()
    del shop[c.PRODUCTS]
    with pytest.raises(DataContractError) as error:
        validate(tmp_path, shop)
    assert_one_line_error(error, "required table 'products' is missing", "products.csv")


def test_a_missing_required_column_is_named_with_the_columns_found(tmp_path: Path) -> None:
    shop = good_shop()
    shop[c.ORDERS] = [{k: v for k, v in row.items() if k != c.QUANTITY} for row in shop[c.ORDERS]]
    with pytest.raises(DataContractError) as error:
        validate(tmp_path, shop)
    assert_one_line_error(
        error,
        "orders.csv",
        "missing required column(s) quantity",
        "found: 'order_id', 'customer_id'",
    )


def test_a_csv_with_the_wrong_delimiter_is_explained(tmp_path: Path) -> None:
    data = write_shop(tmp_path / "data", good_shop())
    pl.DataFrame(good_shop()[c.PRODUCTS]).write_csv(data / "products.csv", separator=";")
    with pytest.raises(DataContractError) as error:
        validate_dataset(data, tmp_path / "out", show_progress=False)
    assert_one_line_error(error, "products.csv", "the delimiter looks like ';'")


def test_two_files_for_one_table_are_an_error_naming_both(tmp_path: Path) -> None:
    data = write_shop(tmp_path / "data", good_shop())
    pl.DataFrame(good_shop()[c.ORDERS]).write_parquet(data / "orders.parquet")
    with pytest.raises(DataContractError) as error:
        validate_dataset(data, tmp_path / "out", show_progress=False)
    assert_one_line_error(error, "orders.csv and orders.parquet")


def test_other_files_are_ignored_with_a_warning(tmp_path: Path) -> None:
    data = write_shop(tmp_path / "data", good_shop())
    (data / "_truth").mkdir()
    (data / "README.txt").write_text("hello")
    result = validate_dataset(data, tmp_path / "out", show_progress=False)
    assert len(result.report.warnings) == 2
    assert result.report.warnings[0].startswith("ignored file README.txt")
    assert result.report.warnings[1].startswith("ignored _truth")


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("orders.csv", bytes(range(256)) * 8, "binary data"),
        ("orders.parquet", b"PAR1" + b"\x15\x00" * 100, "cannot read as Parquet"),
        (
            "orders.ndjson",
            b'{"order_id": "O1"}\n{"order_id": "O2",\n',
            "cannot read as newline-delimited JSON",
        ),
    ],
    ids=["binary-garbage", "truncated-parquet", "invalid-ndjson"],
)
def test_a_corrupt_file_is_a_one_line_error_naming_it(
    tmp_path: Path, name: str, content: bytes, fragment: str
) -> None:
    shop = good_shop()
    del shop[c.ORDERS]
    data = write_shop(tmp_path / "data", shop)
    (data / name).write_bytes(content)
    with pytest.raises(DataContractError) as error:
        validate_dataset(data, tmp_path / "out", show_progress=False)
    assert_one_line_error(error, name, fragment)


def test_a_csv_that_is_not_utf8_is_a_one_line_error(tmp_path: Path) -> None:
    data = write_shop(tmp_path / "data", good_shop())
    with (data / "orders.csv").open("ab") as orders:
        orders.write("O9,C1,P1,1,2.5,2024-02-01,,,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataContractError) as error:
        validate_dataset(data, tmp_path / "out", show_progress=False)
    assert_one_line_error(error, "orders.csv", "not UTF-8")


def test_a_real_parquet_file_cut_short_is_a_one_line_error(tmp_path: Path) -> None:
    data = write_shop(tmp_path / "data", good_shop(), "parquet")
    whole = (data / "orders.parquet").read_bytes()
    (data / "orders.parquet").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataContractError) as error:
        validate_dataset(data, tmp_path / "out", show_progress=False)
    assert_one_line_error(error, "orders.parquet", "cannot read as Parquet")


def test_the_demo_generator_output_validates_with_zero_rejects(tmp_path: Path) -> None:
    from training.sources.generate import generate

    generate(tmp_path / "data", customers=200, seed=1, fmt="csv", show_progress=False)
    result = validate_dataset(tmp_path / "data", tmp_path / "out", show_progress=False)
    assert [t.rejected for t in result.report.tables] == [0] * len(result.report.tables)
