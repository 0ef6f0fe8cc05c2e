"""Random draws and readable values for the simulated shop: seeded streams, inverse-CDF picks, ids
and timestamps."""

from __future__ import annotations

import numpy as np
import polars as pl


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per purpose and chunk, derived from the seed (never global state)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws: index i with probability proportional to cdf[i] - cdf[i-1]."""
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)


def pick_rows(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse-CDF draws for small per-row distributions (n, k)."""
    return np.minimum(
        (cdf_rows < (u * cdf_rows[:, -1])[:, None]).sum(axis=1), cdf_rows.shape[1] - 1
    )


def readable_ids(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """Readable ids such as C00000042: a prefix and a zero-padded number."""
    digits = pl.Series(numbers, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str(pl.lit(prefix), digits)).to_series()


def to_datetime(us: np.ndarray) -> pl.Series:
    """Microseconds since the epoch, truncated to whole seconds like a shop system would store them."""
    return pl.Series((us // 1_000_000) * 1_000_000, dtype=pl.Int64).cast(pl.Datetime("us"))
