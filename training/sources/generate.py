"""The demo data generator: a simulated shop whose customers, catalogue, orders and surveys follow a
documented latent model (docs/demo-data.md), so every later feature has something true to find.

Customers are generated in chunks with vectorised numpy, each chunk written as parquet parts, then the
parts are stream-combined into one file per contract table; latent truths go to `_truth/`. The
shop's structure and catalogue are `training.sources.shop`, the order lines
`training.sources.purchases`, the survey answers `training.sources.feedback_model`.
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
from recsvc.domain.experiments import Exposure
from recsvc.errors import ConfigError
from training.progress import Progress
from training.sources.draws import pick_rows, readable_ids, rng_for
from training.sources.experiment_sim import EXPOSURES_FILE, SERVICE_DIR, encode_lines
from training.sources.experiment_sim import simulate as simulate_experiments
from training.sources.feedback_model import SATISFACTION, US_PER_DAY, simulate_feedback
from training.sources.purchases import Customers, order_lines
from training.sources.shop import (
    AGE_BANDS,
    CHANNEL_WEIGHTS,
    CHANNELS,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    TASTE_GROUPS,
    Catalogue,
    Window,
    build_catalogue,
)

FORMATS = ("parquet", "csv", "ndjson")
DEFAULT_END_DATE = dt.date(2025, 12, 31)
CHUNK_CUSTOMERS = 50_000
HISTORY_DAYS = 730
TRUTH_DIR = "_truth"
PARTS_DIR = "_parts"

# Extra customer attribute columns (the contract keeps extra customer columns as strings).
LOYALTY_MEMBER = "loyalty_member"
ACQUISITION_CHANNEL = "acquisition_channel"

# Latent customer columns, written only under _truth/ (the products': `training.sources.shop`).
TASTE_GROUP = "taste_group"
SECOND_TASTE_GROUP = "second_taste_group"
ORDERS_PER_YEAR = "orders_per_year"

# Median orders per year of an active customer (log-normal spread below).
_ORDERS_PER_YEAR_MEDIAN = 2.0
_ORDERS_PER_YEAR_SIGMA = 0.75
_ORDERS_PER_YEAR_MAX = 40.0
_NEVER_BUYS = 0.04
# Referred and newsletter customers buy more often; social-ad customers less (by `shop.CHANNELS`).
_CHANNEL_RATE_FACTOR = np.array([1.0, 0.9, 0.7, 1.3, 1.25, 0.85])


class GenerateSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What `generate` wrote: rows per contract table, the folder, the format and the seconds taken."""

    out_dir: str
    format: str
    rows: dict[str, int]
    seconds: float


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
    window = Window(start_us=end_us - HISTORY_DAYS * US_PER_DAY, end_us=end_us)

    out_dir.mkdir(parents=True, exist_ok=True)
    parts = out_dir / PARTS_DIR
    shutil.rmtree(parts, ignore_errors=True)
    truth_dir = out_dir / TRUTH_DIR
    truth_dir.mkdir(exist_ok=True)
    service_dir = out_dir / SERVICE_DIR
    service_dir.mkdir(exist_ok=True)
    (service_dir / EXPOSURES_FILE).write_bytes(b"")

    catalogue = build_catalogue(n_products, seed)
    _write_part(catalogue.products, parts / c.PRODUCTS, 0)
    catalogue.truth.write_parquet(truth_dir / f"{c.PRODUCTS}.parquet")
    rows = _write_chunks(catalogue, window, seed, customers, parts, show_progress)
    rows[c.PRODUCTS] = catalogue.products.height

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


def _write_chunks(
    catalogue: Catalogue,
    window: Window,
    seed: int,
    customers: int,
    parts: Path,
    show_progress: bool,
) -> dict[str, int]:
    """Every chunk of customers with their orders and answers, as parts; returns rows per table."""
    rows: dict[str, int] = {}
    progress = Progress("generate", total=customers, unit="customers", enabled=show_progress)
    order_offset = 0
    for chunk, low in enumerate(range(0, customers, CHUNK_CUSTOMERS)):
        high = min(low + CHUNK_CUSTOMERS, customers)
        tables, truth, exposures = _chunk(catalogue, window, seed, chunk, low, high, order_offset)
        with (parts.parent / SERVICE_DIR / EXPOSURES_FILE).open("ab") as log_file:
            log_file.write(encode_lines(exposures))
        order_offset += tables[c.ORDERS][c.ORDER_ID].n_unique()
        for name, frame in tables.items():
            rows[name] = rows.get(name, 0) + frame.height
            _write_part(frame, parts / name, chunk)
        _write_part(truth, parts / TRUTH_DIR, chunk)
        progress.advance(high - low)
    progress.finish()
    return rows


# --- files ----------------------------------------------------------------------------------------


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


# --- one chunk of customers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ChunkCustomers:
    frame: pl.DataFrame  # the contract's customers table, with the extra attributes
    truth: pl.DataFrame  # their latent columns
    satisfaction: np.ndarray
    buying: Customers  # what their orders are drawn from


def _chunk(
    catalogue: Catalogue,
    window: Window,
    seed: int,
    chunk: int,
    low: int,
    high: int,
    order_offset: int,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, list[Exposure]]:
    """Customers `low` to `high`, their order lines and their survey answers; their truths; the
    exposure lines of the simulated offer experiments."""
    rng = rng_for(seed, 1, chunk)
    customers = _customers(catalogue, window, rng, low, high)
    orders = order_lines(catalogue, window, rng, customers.buying, order_offset)
    feedback_seed = int(np.random.SeedSequence([seed, 2, chunk]).generate_state(1)[0])
    feedback = simulate_feedback(
        orders,
        customers.frame.select(c.CUSTOMER_ID, c.SIGNUP_DATE).with_columns(
            pl.Series(SATISFACTION, customers.satisfaction)
        ),
        seed=feedback_seed,
        id_prefix=f"{chunk:04d}-",
        as_of=window.as_of,
    )
    # The offers' experiments over the last weeks (`training.sources.experiment_sim`).
    orders, answers, exposures = simulate_experiments(
        orders, feedback.nps_responses, window.end_us, rng_for(seed, 3, chunk), f"{chunk:04d}"
    )
    tables = {
        c.CUSTOMERS: customers.frame,
        c.ORDERS: orders,
        c.NPS_RESPONSES: answers,
        c.CSAT_RESPONSES: feedback.csat_responses,
        c.CES_RESPONSES: feedback.ces_responses,
    }
    return tables, customers.truth, exposures


def _customers(
    catalogue: Catalogue, window: Window, rng: np.random.Generator, low: int, high: int
) -> _ChunkCustomers:
    n = high - low
    customer_id = readable_ids("C", np.arange(low + 1, high + 1), 8)
    taste = rng.choice(TASTE_GROUPS, n, p=catalogue.group_share)
    second = (taste + rng.integers(1, TASTE_GROUPS, n)) % TASTE_GROUPS
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS)
    age = pick_rows(np.cumsum(catalogue.group_age[taste], axis=1), rng.random(n))
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_WEIGHTS)
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
    frame = pl.DataFrame(
        {
            c.CUSTOMER_ID: customer_id,
            c.SIGNUP_DATE: pl.Series(signup_day, dtype=pl.Int32).cast(pl.Date),
            c.COUNTRY: pl.Series(COUNTRIES, dtype=pl.String).gather(country),
            c.AGE_BAND: pl.Series(AGE_BANDS, dtype=pl.String).gather(age),
            LOYALTY_MEMBER: pl.Series(["no", "yes"], dtype=pl.String).gather(
                loyalty_member.astype(np.int64)
            ),
            ACQUISITION_CHANNEL: pl.Series(CHANNELS, dtype=pl.String).gather(channel),
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
    buying = Customers(customer_id, taste, second, country, active_from, n_orders)
    return _ChunkCustomers(frame, truth, satisfaction, buying)
