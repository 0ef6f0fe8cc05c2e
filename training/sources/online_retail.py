"""Importer for the UCI "Online Retail" purchase history: its order lines become the contract's tables.

The purchases are real (Chen, Sain and Guo 2012, CC BY 4.0); the NPS, CSAT and CES answers are
simulated by `training.sources.feedback_model`, and the output's PROVENANCE.md says so. The rules
live in docs/online-retail.md and in code: what is set aside (`training.sources.retail_lines`), how
cancellations become returns (here), how a category is derived (`training.sources.retail_categories`);
what the import reports: `training.sources.retail_report`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLES
from recsvc.errors import DataContractError
from training.progress import Progress
from training.sources.feedback_model import simulate_feedback
from training.sources.retail_categories import category_of
from training.sources.retail_lines import (
    DESCRIPTION,
    GUEST,
    INVALID,
    IS_CANCELLATION,
    NON_PRODUCT,
    SET_ASIDE,
    SOURCE_LINES,
    is_non_product,
    merged_lines,
    read_source,
    typed_lines,
)
from training.sources.retail_report import ImportSummary, provenance_markdown
from training.validate.fields import DTYPES

_LINE = "line"
_CANCEL = "cancellation"
_RANK = "rank"
_CANCELLED_AT = "cancelled_at"
_CANCELLED_QTY = "cancelled_quantity"
_RETURNED_QTY = "returned_quantity"
_DELIVERED = "delivered"
_RETURNED = "returned"


# --- purchases and cancellations ---------------------------------------------------------------


def match_cancellations(
    purchases: pl.DataFrame, cancellations: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Turn cancellations into returned quantities of earlier purchase lines.

    The rule: cancellations are taken in time order; each takes the latest purchase line of the same
    customer and stock code, at or before the cancellation, whose quantity not yet returned covers the
    whole cancelled quantity. A cancellation without such a line is unmatched.

    `purchases` needs `line` (ids increasing with ordered_at, so the latest line has the largest id),
    customer_id, product_id, ordered_at and quantity; `cancellations` needs `cancellation` (ids
    increasing with ordered_at), customer_id, product_id, ordered_at and quantity (positive). Returns
    (line, returned_quantity) for each returned purchase line, and the unmatched cancellations.

    Why rounds: what a cancellation may take depends on what earlier cancellations of the same
    customer and stock code took, so within one (customer, stock code) history matching is sequential;
    different histories never share a line. Round k matches the k-th cancellation of every history
    at once, with joins, so the loop runs as often as the longest chain of cancellations of one
    product by one customer (10 in the full file), not once per row.
    """
    key = [c.CUSTOMER_ID, c.PRODUCT_ID]
    ranked = cancellations.with_columns(
        pl.col(_CANCEL).rank("ordinal").over(key).cast(pl.Int64).sub(1).alias(_RANK)
    )
    candidates = (
        ranked.select(
            *key,
            _CANCEL,
            _RANK,
            pl.col(c.ORDERED_AT).alias(_CANCELLED_AT),
            pl.col(c.QUANTITY).alias(_CANCELLED_QTY),
        )
        .join(purchases.select(*key, _LINE, c.ORDERED_AT, c.QUANTITY), on=key, how="inner")
        .filter(pl.col(c.ORDERED_AT) <= pl.col(_CANCELLED_AT))
        .select(_CANCEL, _RANK, _LINE, c.QUANTITY, _CANCELLED_QTY)
    )
    taken = pl.DataFrame(schema={_LINE: purchases.schema[_LINE], _RETURNED_QTY: pl.Int64})
    matched = [pl.DataFrame(schema={_CANCEL: cancellations.schema[_CANCEL]})]
    rounds = ranked.select(pl.col(_RANK).max().fill_null(-1) + 1).item()
    for rank in range(rounds):
        chosen = (
            candidates.filter(pl.col(_RANK) == rank)
            .join(taken, on=_LINE, how="left")
            .filter(
                pl.col(c.QUANTITY) - pl.col(_RETURNED_QTY).fill_null(0) >= pl.col(_CANCELLED_QTY)
            )
            .group_by(_CANCEL)
            .agg(pl.col(_LINE).max(), pl.col(_CANCELLED_QTY).first())
        )
        matched.append(chosen.select(_CANCEL))
        taken = (
            pl.concat([taken, chosen.select(_LINE, pl.col(_CANCELLED_QTY).alias(_RETURNED_QTY))])
            .group_by(_LINE)
            .agg(pl.col(_RETURNED_QTY).sum())
        )
    unmatched = ranked.join(pl.concat(matched), on=_CANCEL, how="anti").drop(_RANK)
    return taken.sort(_LINE), unmatched.sort(_CANCEL)


# --- contract tables ------------------------------------------------------------------------------


def contract_frame(table: str, frame: pl.LazyFrame) -> pl.LazyFrame:
    """The table's contract columns, in contract order and type; absent optional columns are null."""
    names = frame.collect_schema().names()
    return frame.select(
        (pl.col(f.name) if f.name in names or f.required else pl.lit(None))
        .cast(DTYPES[f.kind])
        .alias(f.name)
        for f in TABLES[table].fields
    )


def products_table(lines: pl.LazyFrame) -> pl.LazyFrame:
    """One row per stock code sold at least once (guest sales count: they are real sales of it):
    name = its most common description (ties: alphabetical), price = its median unit price."""
    sales = lines.filter(
        pl.col(SET_ASIDE).is_null() | (pl.col(SET_ASIDE) == GUEST),
        ~pl.col(IS_CANCELLATION),
        ~is_non_product(),
        pl.col(c.QUANTITY) > 0,
        pl.col(c.UNIT_PRICE) > 0,
        pl.col(c.ORDERED_AT).is_not_null(),
    )
    names = (
        sales.filter(pl.col(DESCRIPTION).is_not_null())
        .group_by(c.PRODUCT_ID, DESCRIPTION)
        .agg(pl.len())
        .sort([c.PRODUCT_ID, "len", DESCRIPTION], descending=[False, True, False])
        .group_by(c.PRODUCT_ID, maintain_order=True)
        .agg(pl.col(DESCRIPTION).first().alias(c.NAME))
    )
    products = (
        sales.group_by(c.PRODUCT_ID)
        .agg(pl.col(c.UNIT_PRICE).median().alias(c.PRICE))
        .join(names, on=c.PRODUCT_ID, how="left")
        .with_columns(category_of(pl.col(c.NAME)).alias(c.CATEGORY), pl.lit(True).alias(c.IN_STOCK))
        .sort(c.PRODUCT_ID)
    )
    return contract_frame(c.PRODUCTS, products)


def order_lines_table(purchases: pl.DataFrame, returned: pl.DataFrame) -> pl.LazyFrame:
    """Purchase lines with their returns applied: a fully returned line becomes `returned`, a partly
    returned one is split into a `returned` line (the cancelled quantity) and a `delivered` line (the
    rest), both keeping the invoice and its time. Delivery dates are not in the source: null."""
    lines = (
        purchases.lazy()
        .join(returned.lazy(), on=_LINE, how="left")
        .with_columns(pl.col(_RETURNED_QTY).fill_null(0))
    )
    returned_part = lines.filter(pl.col(_RETURNED_QTY) > 0).with_columns(
        pl.col(_RETURNED_QTY).alias(c.QUANTITY), pl.lit(_RETURNED).alias(c.STATUS)
    )
    delivered_part = lines.filter(pl.col(c.QUANTITY) > pl.col(_RETURNED_QTY)).with_columns(
        (pl.col(c.QUANTITY) - pl.col(_RETURNED_QTY)).alias(c.QUANTITY),
        pl.lit(_DELIVERED).alias(c.STATUS),
    )
    orders = pl.concat([delivered_part, returned_part]).sort(
        c.ORDERED_AT, c.ORDER_ID, c.PRODUCT_ID, c.STATUS
    )
    return contract_frame(c.ORDERS, orders)


def customers_table(lines: pl.LazyFrame, orders: pl.LazyFrame) -> pl.LazyFrame:
    """One row per customer with an order line: signup_date = day of the first purchase, country =
    the country on most of their kept lines (ties: alphabetical). No demographics are invented, so
    age_band is null."""
    countries = (
        lines.filter(pl.col(SET_ASIDE).is_null(), pl.col(c.COUNTRY).is_not_null())
        .group_by(c.CUSTOMER_ID, c.COUNTRY)
        .agg(pl.len())
        .sort([c.CUSTOMER_ID, "len", c.COUNTRY], descending=[False, True, False])
        .group_by(c.CUSTOMER_ID, maintain_order=True)
        .agg(pl.col(c.COUNTRY).first())
    )
    customers = (
        orders.group_by(c.CUSTOMER_ID)
        .agg(pl.col(c.ORDERED_AT).min().dt.date().alias(c.SIGNUP_DATE))
        .join(countries, on=c.CUSTOMER_ID, how="left")
        .sort(c.CUSTOMER_ID)
    )
    return contract_frame(c.CUSTOMERS, customers)


# --- the import -----------------------------------------------------------------------------------


def import_online_retail(
    src: Path, out_dir: Path, *, seed: int = 0, show_progress: bool = True
) -> ImportSummary:
    """Import an Online Retail (or Online Retail II) file into `out_dir`: contract Parquet tables,
    simulated NPS/CSAT/CES responses, PROVENANCE.md and the machine-readable _import_report.json."""
    src, out_dir = Path(src), Path(out_dir)
    progress = Progress("import-online-retail", unit="lines", enabled=show_progress)
    started = time.perf_counter()
    raw, release = read_source(src)
    matched = _matched_lines(typed_lines(raw, src).collect(), src)
    tables = _contract_tables(matched, seed)
    summary = _summary(src, release, seed, matched, tables, time.perf_counter() - started)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.write_parquet(out_dir / f"{name}.parquet")
    report = json.dumps(msgspec.to_builtins(summary), indent=2)
    (out_dir / "_import_report.json").write_text(report + "\n", encoding="utf-8")
    (out_dir / "PROVENANCE.md").write_text(provenance_markdown(summary), encoding="utf-8")
    progress.done = matched.lines.height
    progress.finish()
    return summary


@dataclass(frozen=True, slots=True)
class _Matched:
    """The source lines, typed and marked; the kept ones merged; cancellations applied as returns."""

    lines: pl.DataFrame  # every source line, `set_aside` saying why one is not kept
    purchases: pl.DataFrame  # merged purchase lines, numbered (`line`)
    cancellations: pl.DataFrame  # merged cancellation lines, numbered (`cancellation`)
    returned: pl.DataFrame  # line, returned_quantity
    unmatched: pl.DataFrame  # cancellations with no purchase to return


def _matched_lines(lines: pl.DataFrame, src: Path) -> _Matched:
    lazy_lines = lines.lazy()
    purchases, cancellations = pl.collect_all(
        [
            merged_lines(lazy_lines, cancellations=False),
            merged_lines(lazy_lines, cancellations=True),
        ]
    )
    if purchases.is_empty():
        raise DataContractError(
            f"{src}: no purchase line with a customer id and a product to import"
        )
    purchases = purchases.with_row_index(_LINE)
    cancellations = cancellations.with_row_index(_CANCEL)
    returned, unmatched = match_cancellations(purchases, cancellations)
    return _Matched(lines, purchases, cancellations, returned, unmatched)


def _contract_tables(matched: _Matched, seed: int) -> dict[str, pl.DataFrame]:
    """The contract's tables: customers, products and orders from the file, simulated answers."""
    lazy_lines = matched.lines.lazy()
    orders_lf = order_lines_table(matched.purchases, matched.returned)
    orders, customers, products = pl.collect_all(
        [orders_lf, customers_table(lazy_lines, orders_lf), products_table(lazy_lines)]
    )
    feedback = simulate_feedback(orders, customers, seed=seed)
    tables = {
        c.CUSTOMERS: customers,
        c.PRODUCTS: products,
        c.ORDERS: orders,
        c.NPS_RESPONSES: feedback.nps_responses,
        c.CSAT_RESPONSES: feedback.csat_responses,
        c.CES_RESPONSES: feedback.ces_responses,
    }
    return {name: contract_frame(name, frame.lazy()).collect() for name, frame in tables.items()}


def _summary(
    src: Path,
    release: str,
    seed: int,
    matched: _Matched,
    tables: dict[str, pl.DataFrame],
    seconds: float,
) -> ImportSummary:
    lines, purchases, cancellations = matched.lines, matched.purchases, matched.cancellations
    returned, unmatched, orders = matched.returned, matched.unmatched, tables[c.ORDERS]
    reasons = dict(lines.get_column(SET_ASIDE).value_counts().iter_rows())
    non_product = lines.filter(pl.col(SET_ASIDE) == NON_PRODUCT).get_column(c.PRODUCT_ID)
    statuses = orders.get_column(c.STATUS)
    cancellation_lines = int(cancellations.get_column(SOURCE_LINES).sum())
    unmatched_lines = int(unmatched.get_column(SOURCE_LINES).sum())
    purchase_lines = int(purchases.get_column(SOURCE_LINES).sum())
    day = pl.col(c.ORDERED_AT).dt.strftime("%Y-%m-%d")
    first, last = orders.select(day.min().alias("first"), day.max().alias("last")).row(0)
    return ImportSummary(
        source=src.name,
        source_sha256=_sha256(src),
        release=release,
        seed=seed,
        first_order_date=first,
        last_order_date=last,
        lines_read=lines.height,
        guest_lines=reasons.get(GUEST, 0),
        non_product_lines=reasons.get(NON_PRODUCT, 0),
        non_product_by_code=dict(non_product.value_counts(sort=True).iter_rows()),
        invalid_lines=reasons.get(INVALID, 0),
        purchase_lines=purchase_lines,
        cancellation_lines=cancellation_lines,
        matched_cancellation_lines=cancellation_lines - unmatched_lines,
        unmatched_cancellation_lines=unmatched_lines,
        unmatched_cancelled_quantity=int(unmatched.get_column(c.QUANTITY).sum()),
        merged_duplicate_lines=purchase_lines
        - purchases.height
        + cancellation_lines
        - cancellations.height,
        customers=tables[c.CUSTOMERS].height,
        products=tables[c.PRODUCTS].height,
        invoices=orders.get_column(c.ORDER_ID).n_unique(),
        order_lines=orders.height,
        delivered_lines=int((statuses == _DELIVERED).sum()),
        returned_lines=int((statuses == _RETURNED).sum()),
        split_lines=returned.join(purchases, on=_LINE)
        .filter(pl.col(_RETURNED_QTY) < pl.col(c.QUANTITY))
        .height,
        returned_quantity=int(returned.get_column(_RETURNED_QTY).sum()),
        nps_responses=tables[c.NPS_RESPONSES].height,
        csat_responses=tables[c.CSAT_RESPONSES].height,
        ces_responses=tables[c.CES_RESPONSES].height,
        seconds=round(seconds, 2),
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
