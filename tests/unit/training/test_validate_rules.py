"""The batch validator's field rules agree with the service's `check_value`, value for value; and
the row-level steps (duplicates, repeated keys, orphans) on five-row frames."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain import contract, times
from recsvc.domain.contract import Table
from recsvc.errors import shown
from training.validate.fields import DTYPES
from training.validate.rows import check_rows, mark_rows, settle_rows

# One field of each kind (and each kind of rule), taken from the real contract.
PROBE_FIELDS = (
    contract.NPS_RESPONSES.by_name[c.SCORE],  # integer 0..10, required
    contract.ORDERS.by_name[c.QUANTITY],  # integer > 0
    contract.PRODUCTS.by_name[c.PRICE],  # number >= 0
    contract.PRODUCTS.by_name[c.IN_STOCK],  # boolean, default true
    contract.ORDERS.by_name[c.STATUS],  # text with choices, default "delivered"
    contract.CUSTOMERS.by_name[c.CUSTOMER_ID],  # text, required
    contract.NPS_RESPONSES.by_name[c.RESPONDED_AT],  # date-time, required
    contract.CUSTOMERS.by_name[c.SIGNUP_DATE],  # date, not in the future
    contract.NPS_RESPONSES.by_name[c.COMMENT],  # text of at most 5,000 characters
)
# The clock both sides check "not in the future" against.
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PROBE = Table(name="probe", fields=PROBE_FIELDS)

# Tricky spellings as they arrive in a CSV cell (or a JSON string). Numbers next to the ASCII
# separators \x1c..\x1f have their own test further down.
TEXT_VALUES: list[str | None] = [
    # integers and numbers
    *["7", " 7 ", "7.0", "7.", "7.000", "+7", "007", "-0", "10", "0", "11", "-1", "7.5", "ten"],
    *["", "   ", None, "1e1", "0x7", "7_0", ".5", "5.", "+.5e-3", "5.E2", "1e999", "-1e999"],
    *["nan", "inf", "10.0001", "\u00a07\u3000", "\x857", "\u0667", "1\u0662"],
    # booleans
    *["true", "TRUE", "True", " yes ", "Y", "n", "t", "f", "1", "2", "on", "da"],
    # choices
    *["delivered", "Delivered", " delivered", "placed", "shipped"],
    # timestamps: the contract's spellings, and near ones it refuses (single-digit fields, "+0200",
    # seconds in offsets, a lower-case "t" or "z", several spaces) that Python's strptime would read
    *[
        "2024-05-01",
        "2024-05-01T12:30:00",
        "2024-05-01 12:30:00",
        "2024-05-01T12:30",
        "2024-05-01 12:30",
    ],
    *[
        "2024-05-01T12:30:00Z",
        "2024-05-01T12:30:00z",
        "2024-05-01 12:30:00Z",
        "2024-05-01 12:30:00z",
    ],
    *["2024-05-01T12:30:00.5", "2024-05-01T12:30:00.123456", "2024-05-01T12:30:00.1234567"],
    *["2024-05-01T12:30:00+02:00", "2024-05-01 12:30:00-05:30", "2024-05-01T12:30:00+0200"],
    *["2024-05-01T12:30:00+02", "2024-05-01T12:30:00+02:00:30", "2024-05-01T12:30:00+020030"],
    *["2024-05-01T12:30:00+02:0030", "2024-05-01T12:30:00-02:00:30.5", "2024-05-01T12:30:00+24:00"],
    *["2024-05-01T12:30:00.5+02:00", "2024-05-01T12:30:00 +02:00", "2024-05-01T12:30Z"],
    *["2024-05-01t12:30", "2024-05-01  12:30", "2024-05-01\t12:30:00", "2024-5-1", "2024-05- 1"],
    *[
        "2024-05-1 9:05",
        "2024-05-01T7:5:3",
        " 2024-05-01 ",
        "2024-02-29",
        "2023-02-29",
        "2024-02-30",
    ],
    *["0000-01-01", "0001-01-01", "9999-12-31T23:59:59", "2024-05-01T23:59:60", "2024-05-01T24:00"],
    *["2024-13-01", "2024-05-01T12:60", "2024-05-01T12", "20240501", "01/05/2024", "yesterday"],
    *[
        "\u0662\u0660\u0662\u0664-\u0660\u0665-\u0660\u0661",
        "2024-05-1\u0665",
        "2024-\u0660\u0665-01",
    ],
    *["2024-05-01T12:30:00.Z", "2024-05-01T12:30:00+02:00Z", "2024-05-01T12:30:00-00:00"],
    # ids: printable, at most 128 characters (the id rule); other scripts' letters are fine
    *["C 1", "C\x001", "C\n1", "C\t1", "C\r", "\u00a0C1", "C\u200b1", "C\u2028", "Ç😀ü", "x" * 128],
    *["x" * 129, "x" * 60_000],
    # the future: at most FUTURE_SKEW (15 minutes) ahead of NOW, in any spelling
    *["2026-01-01T00:14:59Z", "2026-01-01T00:15:01Z", "2026-01-01T01:10:00+01:00", "2026-01-02"],
    *["2026-01-01", "2026-01-01 00:15:00", "2026-01-01T00:15:00.000001"],
    # comments: at most 5,000 characters
    *["y" * 5_000, "y" * 5_001],
]

# JSON scalars as NDJSON or Parquet carry them, one typed column per dtype.
TYPED_VALUES: dict[pl.DataType, list[Any]] = {
    pl.Int64(): [7, 0, -1, 11, 1, 2, None],
    pl.Float64(): [7.0, 7.5, -1.0, 11.0, 0.0, 1.0, 1e16, float("inf"), None],
    pl.Boolean(): [True, False, None],
}


def _batch(values: list[Any], dtype: pl.DataType) -> pl.DataFrame:
    """Each value in every probe column, one row per value; `_reason` split per field."""
    frame = pl.LazyFrame({f.name: pl.Series(values, dtype=dtype) for f in PROBE_FIELDS})
    schema = pl.Schema({f.name: dtype for f in PROBE_FIELDS})
    return check_rows(frame.with_row_index(c.SOURCE_ROW, offset=1), PROBE, schema, NOW).collect()


def _field_errors(reason: str | None) -> dict[str, str]:
    # Messages start with the field name; none of the probe values holds "; ".
    if reason is None:
        return {}
    return {part.split(":", 1)[0]: part for part in reason.split("; ")}


def _assert_agrees(raw: Any, row: dict[str, Any]) -> None:
    errors = _field_errors(row[c.REJECT_REASON])
    for spec in PROBE_FIELDS:
        expected_value, expected_error = contract.check_value(spec, raw, NOW)
        batch_error = errors.get(spec.name)
        assert (batch_error is None) == (expected_error is None), (
            f"{spec.name} {shown(raw)}: check_value says {expected_error!r}, the batch says "
            f"{batch_error!r}"
        )
        if expected_error is None:
            value = row[spec.name]
            if isinstance(value, dt.datetime):  # polars columns hold UTC as naive datetimes
                value = times.utc(value)
            assert value == expected_value, f"{spec.name} {shown(raw)}"


@pytest.fixture(scope="module")
def text_rows() -> list[dict[str, Any]]:
    return _batch(TEXT_VALUES, pl.String()).to_dicts()


@pytest.mark.parametrize("index", range(len(TEXT_VALUES)), ids=[shown(v) for v in TEXT_VALUES])
def test_text_is_accepted_exactly_where_the_service_accepts_it(
    index: int, text_rows: list[dict[str, Any]]
) -> None:
    """A CSV cell is taken (and read to the same value) exactly when `check_value` takes it."""
    _assert_agrees(TEXT_VALUES[index], text_rows[index])


@pytest.mark.parametrize(
    ("dtype", "raw"),
    [(dtype, raw) for dtype, values in TYPED_VALUES.items() for raw in values],
    ids=[f"{dtype}-{raw!r}" for dtype, values in TYPED_VALUES.items() for raw in values],
)
def test_typed_values_are_accepted_exactly_where_the_service_accepts_them(
    dtype: pl.DataType, raw: Any
) -> None:
    """A JSON number or boolean counts as check_value counts it: 7.0 is an integer, 1 is not true."""
    _assert_agrees(raw, _batch([raw], dtype).to_dicts()[0])


def test_parsed_columns_have_the_contract_dtypes() -> None:
    result = _batch(["7"], pl.String())
    assert {f.name: result.schema[f.name] for f in PROBE_FIELDS} == {
        f.name: DTYPES[f.kind] for f in PROBE_FIELDS
    }


def test_a_row_lists_every_problem_naming_each_field() -> None:
    frame = pl.LazyFrame(
        {c.SCORE: ["11"], c.TOUCHPOINT: ["website"], c.RESPONDED_AT: ["yesterday"]}
    )
    schema = pl.Schema({name: pl.String() for name in frame.collect_schema()})
    row = (
        check_rows(frame.with_row_index(c.SOURCE_ROW, offset=1), contract.NPS_RESPONSES, schema)
        .collect()
        .row(0, named=True)
    )
    assert row[c.REJECT_REASON] == (
        "score: 11 is out of range (must be >= 0 and <= 10); "
        "responded_at: not a date-time (use ISO 8601, e.g. 2024-05-01T12:30:00Z), got 'yesterday'; "
        "touchpoint: unknown value 'website', expected one of pre_delivery, post_delivery, relationship"
    )
    assert row["__problems"] == [
        "score: out of range (must be >= 0 and <= 10)",
        "responded_at: not a date-time (use ISO 8601, e.g. 2024-05-01T12:30:00Z)",
        "touchpoint: unknown value",
    ]


def test_offsets_are_converted_to_utc_and_naive_times_taken_as_utc() -> None:
    values = ["2024-05-01T12:30:00+02:00", "2024-05-01 12:30:00", "2024-05-01T00:30:30.5-01:00"]
    result = _batch(values, pl.String())
    assert result[c.RESPONDED_AT].to_list() == [
        dt.datetime(2024, 5, 1, 10, 30),
        dt.datetime(2024, 5, 1, 12, 30),
        dt.datetime(2024, 5, 1, 1, 30, 30, 500000),
    ]


def test_aware_parquet_timestamps_become_naive_utc() -> None:
    aware = pl.Series([dt.datetime(2024, 5, 1, 12, 30)]).dt.replace_time_zone("Europe/Berlin")
    frame = pl.LazyFrame({c.RESPONDED_AT: aware})
    result = check_rows(
        frame.with_row_index(c.SOURCE_ROW, offset=1), PROBE, frame.collect_schema()
    ).collect()
    assert result[c.RESPONDED_AT].to_list() == [dt.datetime(2024, 5, 1, 10, 30)]
    assert result.schema[c.RESPONDED_AT] == pl.Datetime("us")


def test_numbers_beside_ascii_separators_are_rejected() -> None:
    """float() refuses what the number pattern lets through here: both sides reject, neither crashes."""
    row = _batch(["\x1c7"], pl.String()).row(0, named=True)
    assert "score: expected an integer" in row[c.REJECT_REASON]
    assert "price: expected a number" in row[c.REJECT_REASON]
    _assert_agrees("\x1c7", row)


def test_integers_beyond_64_bits_are_rejected() -> None:
    """Both the batch and check_value refuse integers that do not fit 64 bits."""
    row = _batch(["99999999999999999999"], pl.String()).row(0, named=True)
    assert "quantity: '99999999999999999999' does not fit a 64-bit integer" in row[c.REJECT_REASON]
    _assert_agrees("99999999999999999999", row)


def test_absent_optional_columns_get_their_defaults() -> None:
    frame = pl.LazyFrame({c.PRODUCT_ID: ["P1"], c.CATEGORY: ["hats"]})
    schema = frame.collect_schema()
    row = (
        check_rows(frame.with_row_index(c.SOURCE_ROW, offset=1), contract.PRODUCTS, schema)
        .collect()
        .row(0, named=True)
    )
    assert row[c.IN_STOCK] is True
    assert row[c.PRICE] is None
    assert row[c.REJECT_REASON] is None


# --- stage two on five-row frames ------------------------------------------------------------------


def _no_keys(table: str, column: str) -> pl.Series:
    raise AssertionError(f"no reference expected, asked for {table}.{column}")


def test_identical_rows_collapse_to_the_first() -> None:
    valid = pl.LazyFrame(
        {
            c.SOURCE_ROW: [1, 2, 3, 4, 5],
            c.PRODUCT_ID: ["P1", "P2", "P1", "P1", "P3"],
            c.CATEGORY: ["hats", "bags", "hats", "hats", "bags"],
        }
    )
    table = Table("t", fields=contract.PRODUCTS.fields[:3])
    settled = settle_rows(valid, table, [c.PRODUCT_ID, c.CATEGORY], _no_keys).collect()
    assert settled[c.SOURCE_ROW].to_list() == [1, 2, 5]
    assert settled[c.REJECT_REASON].to_list() == [None, None, None]


def test_a_repeated_key_with_other_content_keeps_its_first_row() -> None:
    valid = pl.LazyFrame(
        {
            c.SOURCE_ROW: [1, 2, 3, 4, 5],
            c.PRODUCT_ID: ["P1", "P2", "P1", "P1", "P2"],
            c.CATEGORY: ["hats", "bags", "hats", "shoes", "bags"],
        }
    )
    settled = settle_rows(valid, contract.PRODUCTS, [c.PRODUCT_ID, c.CATEGORY], _no_keys).collect()
    assert settled[c.SOURCE_ROW].to_list() == [1, 2, 4]
    assert settled[c.REJECT_REASON].to_list() == [
        None,
        None,
        "duplicate product_id 'P1' with different content (first seen in row 1)",
    ]
    assert settled["__conflict"].to_list() == [False, False, True]


def test_references_to_unknown_keys_are_orphans_added_to_any_other_reason() -> None:
    known = {(c.CUSTOMERS, c.CUSTOMER_ID): ["C1", "C2"], (c.PRODUCTS, c.PRODUCT_ID): ["P1"]}
    rows = pl.LazyFrame(
        {
            c.SOURCE_ROW: [1, 2, 3, 4, 5],
            c.CUSTOMER_ID: ["C1", "C9", "C2", "C9", None],
            c.PRODUCT_ID: ["P1", "P1", "P7", "P7", "P1"],
            c.REJECT_REASON: [None, None, None, None, "customer_id: required value is missing"],
            "__problems": [[], [], [], [], ["customer_id: required value is missing"]],
        }
    )
    marked = mark_rows(
        rows, contract.ORDERS, known=lambda t, col: pl.Series(col, known[(t, col)])
    ).collect()
    assert marked[c.REJECT_REASON].to_list() == [
        None,
        "orphan: customer_id 'C9' not in customers",
        "orphan: product_id 'P7' not in products",
        "orphan: customer_id 'C9' not in customers; orphan: product_id 'P7' not in products",
        "customer_id: required value is missing",
    ]
    assert marked["__orphan"].to_list() == [False, True, True, True, False]
    assert marked[c.SOURCE_ROW].to_list() == [1, 2, 3, 4, 5]


def test_the_user_documentation_names_every_table_and_column() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "data-contract.md").read_text(encoding="utf-8")
    for table in contract.TABLES.values():
        assert f"`{table.name}`" in docs
        for spec in table.fields:
            assert f"| `{spec.name}` |" in docs, f"{table.name}.{spec.name} is not documented"


@pytest.mark.parametrize("raw", ["\x1c7", "1e999", "-1e999", "nan", "inf"])
def test_the_live_check_and_the_batch_both_reject_unreadable_or_infinite_numbers(raw: str) -> None:
    """Found by fuzzing: these once crashed `check_value` or slipped through as infinity."""
    from recsvc.domain.contract import ORDERS, check_value

    for name in ("quantity", "unit_price"):
        value, error = check_value(ORDERS.by_name[name], raw)
        assert value is None and error is not None and error.startswith(name)


def test_a_timestamp_pushed_past_year_9999_by_its_offset_is_not_a_date() -> None:
    from recsvc.domain.contract import parse_datetime

    assert parse_datetime("9999-12-31T23:00:00-02:00") is None
