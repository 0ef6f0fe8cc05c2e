"""Comments of simulated survey answers: phrases per theme and sentiment, and how they are drawn.

Every delivery phrase names delivery in plain words (delivery, arrived, courier, parcel, shipping),
so a keyword tagger finds it (docs/demo-data.md).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsvc.domain import columns as c

# Comment themes and, for each, phrases by sentiment (negative, mixed, positive). Every delivery phrase
# names delivery in plain words (delivery, arrived, courier, parcel, shipping) so a keyword tagger finds it.
THEMES: tuple[str, ...] = ("delivery", "price", "quality", "support", "selection", "website")
NEGATIVE, MIXED, POSITIVE = 0, 1, 2
_PHRASES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "delivery": (
        (
            "The delivery was late and nobody told me why.",
            "My parcel arrived days after the promised date.",
            "Delivery took far too long, the tracking was useless.",
            "The courier missed the delivery window twice.",
            "Shipping was slow and the parcel arrived late.",
        ),
        (
            "Delivery was ok but could be faster.",
            "The parcel arrived, a bit later than I hoped.",
            "Shipping took a while, otherwise fine.",
        ),
        (
            "Fast delivery, arrived a day early!",
            "The parcel arrived on time, great courier.",
            "Super quick shipping and delivery.",
            "Delivery was faster than promised.",
        ),
    ),
    "price": (
        (
            "Far too expensive for what you get.",
            "Prices went up again, I found it cheaper elsewhere.",
            "Shipping costs and prices are too high.",
        ),
        (
            "Prices are fair but not the cheapest.",
            "Decent value, I wait for discounts though.",
            "A bit pricey compared to other shops.",
        ),
        (
            "Great value for money.",
            "Good prices and nice discounts.",
            "Cheaper than anywhere else, great deals.",
        ),
    ),
    "quality": (
        (
            "The product broke after a week, poor quality.",
            "Item was damaged and the quality is bad.",
            "Not as described, cheap material, had to return it.",
        ),
        (
            "Quality is ok for the price.",
            "The product is fine, nothing special.",
            "Decent quality but the sizing was off.",
        ),
        (
            "Excellent quality, exactly as described.",
            "Great product, very well made.",
            "Love the quality, will buy again.",
        ),
    ),
    "support": (
        (
            "Customer service never answered my emails.",
            "Support was unhelpful and the refund took weeks.",
            "Impossible to reach anyone at customer support.",
        ),
        (
            "Support answered eventually.",
            "Customer service was polite but slow.",
        ),
        (
            "Customer service was friendly and solved it fast.",
            "Very helpful support team, easy refund.",
        ),
    ),
    "selection": (
        (
            "Half the range is always out of stock.",
            "Could not find what I wanted, poor selection.",
        ),
        (
            "Good range but some items were unavailable.",
            "The selection could be bigger.",
        ),
        (
            "Huge selection, I always find what I need.",
            "Great range of products and brands.",
        ),
    ),
    "website": (
        (
            "The website kept crashing at checkout.",
            "Payment failed twice, the checkout is a mess.",
            "The app is confusing and search is useless.",
        ),
        (
            "Website works but the search could be better.",
            "Checkout was ok, a few too many steps.",
        ),
        (
            "Easy checkout, the app is great.",
            "Website is simple and ordering was quick.",
        ),
    ),
}
_PHRASES_PER_CELL = max(len(cell) for cells in _PHRASES.values() for cell in cells)
# Flat lookup table indexed by (theme, sentiment, k); short cells repeat their phrases to fill the slot.
_PHRASE_TABLE = pl.Series(
    "phrase",
    [
        cell[k % len(cell)]
        for theme in THEMES
        for cell in _PHRASES[theme]
        for k in range(_PHRASES_PER_CELL)
    ],
    dtype=pl.String,
)

# Share of responses with a comment, by sentiment: unhappy customers write more.
_COMMENT_SHARE = np.array([0.6, 0.3, 0.4])
# Share of comments that touch a second theme.
_SECOND_THEME_SHARE = 0.2


def _pick_theme(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cumulative = np.cumsum(np.maximum(weights, 0.0), axis=1)
    draw = rng.random(len(weights)) * cumulative[:, -1]
    return np.minimum((cumulative < draw[:, None]).sum(axis=1), len(THEMES) - 1)


def draw_comments(
    sentiment: np.ndarray, theme_weights: np.ndarray, rng: np.random.Generator
) -> pl.Series:
    """A comment for a share of responses: one or two phrases in the answer's sentiment
    (`NEGATIVE`, `MIXED`, `POSITIVE`), on themes drawn by `theme_weights` (n, len(THEMES))."""
    n = len(sentiment)
    has_comment = rng.random(n) < _COMMENT_SHARE[sentiment]
    cell = _PHRASES_PER_CELL
    first = _pick_theme(theme_weights, rng)
    second = _pick_theme(theme_weights, rng)
    first_idx = (first * 3 + sentiment) * cell + rng.integers(0, cell, n)
    second_idx = (second * 3 + sentiment) * cell + rng.integers(0, cell, n)
    add_second = (rng.random(n) < _SECOND_THEME_SHARE) & (second != first)
    frame = pl.DataFrame(
        {
            "first": _PHRASE_TABLE.gather(first_idx),
            "second": _PHRASE_TABLE.gather(second_idx),
            "add_second": add_second,
            "has_comment": has_comment,
        }
    )
    return frame.select(
        pl.when(pl.col("has_comment"))
        .then(
            pl.when(pl.col("add_second"))
            .then(pl.concat_str("first", pl.lit(" "), "second"))
            .otherwise(pl.col("first"))
        )
        .alias(c.COMMENT)
    ).to_series()
