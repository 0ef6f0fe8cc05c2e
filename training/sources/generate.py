"""The demo data generator: a simulated shop whose customers, catalogue, orders and surveys follow a
documented latent model (docs/demo-data.md), so every later feature has something true to find.

Customers are generated in chunks with vectorised numpy, each chunk written as parquet parts, then the
parts are stream-combined into one file per contract table; latent truths go to `_truth/`.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.contract import TABLE_ORDER
from recsvc.errors import ConfigError
from training.progress import Progress
from training.sources.feedback_model import SATISFACTION, US_PER_DAY, US_PER_HOUR, simulate_feedback

FORMATS = ("parquet", "csv", "ndjson")
DEFAULT_END_DATE = dt.date(2025, 12, 31)
CHUNK_CUSTOMERS = 50_000
HISTORY_DAYS = 730
TRUTH_DIR = "_truth"
PARTS_DIR = "_parts"

# Extra customer attribute columns (the contract keeps extra customer columns as strings).
LOYALTY_MEMBER = "loyalty_member"
ACQUISITION_CHANNEL = "acquisition_channel"

# Latent columns, written only under _truth/.
TASTE_GROUP = "taste_group"
SECOND_TASTE_GROUP = "second_taste_group"
ORDERS_PER_YEAR = "orders_per_year"
PRODUCT_GROUP = "product_group"
PRICE_BAND = "price_band"
CONSUMABLE = "consumable"
REORDER_DAYS = "reorder_days"
POPULARITY = "popularity"

TASTE_GROUPS = 12
# Where a line's product comes from: the customer's own taste group, their second one, or the shop's
# overall bestsellers.
_OWN_TASTE, _SECOND_TASTE = 0.75, 0.10
# How much more a taste group favours products made for it than any other product.
_IN_GROUP_AFFINITY = 30.0
# Median orders per year of an active customer (log-normal spread below) and extra basket lines.
_ORDERS_PER_YEAR_MEDIAN = 2.0
_ORDERS_PER_YEAR_SIGMA = 0.75
_ORDERS_PER_YEAR_MAX = 40.0
_EXTRA_LINES_MEAN = 1.2
_NEVER_BUYS = 0.04
_CANCELLED = 0.025
_REORDER_SHARE = 0.45


@dataclass(frozen=True, slots=True)
class _Category:
    name: str
    base_price: float
    consumable: bool
    return_rate: float
    nouns: tuple[str, ...]


# name, base price, consumable (reordered at an interval), return rate, product nouns for names.
# fmt: off
_CATEGORIES: tuple[_Category, ...] = (
    _Category("electronics", 160.0, False, 0.07, ("Headphones", "Speaker", "Charger", "Monitor")),
    _Category("home & kitchen", 40.0, False, 0.05, ("Kettle", "Pan", "Knife Set", "Blender", "Lamp")),
    _Category("fashion", 45.0, False, 0.16, ("Jacket", "Sneakers", "Jeans", "Shirt", "Dress")),
    _Category("beauty", 16.0, True, 0.03, ("Face Cream", "Shampoo", "Serum", "Body Lotion")),
    _Category("sports & outdoors", 55.0, False, 0.06, ("Yoga Mat", "Tent", "Water Bottle")),
    _Category("books", 15.0, False, 0.02, ("Novel", "Cookbook", "Travel Guide", "Biography")),
    _Category("toys & games", 28.0, False, 0.04, ("Puzzle", "Board Game", "Building Set")),
    _Category("grocery", 7.0, True, 0.01, ("Coffee Beans", "Green Tea", "Olive Oil", "Granola")),
    _Category("pet supplies", 24.0, True, 0.02, ("Dog Food", "Cat Litter", "Cat Food")),
    _Category("garden", 32.0, False, 0.04, ("Seeds", "Garden Hose", "Planter", "Pruning Shears")),
    _Category("health", 14.0, True, 0.02, ("Vitamins", "Protein Powder", "Toothpaste")),
    _Category("baby", 22.0, True, 0.03, ("Diapers", "Baby Wipes", "Baby Bottle", "Baby Food")),
    _Category("office", 12.0, True, 0.03, ("Printer Paper", "Ink Cartridge", "Notebook", "Pens")),
    _Category("automotive", 38.0, False, 0.05, ("Motor Oil", "Car Charger", "Wiper Blades")),
)
# fmt: on
_PRICE_BANDS = ("budget", "mid", "premium")
_PRICE_BAND_FACTOR = np.array([0.55, 1.0, 2.1])
_MODEL_NAMES = ("Classic", "Pro", "Lite", "Plus", "Max", "Mini", "Eco", "Original", "Select", "Go")
_BRAND_SYLLABLES = (
    "nor", "vik", "al", "ta", "lu", "mo", "sen", "ka", "ri", "zo", "bel", "ver", "da", "fin", "or",
    "ex", "pa", "lin", "so", "te", "mar", "qu", "el", "ion",
)  # fmt: skip
_COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "AT", "US")
_COUNTRY_WEIGHTS = np.array([0.30, 0.14, 0.13, 0.08, 0.08, 0.08, 0.06, 0.04, 0.04, 0.05])
# Extra promised shipping days and extra chance of a late delivery, by country (the shop ships from DE).
_COUNTRY_SHIPPING_DAYS = np.array([0, 1, 2, 1, 2, 2, 1, 2, 0, 5])
_COUNTRY_LATE_EXTRA = np.array([0.0, 0.02, 0.05, 0.01, 0.03, 0.04, 0.02, 0.02, 0.0, 0.08])
_AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_AGE_WEIGHTS = np.array([0.12, 0.26, 0.24, 0.18, 0.12, 0.08])
_CHANNELS = ("organic_search", "paid_search", "social", "referral", "email", "marketplace")
_CHANNEL_WEIGHTS = np.array([0.30, 0.22, 0.18, 0.10, 0.08, 0.12])
# Referred and newsletter customers buy more often; social-ad customers less.
_CHANNEL_RATE_FACTOR = np.array([1.0, 0.9, 0.7, 1.3, 1.25, 0.85])


class GenerateSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What `generate` wrote: rows per contract table, the folder, the format and the seconds taken."""

    out_dir: str
    format: str
    rows: dict[str, int]
    seconds: float


@dataclass(frozen=True, slots=True)
class _Catalogue:
    """The product catalogue and the latent taste structure shared by every chunk."""

    products: pl.DataFrame  # contract columns
    truth: pl.DataFrame
    product_id: pl.Series
    price: np.ndarray
    category: np.ndarray
    consumable: np.ndarray
    reorder_days: np.ndarray
    group_cdf: np.ndarray  # (TASTE_GROUPS, P): purchase choice by taste group
    global_cdf: np.ndarray  # (P,): the shop's bestsellers
    group_share: np.ndarray  # taste group sizes
    group_age: np.ndarray  # (TASTE_GROUPS, len(_AGE_BANDS))
    country_mood: np.ndarray


@dataclass(frozen=True, slots=True)
class _Window:
    start_us: int
    end_us: int  # the last instant of end_date: nothing happens later

    @property
    def as_of(self) -> dt.datetime:
        return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=self.end_us)


def default_products(customers: int) -> int:
    """About one product per twenty customers, between 100 and 50,000."""
    return min(max(customers // 20, 100), 50_000)


def generate(
    out_dir: Path,
    customers: int,
    seed: int,
    *,
    products: int | None = None,
    fmt: str = "parquet",
    end_date: dt.date = DEFAULT_END_DATE,
    show_progress: bool = True,
) -> GenerateSummary:
    """Write a simulated shop to `out_dir`: one `<table>.<fmt>` file per contract table, plus latent
    truths under `_truth/`. Byte-identical output for the same arguments."""
    if customers < 1:
        raise ConfigError(f"customers must be at least 1, got {customers}")
    if products is not None and products < 1:
        raise ConfigError(f"products must be at least 1, got {products}")
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    started = time.perf_counter()
    n_products = products if products is not None else default_products(customers)
    end = dt.datetime.combine(end_date, dt.time(23, 59, 59))
    end_us = (end - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
    window = _Window(start_us=end_us - HISTORY_DAYS * US_PER_DAY, end_us=end_us)

    out_dir.mkdir(parents=True, exist_ok=True)
    parts = out_dir / PARTS_DIR
    shutil.rmtree(parts, ignore_errors=True)
    truth_dir = out_dir / TRUTH_DIR
    truth_dir.mkdir(exist_ok=True)

    catalogue = _catalogue(n_products, seed)
    rows = {c.PRODUCTS: catalogue.products.height}
    _write_part(catalogue.products, parts / c.PRODUCTS, 0)
    catalogue.truth.write_parquet(truth_dir / f"{c.PRODUCTS}.parquet")

    progress = Progress("generate", total=customers, unit="customers", enabled=show_progress)
    order_offset = 0
    for chunk, low in enumerate(range(0, customers, CHUNK_CUSTOMERS)):
        high = min(low + CHUNK_CUSTOMERS, customers)
        tables, truth = _chunk(catalogue, window, seed, chunk, low, high, order_offset)
        order_offset += tables[c.ORDERS][c.ORDER_ID].n_unique()
        for name, frame in tables.items():
            rows[name] = rows.get(name, 0) + frame.height
            _write_part(frame, parts / name, chunk)
        _write_part(truth, parts / TRUTH_DIR, chunk)
        progress.advance(high - low)
    progress.finish()

    combining = Progress(
        "generate: combine", total=len(TABLE_ORDER), unit="tables", enabled=show_progress
    )
    for name in TABLE_ORDER:
        _combine(parts / name, out_dir / f"{name}.{fmt}", fmt)
        combining.advance()
    _combine(parts / TRUTH_DIR, truth_dir / f"{c.CUSTOMERS}.parquet", "parquet")
    combining.finish()
    shutil.rmtree(parts)
    return GenerateSummary(
        out_dir=str(out_dir),
        format=fmt,
        rows={name: rows[name] for name in TABLE_ORDER},
        seconds=round(time.perf_counter() - started, 3),
    )


# --- seeds and files ------------------------------------------------------------------------------


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per purpose and chunk, derived from the seed (never global state)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def _write_part(frame: pl.DataFrame, folder: Path, chunk: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(folder / f"part-{chunk:05d}.parquet")


def _combine(folder: Path, target: Path, fmt: str) -> None:
    """Stream the parts, in chunk order, into one file."""
    lazy = pl.scan_parquet(sorted(folder.glob("part-*.parquet")))
    if fmt == "parquet":
        lazy.sink_parquet(target)
    elif fmt == "csv":
        # Timestamps are whole seconds; ISO 8601 without a fraction is one of the contract's spellings.
        lazy.sink_csv(target, datetime_format="%Y-%m-%dT%H:%M:%S")
    else:
        lazy.sink_ndjson(target)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """Readable ids such as C00000042: a prefix and a zero-padded number."""
    digits = pl.Series(numbers, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str(pl.lit(prefix), digits)).to_series()


def _to_datetime(us: np.ndarray) -> pl.Series:
    """Microseconds since the epoch, truncated to whole seconds like a shop system would store them."""
    return pl.Series((us // 1_000_000) * 1_000_000, dtype=pl.Int64).cast(pl.Datetime("us"))


def _pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws: index i with probability proportional to cdf[i] - cdf[i-1]."""
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)


def _pick_rows(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse-CDF draws for small per-row distributions (n, k)."""
    return np.minimum(
        (cdf_rows < (u * cdf_rows[:, -1])[:, None]).sum(axis=1), cdf_rows.shape[1] - 1
    )


# --- the catalogue --------------------------------------------------------------------------------


def _brand_names(rng: np.random.Generator, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    syllables = np.array(_BRAND_SYLLABLES)
    while len(names) < count:
        parts = syllables[rng.integers(0, len(syllables), rng.integers(2, 4))]
        name = "".join(parts).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _catalogue(n_products: int, seed: int) -> _Catalogue:
    rng = _rng(seed, 0)
    n_cat, n_bands = len(_CATEGORIES), len(_PRICE_BANDS)
    # Each taste group loves two or three categories, has a price level and a few favourite brands.
    group_share = rng.dirichlet(np.full(TASTE_GROUPS, 8.0))
    group_category = rng.dirichlet(np.full(n_cat, 0.12), TASTE_GROUPS)
    group_band = rng.dirichlet(np.full(n_bands, 0.8), TASTE_GROUPS)
    group_age = 0.4 * _AGE_WEIGHTS + 0.6 * rng.dirichlet(
        np.full(len(_AGE_BANDS), 1.0), TASTE_GROUPS
    )
    brands_per_category = int(np.clip(n_products // (n_cat * 40), 4, 40))
    group_brand = rng.dirichlet(np.full(brands_per_category, 0.4), (TASTE_GROUPS, n_cat))
    brand_names = pl.Series(_brand_names(rng, n_cat * brands_per_category), dtype=pl.String)

    product_group = rng.choice(TASTE_GROUPS, n_products, p=group_share)
    category = _pick_rows(np.cumsum(group_category[product_group], axis=1), rng.random(n_products))
    band = _pick_rows(np.cumsum(group_band[product_group], axis=1), rng.random(n_products))
    brand_in_category = _pick_rows(
        np.cumsum(group_brand[product_group, category], axis=1), rng.random(n_products)
    )
    brand = category * brands_per_category + brand_in_category
    base_price = np.array([cat.base_price for cat in _CATEGORIES])
    raw_price = (
        base_price[category] * _PRICE_BAND_FACTOR[band] * rng.lognormal(0.0, 0.3, n_products)
    )
    price = np.maximum(np.floor(raw_price) + 0.99, 0.99)

    consumable_category = np.array([cat.consumable for cat in _CATEGORIES])
    consumable = consumable_category[category] & (rng.random(n_products) < 0.7)
    reorder_days = np.where(
        consumable, np.clip(rng.lognormal(np.log(30.0), 0.45, n_products), 7.0, 120.0), np.nan
    )
    # Zipf-like popularity over a random ranking within each taste group (every group has its own
    # bestsellers), weighted by the group's size; 4% are new arrivals nobody has bought yet.
    shuffled = rng.permutation(n_products)
    by_group = shuffled[np.argsort(product_group[shuffled], kind="stable")]
    group_first = np.searchsorted(product_group[by_group], np.arange(TASTE_GROUPS))
    rank = np.empty(n_products, dtype=np.int64)
    rank[by_group] = np.arange(n_products) - group_first[product_group[by_group]]
    popularity = group_share[product_group] / (rank + 1.0) ** 1.05
    popularity[rng.random(n_products) < 0.04] = 0.0
    in_stock = rng.random(n_products) >= 0.07

    affinity = np.where(
        product_group[None, :] == np.arange(TASTE_GROUPS)[:, None], _IN_GROUP_AFFINITY, 1.0
    )
    group_cdf = np.cumsum(popularity[None, :] * affinity, axis=1)
    global_cdf = np.cumsum(popularity)

    product_id = _ids("P", np.arange(1, n_products + 1), 6)
    nouns = [noun for cat in _CATEGORIES for noun in cat.nouns]
    noun_start = np.cumsum([0] + [len(cat.nouns) for cat in _CATEGORIES])[:-1]
    noun_count = np.array([len(cat.nouns) for cat in _CATEGORIES])
    noun = noun_start[category] + rng.integers(0, 1 << 30, n_products) % noun_count[category]
    model = rng.integers(0, len(_MODEL_NAMES), n_products)
    brand_of = brand_names.gather(brand)
    name = pl.select(
        pl.concat_str(
            brand_of,
            pl.Series(nouns, dtype=pl.String).gather(noun),
            pl.Series(_MODEL_NAMES, dtype=pl.String).gather(model),
            separator=" ",
        )
    ).to_series()
    products = pl.DataFrame(
        {
            c.PRODUCT_ID: product_id,
            c.NAME: name,
            c.CATEGORY: pl.Series([cat.name for cat in _CATEGORIES], dtype=pl.String).gather(
                category
            ),
            c.BRAND: brand_of,
            c.PRICE: price,
            c.IN_STOCK: in_stock,
        }
    )
    truth = pl.DataFrame(
        {
            c.PRODUCT_ID: product_id,
            PRODUCT_GROUP: product_group.astype(np.int64),
            PRICE_BAND: pl.Series(_PRICE_BANDS, dtype=pl.String).gather(band),
            CONSUMABLE: consumable,
            REORDER_DAYS: reorder_days,
            POPULARITY: popularity / popularity.sum(),
        }
    )
    return _Catalogue(
        products=products,
        truth=truth,
        product_id=product_id,
        price=price,
        category=category,
        consumable=consumable,
        reorder_days=reorder_days,
        group_cdf=group_cdf,
        global_cdf=global_cdf,
        group_share=group_share,
        group_age=group_age,
        country_mood=rng.normal(0.0, 0.15, len(_COUNTRIES)),
    )


# --- one chunk of customers -----------------------------------------------------------------------


def _chunk(
    catalogue: _Catalogue,
    window: _Window,
    seed: int,
    chunk: int,
    low: int,
    high: int,
    order_offset: int,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    rng = _rng(seed, 1, chunk)
    n = high - low
    customer_id = _ids("C", np.arange(low + 1, high + 1), 8)

    taste = rng.choice(TASTE_GROUPS, n, p=catalogue.group_share)
    second = (taste + rng.integers(1, TASTE_GROUPS, n)) % TASTE_GROUPS
    country = rng.choice(len(_COUNTRIES), n, p=_COUNTRY_WEIGHTS)
    age = _pick_rows(np.cumsum(catalogue.group_age[taste], axis=1), rng.random(n))
    channel = rng.choice(len(_CHANNELS), n, p=_CHANNEL_WEIGHTS)
    satisfaction = rng.standard_normal(n) + catalogue.country_mood[country]
    # Signed up within three years before the end, fewer of them recently (growth has slowed); about
    # half were customers before history starts.
    signup_ago = rng.random(n) ** 0.6 * 1.5 * HISTORY_DAYS * US_PER_DAY
    signup_us = window.end_us - signup_ago.astype(np.int64)
    signup_day = signup_us // US_PER_DAY
    active_from = np.maximum((signup_day + 1) * US_PER_DAY, window.start_us)
    active_years = np.maximum(window.end_us - active_from, 0) / (365.0 * US_PER_DAY)
    # Log-normal order frequency; happier customers and referred ones buy more often.
    orders_per_year = (
        _ORDERS_PER_YEAR_MEDIAN
        * _CHANNEL_RATE_FACTOR[channel]
        * np.exp(_ORDERS_PER_YEAR_SIGMA * rng.standard_normal(n) + 0.25 * satisfaction)
    )
    orders_per_year = np.minimum(orders_per_year, _ORDERS_PER_YEAR_MAX)
    orders_per_year[rng.random(n) < _NEVER_BUYS] = 0.0
    n_orders = rng.poisson(orders_per_year * active_years)
    relative_rate = np.log(np.maximum(orders_per_year, 1e-3) / _ORDERS_PER_YEAR_MEDIAN)
    loyalty_member = rng.random(n) < 1.0 / (
        1.0 + np.exp(1.0 - 0.9 * relative_rate - 0.3 * satisfaction)
    )

    customers = pl.DataFrame(
        {
            c.CUSTOMER_ID: customer_id,
            c.SIGNUP_DATE: pl.Series(signup_day, dtype=pl.Int32).cast(pl.Date),
            c.COUNTRY: pl.Series(_COUNTRIES, dtype=pl.String).gather(country),
            c.AGE_BAND: pl.Series(_AGE_BANDS, dtype=pl.String).gather(age),
            LOYALTY_MEMBER: pl.Series(["no", "yes"], dtype=pl.String).gather(
                loyalty_member.astype(np.int64)
            ),
            ACQUISITION_CHANNEL: pl.Series(_CHANNELS, dtype=pl.String).gather(channel),
        }
    )
    truth = pl.DataFrame(
        {
            c.CUSTOMER_ID: customer_id,
            TASTE_GROUP: taste.astype(np.int64),
            SECOND_TASTE_GROUP: second.astype(np.int64),
            SATISFACTION: satisfaction,
            ORDERS_PER_YEAR: orders_per_year,
        }
    )
    orders = _orders(
        catalogue,
        window,
        rng,
        customer_id,
        taste,
        second,
        country,
        active_from,
        n_orders,
        order_offset,
    )
    feedback_seed = int(np.random.SeedSequence([seed, 2, chunk]).generate_state(1)[0])
    feedback = simulate_feedback(
        orders,
        customers.select(c.CUSTOMER_ID, c.SIGNUP_DATE).with_columns(
            pl.Series(SATISFACTION, satisfaction)
        ),
        seed=feedback_seed,
        id_prefix=f"{chunk:04d}-",
        as_of=window.as_of,
    )
    tables = {
        c.CUSTOMERS: customers,
        c.ORDERS: orders,
        c.NPS_RESPONSES: feedback.nps_responses,
        c.CSAT_RESPONSES: feedback.csat_responses,
        c.CES_RESPONSES: feedback.ces_responses,
    }
    return tables, truth


def _choose_products(
    catalogue: _Catalogue, rng: np.random.Generator, taste: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """One product per line, for customers of the given taste groups (arrays aligned with lines)."""
    u = rng.random(len(taste))
    source = rng.random(len(taste))
    group = np.where(
        source < _OWN_TASTE, taste, np.where(source < _OWN_TASTE + _SECOND_TASTE, second, -1)
    )
    product = np.empty(len(taste), dtype=np.int64)
    bestsellers = group < 0
    product[bestsellers] = _pick(catalogue.global_cdf, u[bestsellers])
    for g in range(TASTE_GROUPS):
        mask = group == g
        product[mask] = _pick(catalogue.group_cdf[g], u[mask])
    return product


def _orders(
    catalogue: _Catalogue,
    window: _Window,
    rng: np.random.Generator,
    customer_id: pl.Series,
    taste: np.ndarray,
    second: np.ndarray,
    country: np.ndarray,
    active_from: np.ndarray,
    n_orders: np.ndarray,
    order_offset: int,
) -> pl.DataFrame:
    """Order lines of a chunk: baskets at random times, then reorders of consumables."""
    # Baskets: times uniform over each customer's active span, some pulled into the holiday peak.
    owner = np.repeat(np.arange(len(n_orders)), n_orders)
    span = window.end_us - active_from[owner]
    ordered_at = active_from[owner] + (rng.random(len(owner)) * span).astype(np.int64)
    year_start = (
        ordered_at.astype("datetime64[us]").astype("datetime64[Y]").astype("datetime64[us]")
    )
    peak = year_start.astype(np.int64) + ((319 + rng.random(len(owner)) * 40) * US_PER_DAY).astype(
        np.int64
    )
    to_peak = (
        (rng.random(len(owner)) < 0.12) & (peak >= active_from[owner]) & (peak <= window.end_us)
    )
    ordered_at = np.where(to_peak, peak, ordered_at)

    lines_per_order = 1 + rng.poisson(_EXTRA_LINES_MEAN, len(owner))
    line_order = np.repeat(np.arange(len(owner)), lines_per_order)
    line_product = _choose_products(
        catalogue, rng, taste[owner[line_order]], second[owner[line_order]]
    )
    # The same product twice in one basket is one line.
    n_products = len(catalogue.price)
    _, first = np.unique(line_order * n_products + line_product, return_index=True)
    first.sort()
    line_order, line_product = line_order[first], line_product[first]
    cancelled = rng.random(len(owner)) < _CANCELLED

    source, reorder_at = _reorders(
        catalogue, window, rng, ordered_at, cancelled, line_order, line_product
    )

    all_owner = np.concatenate([owner, owner[line_order[source]]])
    all_ordered_at = np.concatenate([ordered_at, reorder_at])
    all_cancelled = np.concatenate([cancelled, rng.random(len(source)) < _CANCELLED])
    line_order = np.concatenate([line_order, len(owner) + np.arange(len(source))])
    line_product = np.concatenate([line_product, line_product[source]])

    # Order numbers follow each customer's timeline.
    by_time = np.lexsort((all_ordered_at, all_owner))
    rank = np.empty_like(by_time)
    rank[by_time] = np.arange(len(by_time))
    line_rank = rank[line_order]
    line_sort = np.lexsort((line_product, line_rank))
    line_rank, line_product = line_rank[line_sort], line_product[line_sort]
    owner_o = all_owner[by_time]
    ordered_o = all_ordered_at[by_time]
    cancelled_o = all_cancelled[by_time]

    promised_o, delivered_o, late_o = _delivery(rng, ordered_o, country[owner_o])
    placed_o = ~cancelled_o & (delivered_o > window.end_us)
    delivered_known = ~cancelled_o & ~placed_o
    return_rate = np.array([cat.return_rate for cat in _CATEGORIES])[
        catalogue.category[line_product]
    ]
    returned = delivered_known[line_rank] & (
        rng.random(len(line_rank)) < return_rate * np.where(late_o[line_rank], 1.6, 1.0)
    )
    status_code = np.select(
        [cancelled_o[line_rank], placed_o[line_rank], returned], [3, 0, 2], default=1
    )
    consumable = catalogue.consumable[line_product]
    quantity = 1 + np.where(
        consumable, rng.poisson(0.6, len(line_rank)), rng.random(len(line_rank)) < 0.06
    )
    discount = np.where(
        rng.random(len(line_rank)) < 0.12, rng.uniform(0.1, 0.3, len(line_rank)), 0.0
    )
    unit_price = np.round(catalogue.price[line_product] * (1.0 - discount), 2)

    delivered_series = _to_datetime(delivered_o[line_rank])
    return pl.DataFrame(
        {
            c.ORDER_ID: _ids("O", order_offset + 1 + line_rank, 9),
            c.CUSTOMER_ID: customer_id.gather(owner_o[line_rank]),
            c.PRODUCT_ID: catalogue.product_id.gather(line_product),
            c.QUANTITY: pl.Series(quantity, dtype=pl.Int64),
            c.UNIT_PRICE: unit_price,
            c.ORDERED_AT: _to_datetime(ordered_o[line_rank]),
            c.PROMISED_DELIVERY_AT: _to_datetime(promised_o[line_rank]),
            c.DELIVERED_AT: delivered_series.scatter(
                np.flatnonzero(~delivered_known[line_rank]), None
            ),
            c.STATUS: pl.Series(
                ("placed", "delivered", "returned", "cancelled"), dtype=pl.String
            ).gather(status_code),
        }
    )


def _reorders(
    catalogue: _Catalogue,
    window: _Window,
    rng: np.random.Generator,
    ordered_at: np.ndarray,
    cancelled: np.ndarray,
    line_order: np.ndarray,
    line_product: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchases of consumables: many consumable lines start a chain of single-line orders at
    the product's typical interval (each customer a little faster or slower). Returns the line each
    reorder repeats and its time."""
    starts = np.flatnonzero(
        catalogue.consumable[line_product]
        & ~cancelled[line_order]
        & (rng.random(len(line_order)) < _REORDER_SHARE)
    )
    interval_days = catalogue.reorder_days[line_product[starts]] * rng.lognormal(
        0.0, 0.2, len(starts)
    )
    interval_us = (interval_days * US_PER_DAY).astype(np.int64)
    room = (window.end_us - ordered_at[line_order[starts]]) // np.maximum(interval_us, 1)
    repeats = np.maximum(np.minimum(rng.geometric(0.35, len(starts)), room), 0)
    source = np.repeat(starts, repeats)
    step = np.arange(len(source)) - np.repeat(np.cumsum(repeats) - repeats, repeats) + 1
    reorder_at = ordered_at[line_order[source]] + (
        step * np.repeat(interval_us, repeats) * rng.lognormal(0.0, 0.06, len(source))
    ).astype(np.int64)
    keep = reorder_at <= window.end_us
    return source[keep], reorder_at[keep]


def _delivery(
    rng: np.random.Generator, ordered_at: np.ndarray, country: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Promised and actual delivery per order: late more often in the holiday peak and far away."""
    n = len(ordered_at)
    promised_days = 2 + rng.poisson(1.0, n) + _COUNTRY_SHIPPING_DAYS[country]
    # Promised by 20:00 on the promised day.
    promised = (ordered_at // US_PER_DAY + promised_days) * US_PER_DAY + 20 * US_PER_HOUR
    day_of_year = (
        (
            ordered_at.astype("datetime64[us]")
            - ordered_at.astype("datetime64[us]").astype("datetime64[Y]")
        )
        .astype("timedelta64[D]")
        .astype(np.int64)
    )
    in_peak = day_of_year >= 318
    late = rng.random(n) < 0.09 + 0.15 * in_peak + _COUNTRY_LATE_EXTRA[country]
    late_by = ((0.15 + rng.exponential(1.8, n)) * US_PER_DAY).astype(np.int64)
    early_by = (rng.random(n) * np.maximum(promised - ordered_at - 12 * US_PER_HOUR, 0)).astype(
        np.int64
    )
    delivered = np.where(late, promised + late_by, promised - early_by)
    return promised, delivered, late
