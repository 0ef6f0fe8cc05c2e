"""The lines of an Online Retail file: read in any of its formats and header spellings, typed, each
marked with why it is set aside (`set_aside`), and the kept ones merged per invoice and stock code
(the rules: docs/online-retail.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.contract import DATETIME_FORMATS
from recsvc.errors import DataContractError

# Source columns by the name we give them: (Online Retail spelling, Online Retail II spelling).
# Headers are compared without case, spaces or punctuation ("Customer ID" is "CustomerID").
DESCRIPTION = "description"
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    c.ORDER_ID: ("InvoiceNo", "Invoice"),
    c.PRODUCT_ID: ("StockCode",),
    DESCRIPTION: ("Description",),
    c.QUANTITY: ("Quantity",),
    c.ORDERED_AT: ("InvoiceDate",),
    c.UNIT_PRICE: ("UnitPrice", "Price"),
    c.CUSTOMER_ID: ("CustomerID", "Customer ID"),
    c.COUNTRY: ("Country",),
}
READERS = (".parquet", ".csv", ".xlsx")

# Stock codes that are not goods, compared upper-cased: postage (POST, DOT), carriage (C2), manual
# entries (M), discounts (D), samples (S), bad-debt adjustments (B, and ADJUST* in Online Retail II),
# bank and marketplace fees, Cancer Research UK commission, and PADS (cushion pads sold at 0.001).
NON_PRODUCT_CODES: frozenset[str] = frozenset(
    {"POST", "DOT", "C2", "M", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS"}
    | {"ADJUST", "ADJUST2"}
)
# Prefixes of non-product codes: gift vouchers (gift_0001_20, ...) and test lines (TEST001, ...).
NON_PRODUCT_PREFIXES: tuple[str, ...] = ("GIFT_", "TEST")
# Services booked under ordinary-looking codes (23444 "Next Day Carriage", 23574 "PACKING CHARGE", a
# gift voucher under 22016): a line whose whole description names a service is not a product either,
# while a "CARRIAGE CLOCK" still is.
NON_PRODUCTDESCRIPTION = (
    r"(?i)^(?:NEXT DAY CARRIAGE|CARRIAGE|DOTCOM POSTAGE|POSTAGE|PACKING CHARGE)$|\bGIFT VOUCHER\b"
)

# Why a source line is set aside (`set_aside`), checked in this order, the first that applies wins:
# no customer id, then a non-product code, then invalid values.
GUEST = "guest"
NON_PRODUCT = "non_product"
INVALID = "invalid"

# Slashed dates appear in CSV exports of the file, month-first ("12/1/2010 8:26") or day-first.
# Whichever format (of these and the contract's ISO spellings) parses most of the column is used; a
# day above 12 settles month-first against day-first.
SLASHED_DATETIME_FORMATS = (
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
)

# Columns of the typed lines besides the contract's.
SET_ASIDE = "set_aside"  # why the line is not kept (GUEST, NON_PRODUCT, INVALID), null when kept
IS_CANCELLATION = "is_cancellation"
SOURCE_LINES = "source_lines"  # of a merged line: how many source lines it stands for


# --- reading --------------------------------------------------------------------------------------


def _header_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def _resolve_columns(names: list[str], src: Path) -> dict[str, str]:
    """Map each source column (in any accepted spelling) to our name; a missing one is an error."""
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(_header_key(name), name)
    renames: dict[str, str] = {}
    for ours, spellings in SOURCE_COLUMNS.items():
        found = next((by_key[k] for k in map(_header_key, spellings) if k in by_key), None)
        if found is None:
            also = f" (or {' / '.join(spellings[1:])})" if len(spellings) > 1 else ""
            raise DataContractError(f"{src}: missing column {spellings[0]}{also}")
        renames[found] = ours
    return renames


def _release(names: list[str]) -> str:
    keys = {_header_key(n) for n in names}
    return "Online Retail II" if "invoice" in keys and "invoiceno" not in keys else "Online Retail"


def read_source(src: Path) -> tuple[pl.DataFrame, str]:
    """The file's eight columns under our names, and which release it is. CSV and XLSX are read as
    text and typed later, so a column that looks numeric in one sheet and textual in another cannot
    break the read. Every sheet of a workbook is read: Online Retail II has one per year."""
    suffix = src.suffix.lower()
    if suffix not in READERS:
        expected = ", ".join(READERS)
        raise DataContractError(f"{src}: unsupported file type {src.suffix!r}, expected {expected}")
    if not src.is_file():
        raise DataContractError(f"{src}: no such file")
    try:
        if suffix == ".parquet":
            frames = [pl.read_parquet(src)]
        elif suffix == ".csv":
            frames = [pl.read_csv(src, infer_schema=False)]
        else:
            sheets = pl.read_excel(src, sheet_id=0, infer_schema_length=0)
            frames = list(sheets.values()) if isinstance(sheets, dict) else [sheets]
    except Exception as exc:  # polars, fastexcel and the OS raise many kinds: all mean "unreadable"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataContractError(f"{src}: cannot read the file ({detail})") from exc
    parts = []
    for frame in frames:
        renames = _resolve_columns(frame.columns, src)
        parts.append(frame.select(pl.col(old).alias(new) for old, new in renames.items()))
    release = _release(frames[0].columns)
    if len(parts) == 1:
        return parts[0], release
    return pl.concat([p.with_columns(pl.all().cast(pl.String)) for p in parts]), release


# --- typing and setting aside ---------------------------------------------------------------------


def _text(name: str) -> pl.Expr:
    expr = pl.col(name).cast(pl.String).str.strip_chars()
    return pl.when(expr == "").then(None).otherwise(expr)


def _number(name: str, schema: pl.Schema) -> pl.Expr:
    if schema[name].is_numeric():
        return pl.col(name).cast(pl.Float64)
    return _text(name).cast(pl.Float64, strict=False)


def _whole_number(name: str, schema: pl.Schema) -> pl.Expr:
    """Integer values; a fractional or unreadable value becomes null (and so the line invalid)."""
    if schema[name].is_integer():
        return pl.col(name).cast(pl.Int64)
    value = _number(name, schema)
    return pl.when(value == value.round(0)).then(value.cast(pl.Int64, strict=False))


def _customer_id(schema: pl.Schema) -> pl.Expr:
    """The customer id as the text of the integer: 17850, 17850.0 and "17850" are one customer."""
    dtype = schema[c.CUSTOMER_ID]
    if dtype.is_integer():
        return pl.col(c.CUSTOMER_ID).cast(pl.String)
    if dtype.is_float():
        return _whole_number(c.CUSTOMER_ID, schema).cast(pl.String)
    return _text(c.CUSTOMER_ID).str.replace(r"\.0*$", "")


def _datetime_format(values: pl.Series) -> str | None:
    """The format, of the contract's ISO spellings and the slashed ones, that parses most values."""
    distinct = values.drop_nulls().str.strip_chars().unique()
    best, best_count = None, 0
    for fmt in (*DATETIME_FORMATS, *SLASHED_DATETIME_FORMATS):
        count = distinct.str.to_datetime(fmt, strict=False, time_unit="us").count()
        if count > best_count:
            best, best_count = fmt, count
    return best


def _ordered_at(raw: pl.DataFrame, src: Path) -> pl.Expr:
    """Invoice times as naive datetimes (the shop's UK time, taken as UTC like any naive time)."""
    dtype = raw.schema[c.ORDERED_AT]
    col = pl.col(c.ORDERED_AT)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return col.cast(pl.Datetime("us"))
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us"))
    text = raw.get_column(c.ORDERED_AT).cast(pl.String)
    fmt = _datetime_format(text)
    if fmt is None:
        if text.drop_nulls().len() == 0:
            return pl.lit(None, dtype=pl.Datetime("us"))
        example = text.drop_nulls()[0]
        raise DataContractError(
            f"{src}: column InvoiceDate: no readable date-time (e.g. 2010-12-01 08:26:00), got {example!r}"
        )
    parsed = _text(c.ORDERED_AT).str.to_datetime(fmt, strict=False, time_unit="us")
    if "%:z" in fmt:
        parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return parsed


def is_non_product() -> pl.Expr:
    code = pl.col(c.PRODUCT_ID)
    return (
        code.is_in(sorted(NON_PRODUCT_CODES))
        | pl.any_horizontal(code.str.starts_with(prefix) for prefix in NON_PRODUCT_PREFIXES)
        | pl.col(DESCRIPTION).str.contains(NON_PRODUCTDESCRIPTION).fill_null(False)
    ).fill_null(False)


def typed_lines(raw: pl.DataFrame, src: Path) -> pl.LazyFrame:
    """Type the source lines and mark each one set aside with why (`set_aside`, null when kept).

    Stock codes are upper-cased: the file spells some codes both ways ("85123a", "85123A") for one
    product. Country "Unspecified" becomes null. A cancellation's invoice number starts with "C"; it
    needs a negative quantity, any other line a positive one, and every line a positive price.
    """
    schema = raw.schema
    country = _text(c.COUNTRY)
    lines = raw.lazy().select(
        _text(c.ORDER_ID).str.to_uppercase().alias(c.ORDER_ID),
        _text(c.PRODUCT_ID).str.to_uppercase().alias(c.PRODUCT_ID),
        _text(DESCRIPTION).alias(DESCRIPTION),
        _whole_number(c.QUANTITY, schema).alias(c.QUANTITY),
        _ordered_at(raw, src).alias(c.ORDERED_AT),
        _number(c.UNIT_PRICE, schema).alias(c.UNIT_PRICE),
        _customer_id(schema).alias(c.CUSTOMER_ID),
        pl.when(country != "Unspecified").then(country).alias(c.COUNTRY),
    )
    cancellation = pl.col(c.ORDER_ID).str.starts_with("C").fill_null(False)
    quantity = pl.col(c.QUANTITY)
    required = pl.col(c.ORDER_ID, c.PRODUCT_ID, c.QUANTITY, c.UNIT_PRICE, c.ORDERED_AT)
    invalid = (
        pl.any_horizontal(required.is_null())
        | (pl.col(c.UNIT_PRICE) <= 0)
        | pl.when(cancellation).then(quantity >= 0).otherwise(quantity <= 0)
    ).fill_null(True)
    return lines.with_columns(
        cancellation.alias(IS_CANCELLATION),
        pl.when(pl.col(c.CUSTOMER_ID).is_null())
        .then(pl.lit(GUEST))
        .when(is_non_product())
        .then(pl.lit(NON_PRODUCT))
        .when(invalid)
        .then(pl.lit(INVALID))
        .alias(SET_ASIDE),
    )


# --- purchases and cancellations ------------------------------------------------------------------


def merged_lines(lines: pl.LazyFrame, *, cancellations: bool) -> pl.LazyFrame:
    """Kept lines of one kind, one per (invoice, stock code), oldest first, with a positive quantity.

    Lines repeating a code within an invoice are summed, priced at their quantity-weighted mean (to
    1e-6) so the invoice total is unchanged, and every line is dated at its invoice's first timestamp
    (a few invoices span two minutes). An invoice belongs to one customer.
    """
    kept = lines.filter(pl.col(SET_ASIDE).is_null(), pl.col(IS_CANCELLATION) == cancellations)
    quantity = pl.col(c.QUANTITY).abs()
    return (
        kept.with_columns(pl.col(c.ORDERED_AT).min().over(c.ORDER_ID))
        .group_by(c.ORDER_ID, c.PRODUCT_ID)
        .agg(
            pl.col(c.CUSTOMER_ID).first(),
            quantity.sum().alias(c.QUANTITY),
            # Rounded: float sums may differ in the last bit with the order polars adds them in.
            ((quantity * pl.col(c.UNIT_PRICE)).sum() / quantity.sum()).round(6).alias(c.UNIT_PRICE),
            pl.col(c.ORDERED_AT).first(),
            pl.len().alias(SOURCE_LINES),
        )
        .sort(c.ORDERED_AT, c.ORDER_ID, c.PRODUCT_ID)
    )
