"""The simulated shop's fixed structure and its catalogue: what it sells (categories, price bands,
brands), to whom (countries, age bands, acquisition channels), the latent taste groups that link
the two, and the product catalogue drawn from them (docs/demo-data.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsvc.domain import columns as c
from training.sources.draws import pick_rows, readable_ids, rng_for

TASTE_GROUPS = 12
# How much more a taste group favours products made for it than any other product.
IN_GROUP_AFFINITY = 30.0

# Latent product columns, written only under _truth/.
PRODUCT_GROUP = "product_group"
PRICE_BAND = "price_band"
CONSUMABLE = "consumable"
REORDER_DAYS = "reorder_days"
POPULARITY = "popularity"


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    base_price: float
    consumable: bool
    return_rate: float
    nouns: tuple[str, ...]


# name, base price, consumable (reordered at an interval), return rate, product nouns for names.
# fmt: off
CATEGORIES: tuple[Category, ...] = (
    Category("electronics", 160.0, False, 0.07, ("Headphones", "Speaker", "Charger", "Monitor")),
    Category("home & kitchen", 40.0, False, 0.05, ("Kettle", "Pan", "Knife Set", "Blender", "Lamp")),
    Category("fashion", 45.0, False, 0.16, ("Jacket", "Sneakers", "Jeans", "Shirt", "Dress")),
    Category("beauty", 16.0, True, 0.03, ("Face Cream", "Shampoo", "Serum", "Body Lotion")),
    Category("sports & outdoors", 55.0, False, 0.06, ("Yoga Mat", "Tent", "Water Bottle")),
    Category("books", 15.0, False, 0.02, ("Novel", "Cookbook", "Travel Guide", "Biography")),
    Category("toys & games", 28.0, False, 0.04, ("Puzzle", "Board Game", "Building Set")),
    Category("grocery", 7.0, True, 0.01, ("Coffee Beans", "Green Tea", "Olive Oil", "Granola")),
    Category("pet supplies", 24.0, True, 0.02, ("Dog Food", "Cat Litter", "Cat Food")),
    Category("garden", 32.0, False, 0.04, ("Seeds", "Garden Hose", "Planter", "Pruning Shears")),
    Category("health", 14.0, True, 0.02, ("Vitamins", "Protein Powder", "Toothpaste")),
    Category("baby", 22.0, True, 0.03, ("Diapers", "Baby Wipes", "Baby Bottle", "Baby Food")),
    Category("office", 12.0, True, 0.03, ("Printer Paper", "Ink Cartridge", "Notebook", "Pens")),
    Category("automotive", 38.0, False, 0.05, ("Motor Oil", "Car Charger", "Wiper Blades")),
)
# fmt: on
PRICE_BANDS = ("budget", "mid", "premium")
PRICE_BAND_FACTOR = np.array([0.55, 1.0, 2.1])
MODEL_NAMES = ("Classic", "Pro", "Lite", "Plus", "Max", "Mini", "Eco", "Original", "Select", "Go")
BRAND_SYLLABLES = (
    "nor", "vik", "al", "ta", "lu", "mo", "sen", "ka", "ri", "zo", "bel", "ver", "da", "fin", "or",
    "ex", "pa", "lin", "so", "te", "mar", "qu", "el", "ion",
)  # fmt: skip
COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "AT", "US")
COUNTRY_WEIGHTS = np.array([0.30, 0.14, 0.13, 0.08, 0.08, 0.08, 0.06, 0.04, 0.04, 0.05])
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_WEIGHTS = np.array([0.12, 0.26, 0.24, 0.18, 0.12, 0.08])
CHANNELS = ("organic_search", "paid_search", "social", "referral", "email", "marketplace")
CHANNEL_WEIGHTS = np.array([0.30, 0.22, 0.18, 0.10, 0.08, 0.12])


@dataclass(frozen=True, slots=True)
class Window:
    """The simulated history, in microseconds since the epoch."""

    start_us: int
    end_us: int  # the last instant of end_date: nothing happens later

    @property
    def as_of(self) -> dt.datetime:
        return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=self.end_us)


@dataclass(frozen=True, slots=True)
class Catalogue:
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
    group_age: np.ndarray  # (TASTE_GROUPS, len(AGE_BANDS))
    country_mood: np.ndarray


@dataclass(frozen=True, slots=True)
class _Tastes:
    """What each taste group likes: categories, price bands, brands; and how large it is."""

    share: np.ndarray  # (TASTE_GROUPS,)
    category: np.ndarray  # (TASTE_GROUPS, categories)
    band: np.ndarray  # (TASTE_GROUPS, price bands)
    age: np.ndarray  # (TASTE_GROUPS, age bands)
    brand: np.ndarray  # (TASTE_GROUPS, categories, brands per category)
    brand_names: pl.Series  # categories * brands per category


@dataclass(frozen=True, slots=True)
class _Products:
    group: np.ndarray  # the taste group each product is made for
    category: np.ndarray
    band: np.ndarray
    brand: np.ndarray
    price: np.ndarray
    consumable: np.ndarray
    reorder_days: np.ndarray  # nan for products that are not reordered
    popularity: np.ndarray
    in_stock: np.ndarray


def build_catalogue(n_products: int, seed: int) -> Catalogue:
    rng = rng_for(seed, 0)
    tastes = _tastes(rng, n_products)
    drawn = _products(rng, tastes, n_products)
    affinity = np.where(
        drawn.group[None, :] == np.arange(TASTE_GROUPS)[:, None], IN_GROUP_AFFINITY, 1.0
    )
    product_id = readable_ids("P", np.arange(1, n_products + 1), 6)
    brand_of = tastes.brand_names.gather(drawn.brand)
    products = pl.DataFrame(
        {
            c.PRODUCT_ID: product_id,
            c.NAME: _names(rng, drawn.category, brand_of),
            c.CATEGORY: pl.Series([cat.name for cat in CATEGORIES], dtype=pl.String).gather(
                drawn.category
            ),
            c.BRAND: brand_of,
            c.PRICE: drawn.price,
            c.IN_STOCK: drawn.in_stock,
        }
    )
    truth = pl.DataFrame(
        {
            c.PRODUCT_ID: product_id,
            PRODUCT_GROUP: drawn.group.astype(np.int64),
            PRICE_BAND: pl.Series(PRICE_BANDS, dtype=pl.String).gather(drawn.band),
            CONSUMABLE: drawn.consumable,
            REORDER_DAYS: drawn.reorder_days,
            POPULARITY: drawn.popularity / drawn.popularity.sum(),
        }
    )
    return Catalogue(
        products=products,
        truth=truth,
        product_id=product_id,
        price=drawn.price,
        category=drawn.category,
        consumable=drawn.consumable,
        reorder_days=drawn.reorder_days,
        group_cdf=np.cumsum(drawn.popularity[None, :] * affinity, axis=1),
        global_cdf=np.cumsum(drawn.popularity),
        group_share=tastes.share,
        group_age=tastes.age,
        country_mood=rng.normal(0.0, 0.15, len(COUNTRIES)),
    )


def _tastes(rng: np.random.Generator, n_products: int) -> _Tastes:
    # Each taste group loves two or three categories, has a price level and a few favourite brands.
    n_cat, n_bands = len(CATEGORIES), len(PRICE_BANDS)
    share = rng.dirichlet(np.full(TASTE_GROUPS, 8.0))
    category = rng.dirichlet(np.full(n_cat, 0.12), TASTE_GROUPS)
    band = rng.dirichlet(np.full(n_bands, 0.8), TASTE_GROUPS)
    age = 0.4 * AGE_WEIGHTS + 0.6 * rng.dirichlet(np.full(len(AGE_BANDS), 1.0), TASTE_GROUPS)
    brands_per_category = int(np.clip(n_products // (n_cat * 40), 4, 40))
    brand = rng.dirichlet(np.full(brands_per_category, 0.4), (TASTE_GROUPS, n_cat))
    brand_names = pl.Series(_brand_names(rng, n_cat * brands_per_category), dtype=pl.String)
    return _Tastes(share, category, band, age, brand, brand_names)


def _products(rng: np.random.Generator, tastes: _Tastes, n_products: int) -> _Products:
    group = rng.choice(TASTE_GROUPS, n_products, p=tastes.share)
    category = pick_rows(np.cumsum(tastes.category[group], axis=1), rng.random(n_products))
    band = pick_rows(np.cumsum(tastes.band[group], axis=1), rng.random(n_products))
    brand_in_category = pick_rows(
        np.cumsum(tastes.brand[group, category], axis=1), rng.random(n_products)
    )
    brand = category * tastes.brand.shape[2] + brand_in_category
    base_price = np.array([cat.base_price for cat in CATEGORIES])
    raw_price = base_price[category] * PRICE_BAND_FACTOR[band] * rng.lognormal(0.0, 0.3, n_products)
    price = np.maximum(np.floor(raw_price) + 0.99, 0.99)

    consumable_category = np.array([cat.consumable for cat in CATEGORIES])
    consumable = consumable_category[category] & (rng.random(n_products) < 0.7)
    reorder_days = np.where(
        consumable, np.clip(rng.lognormal(np.log(30.0), 0.45, n_products), 7.0, 120.0), np.nan
    )
    # Zipf-like popularity over a random ranking within each taste group (every group has its own
    # bestsellers), weighted by the group's size; 4% are new arrivals nobody has bought yet.
    shuffled = rng.permutation(n_products)
    by_group = shuffled[np.argsort(group[shuffled], kind="stable")]
    group_first = np.searchsorted(group[by_group], np.arange(TASTE_GROUPS))
    rank = np.empty(n_products, dtype=np.int64)
    rank[by_group] = np.arange(n_products) - group_first[group[by_group]]
    popularity = tastes.share[group] / (rank + 1.0) ** 1.05
    popularity[rng.random(n_products) < 0.04] = 0.0
    in_stock = rng.random(n_products) >= 0.07
    return _Products(
        group, category, band, brand, price, consumable, reorder_days, popularity, in_stock
    )


def _names(rng: np.random.Generator, category: np.ndarray, brand_of: pl.Series) -> pl.Series:
    """Product names: brand, a noun of the category, a model name ("Norvik Kettle Pro")."""
    nouns = [noun for cat in CATEGORIES for noun in cat.nouns]
    noun_start = np.cumsum([0] + [len(cat.nouns) for cat in CATEGORIES])[:-1]
    noun_count = np.array([len(cat.nouns) for cat in CATEGORIES])
    noun = noun_start[category] + rng.integers(0, 1 << 30, len(category)) % noun_count[category]
    model = rng.integers(0, len(MODEL_NAMES), len(category))
    return pl.select(
        pl.concat_str(
            brand_of,
            pl.Series(nouns, dtype=pl.String).gather(noun),
            pl.Series(MODEL_NAMES, dtype=pl.String).gather(model),
            separator=" ",
        )
    ).to_series()


def _brand_names(rng: np.random.Generator, count: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    syllables = np.array(BRAND_SYLLABLES)
    while len(names) < count:
        parts = syllables[rng.integers(0, len(syllables), rng.integers(2, 4))]
        name = "".join(parts).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names
