"""The demo data generator end to end: files on disk, the data contract, and the realism that later
features rely on (checked against the latent truths under `_truth/`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.contract import ORDER_STATUSES, TABLE_ORDER, TABLES, TOUCHPOINTS
from recsvc.errors import ConfigError
from training.sources.generate import (
    CHUNK_CUSTOMERS,
    TASTE_GROUP,
    TRUTH_DIR,
    GenerateSummary,
    default_products,
    generate,
)
from training.sources.shop import PRODUCT_GROUP

# More customers than one chunk, so ids and files are checked across chunk boundaries.
CUSTOMERS = CHUNK_CUSTOMERS + 10_000
END_DATE = dt.date(2025, 6, 30)
SURVEY_RANGES = {c.NPS_RESPONSES: (0, 10), c.CSAT_RESPONSES: (1, 5), c.CES_RESPONSES: (1, 7)}
DELIVERY_WORDS = "deliver|arriv|courier|parcel|shipping"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    out = tmp_path_factory.mktemp("shop")
    summary = generate(out, CUSTOMERS, seed=7, end_date=END_DATE, show_progress=False)
    return out, summary


@pytest.fixture(scope="module")
def tables(shop: tuple[Path, GenerateSummary]) -> dict[str, pl.DataFrame]:
    out, _ = shop
    return {name: pl.read_parquet(out / f"{name}.parquet") for name in TABLE_ORDER}


@pytest.fixture(scope="module")
def truth(shop: tuple[Path, GenerateSummary]) -> dict[str, pl.DataFrame]:
    out, _ = shop
    return {
        name: pl.read_parquet(out / TRUTH_DIR / f"{name}.parquet")
        for name in (c.CUSTOMERS, c.PRODUCTS)
    }


def _orders_per_customer(orders: pl.DataFrame) -> pl.DataFrame:
    return orders.group_by(c.CUSTOMER_ID).agg(pl.col(c.ORDER_ID).n_unique().alias("orders"))


# --- files and the contract -----------------------------------------------------------------------


def test_one_file_per_contract_table_and_the_summary_counts_its_rows(
    shop: tuple[Path, GenerateSummary], tables: dict[str, pl.DataFrame]
) -> None:
    out, summary = shop
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(
        f"{name}.parquet" for name in TABLE_ORDER
    )
    assert not (out / "_parts").exists()
    assert summary.rows == {name: frame.height for name, frame in tables.items()}
    assert summary.rows[c.CUSTOMERS] == CUSTOMERS
    assert summary.rows[c.PRODUCTS] == default_products(CUSTOMERS) == 3_000
    # About ten order lines per customer.
    assert 7 * CUSTOMERS < summary.rows[c.ORDERS] < 14 * CUSTOMERS


def test_every_table_has_the_contract_columns_with_valid_values(
    tables: dict[str, pl.DataFrame],
) -> None:
    for name, frame in tables.items():
        spec = TABLES[name]
        contract_columns = [f.name for f in spec.fields]
        if spec.extra_columns:
            assert frame.columns[: len(contract_columns)] == contract_columns
        else:
            assert frame.columns == contract_columns
        for column in spec.required_columns:
            assert frame[column].null_count() == 0, (name, column)
        if spec.key:
            assert frame.select(spec.key).is_unique().all(), name
    products = tables[c.PRODUCTS]
    assert (products[c.PRICE] > 0).all()
    orders = tables[c.ORDERS]
    assert (orders[c.QUANTITY] > 0).all() and (orders[c.UNIT_PRICE] > 0).all()
    assert set(orders[c.STATUS]) == set(ORDER_STATUSES)
    assert orders.is_duplicated().sum() == 0
    for name, (low, high) in SURVEY_RANGES.items():
        scores = tables[name][c.SCORE]
        assert scores.dtype == pl.Int64 and scores.min() == low and scores.max() == high
        assert tables[name][c.TOUCHPOINT].is_in(list(TOUCHPOINTS)).all()


def test_every_reference_points_at_an_existing_row(tables: dict[str, pl.DataFrame]) -> None:
    customers = tables[c.CUSTOMERS][c.CUSTOMER_ID].implode()
    orders = tables[c.ORDERS]
    assert orders[c.CUSTOMER_ID].is_in(customers).all()
    assert orders[c.PRODUCT_ID].is_in(tables[c.PRODUCTS][c.PRODUCT_ID].implode()).all()
    # An order id belongs to one customer.
    assert (
        orders.group_by(c.ORDER_ID).agg(pl.col(c.CUSTOMER_ID).n_unique())[c.CUSTOMER_ID].max() == 1
    )
    order_owner = orders.select(c.ORDER_ID, c.CUSTOMER_ID).unique()
    for name in SURVEY_RANGES:
        survey = tables[name]
        assert survey[c.CUSTOMER_ID].is_in(customers).all()
        about_order = survey.filter(pl.col(c.ORDER_ID).is_not_null())
        assert (
            about_order.join(order_owner, on=[c.ORDER_ID, c.CUSTOMER_ID]).height
            == about_order.height
        )


def test_latent_truths_never_leak_into_the_customer_and_product_tables(
    tables: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]
) -> None:
    latent = (set(truth[c.CUSTOMERS].columns) | set(truth[c.PRODUCTS].columns)) - {
        c.CUSTOMER_ID,
        c.PRODUCT_ID,
    }
    assert not latent & set(tables[c.CUSTOMERS].columns)
    assert not latent & set(tables[c.PRODUCTS].columns)
    assert {c.COUNTRY, c.AGE_BAND, c.SIGNUP_DATE, "loyalty_member", "acquisition_channel"} <= set(
        tables[c.CUSTOMERS].columns
    )


def test_history_spans_two_years_up_to_the_end_date_and_respects_signup(
    tables: dict[str, pl.DataFrame],
) -> None:
    end = dt.datetime.combine(END_DATE, dt.time(23, 59, 59))
    orders = tables[c.ORDERS]
    first, last = orders[c.ORDERED_AT].min(), orders[c.ORDERED_AT].max()
    assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime)
    assert end - dt.timedelta(days=731) <= first < end - dt.timedelta(days=720)
    assert end - dt.timedelta(days=2) < last <= end
    for name in (c.ORDERS, *SURVEY_RANGES):
        for column in (c.ORDERED_AT, c.DELIVERED_AT, c.RESPONDED_AT):
            if column in tables[name].columns:
                latest = tables[name][column].max()
                assert isinstance(latest, dt.datetime) and latest <= end, (name, column)
    signed_up = orders.join(tables[c.CUSTOMERS], on=c.CUSTOMER_ID)
    assert (signed_up[c.ORDERED_AT].dt.date() > signed_up[c.SIGNUP_DATE]).all()


def test_delivery_timestamps_follow_the_order_status(tables: dict[str, pl.DataFrame]) -> None:
    orders = tables[c.ORDERS]
    received = orders.filter(pl.col(c.STATUS).is_in(["delivered", "returned"]))
    pending = orders.filter(pl.col(c.STATUS).is_in(["placed", "cancelled"]))
    assert received[c.DELIVERED_AT].null_count() == 0
    assert pending[c.DELIVERED_AT].null_count() == pending.height
    assert (received[c.DELIVERED_AT] > received[c.ORDERED_AT]).all()
    assert (orders[c.PROMISED_DELIVERY_AT] > orders[c.ORDERED_AT]).all()
    late = (received[c.DELIVERED_AT] > received[c.PROMISED_DELIVERY_AT]).mean()
    assert late is not None and 0.05 < late < 0.35


# --- determinism and formats ----------------------------------------------------------------------


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_the_same_seed_writes_byte_identical_files_and_another_seed_different_ones(
    tmp_path: Path,
) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(tmp_path / name, 1_500, seed, show_progress=False)
    first, again, other = (_file_bytes(tmp_path / name) for name in "abc")
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_text_formats_hold_the_same_rows_as_parquet(tmp_path: Path, fmt: str) -> None:
    text = generate(tmp_path / fmt, 800, 9, fmt=fmt, show_progress=False)
    parquet = generate(tmp_path / "parquet", 800, 9, show_progress=False)
    assert text.rows == parquet.rows
    read = pl.read_csv if fmt == "csv" else pl.read_ndjson
    for name in TABLE_ORDER:
        frame = read(tmp_path / fmt / f"{name}.{fmt}")
        assert frame.height == parquet.rows[name]
        assert frame.columns == pl.read_parquet(tmp_path / "parquet" / f"{name}.parquet").columns


def test_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="customers"):
        generate(tmp_path, 0, 1, show_progress=False)
    with pytest.raises(ConfigError, match="format"):
        generate(tmp_path, 10, 1, fmt="xlsx", show_progress=False)
    with pytest.raises(ConfigError, match="products"):
        generate(tmp_path, 10, 1, products=0, show_progress=False)


def test_the_default_catalogue_is_a_twentieth_of_the_customers_within_bounds() -> None:
    assert default_products(1_000) == 100
    assert default_products(100_000) == 5_000
    assert default_products(1_000_000) == 50_000
    assert default_products(5_000_000) == 50_000


# --- realism --------------------------------------------------------------------------------------


def test_taste_groups_show_in_what_customers_buy(
    tables: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]
) -> None:
    """Customers of one latent taste group buy alike: their category profiles are far closer to each
    other than to other groups', and most lines are products made for their group."""
    lines = (
        tables[c.ORDERS]
        .join(tables[c.PRODUCTS].select(c.PRODUCT_ID, c.CATEGORY), on=c.PRODUCT_ID)
        .join(truth[c.CUSTOMERS].select(c.CUSTOMER_ID, TASTE_GROUP), on=c.CUSTOMER_ID)
        .join(truth[c.PRODUCTS].select(c.PRODUCT_ID, PRODUCT_GROUP), on=c.PRODUCT_ID)
    )
    in_group = (lines[TASTE_GROUP] == lines[PRODUCT_GROUP]).mean()
    assert in_group is not None and in_group > 0.4
    profile = (
        lines.group_by(c.CUSTOMER_ID, TASTE_GROUP, c.CATEGORY)
        .len()
        .pivot(on=c.CATEGORY, index=[c.CUSTOMER_ID, TASTE_GROUP], values="len")
        .fill_null(0)
    )
    counts = profile.drop(c.CUSTOMER_ID, TASTE_GROUP).to_numpy().astype(float)
    enough = counts.sum(axis=1) >= 5
    unit = counts[enough] / np.linalg.norm(counts[enough], axis=1, keepdims=True)
    group = profile[TASTE_GROUP].to_numpy()[enough]
    centroids = np.stack([unit[group == g].mean(axis=0) for g in np.unique(group)])
    # Mean cosine between two customers = dot product of their groups' mean unit vectors.
    similarity = centroids @ centroids.T
    within = np.diag(similarity).mean()
    across = similarity[~np.eye(len(similarity), dtype=bool)].mean()
    assert within > 1.5 * across


def test_popularity_is_skewed_and_some_products_never_sell_or_are_out_of_stock(
    tables: dict[str, pl.DataFrame],
) -> None:
    products, orders = tables[c.PRODUCTS], tables[c.ORDERS]
    lines_per_product = orders.group_by(c.PRODUCT_ID).len().sort("len", descending=True)
    top_tenth = lines_per_product.head(products.height // 10)["len"].sum()
    assert top_tenth > 0.5 * orders.height
    assert 0 < products.height - lines_per_product.height < 0.1 * products.height
    assert 0.02 < 1 - products[c.IN_STOCK].mean() < 0.15


def test_repeat_buyers_and_cold_start_customers_both_exist(tables: dict[str, pl.DataFrame]) -> None:
    customers = tables[c.CUSTOMERS]
    buyers = _orders_per_customer(tables[c.ORDERS])
    assert (buyers["orders"] >= 2).mean() > 0.5
    assert buyers["orders"].max() > 30  # a long tail of frequent buyers
    without_orders = 1 - buyers.height / customers.height
    assert 0.05 < without_orders < 0.35
    with_nps = tables[c.NPS_RESPONSES][c.CUSTOMER_ID].n_unique() / customers.height
    assert 0.3 < with_nps < 0.9


def test_consumables_are_bought_again_at_their_typical_interval(
    tables: dict[str, pl.DataFrame], truth: dict[str, pl.DataFrame]
) -> None:
    consumables = (
        truth[c.PRODUCTS].filter(pl.col("consumable")).select(c.PRODUCT_ID, "reorder_days")
    )
    gaps = (
        tables[c.ORDERS]
        .join(consumables, on=c.PRODUCT_ID)
        .sort(c.CUSTOMER_ID, c.PRODUCT_ID, c.ORDERED_AT)
        .with_columns(
            (
                pl.col(c.ORDERED_AT).diff().over(c.CUSTOMER_ID, c.PRODUCT_ID).dt.total_hours()
                / 24
                / pl.col("reorder_days")
            ).alias("gap_in_intervals")
        )
        .drop_nulls("gap_in_intervals")
    )
    assert gaps.height > 0.05 * tables[c.ORDERS].height
    median = gaps["gap_in_intervals"].median()
    assert median is not None and 0.8 < median < 1.2


def test_late_deliveries_lower_post_delivery_nps_relative_to_pre_delivery(
    tables: dict[str, pl.DataFrame],
) -> None:
    late = (
        tables[c.ORDERS]
        .filter(pl.col(c.DELIVERED_AT).is_not_null())
        .group_by(c.ORDER_ID)
        .agg((pl.col(c.DELIVERED_AT) > pl.col(c.PROMISED_DELIVERY_AT)).any().alias("late"))
    )
    nps = tables[c.NPS_RESPONSES]
    pre = (
        nps.filter(pl.col(c.TOUCHPOINT) == "pre_delivery")
        .group_by(c.CUSTOMER_ID)
        .agg(pl.col(c.SCORE).mean().alias("pre"))
    )
    post = (
        nps.filter(pl.col(c.TOUCHPOINT) == "post_delivery")
        .join(late, on=c.ORDER_ID)
        .join(pre, on=c.CUSTOMER_ID)
    )
    gap = post.group_by("late").agg((pl.col(c.SCORE) - pl.col("pre")).mean().alias("gap"))
    by_late = dict(zip(gap["late"], gap["gap"], strict=True))
    assert by_late[True] < by_late[False] - 1.5


def test_detractor_comments_mention_delivery_more_than_promoter_comments(
    tables: dict[str, pl.DataFrame],
) -> None:
    commented = tables[c.NPS_RESPONSES].filter(pl.col(c.COMMENT).is_not_null())
    mentions = commented.with_columns(
        pl.col(c.COMMENT).str.to_lowercase().str.contains(DELIVERY_WORDS).alias("delivery")
    )
    detractors = mentions.filter(pl.col(c.SCORE) <= 6)["delivery"].mean()
    promoters = mentions.filter(pl.col(c.SCORE) >= 9)["delivery"].mean()
    assert isinstance(detractors, float) and isinstance(promoters, float)
    assert detractors > 1.5 * promoters


def test_every_survey_touchpoint_and_a_csat_ces_panel_are_present(
    tables: dict[str, pl.DataFrame],
) -> None:
    nps = tables[c.NPS_RESPONSES]
    assert set(nps[c.TOUCHPOINT]) == set(TOUCHPOINTS)
    about_order = nps.filter(pl.col(c.TOUCHPOINT) != "relationship")
    assert about_order[c.ORDER_ID].null_count() == 0
    customers = tables[c.CUSTOMERS].height
    for name in (c.CSAT_RESPONSES, c.CES_RESPONSES):
        share = tables[name][c.CUSTOMER_ID].n_unique() / customers
        assert 0.03 < share < 0.4, name
