"""Comment themes: a transparent keyword lexicon (delivery, price, quality, support, ...).

How it works: each theme has a short list of keywords. A keyword is a word ("courier"), a phrase
("customer service", matched with any spacing) or a word stem ending in `*` ("deliver*" matches
deliver, delivery, delivered). Matching ignores case and only counts whole words, so "late" does not
match "template". A comment belongs to every theme with at least one keyword in it, or to none.
Pure Python: the service tags a live comment with `themes_of`; the training job runs the same
regular expressions in polars (`training.report.themes.with_themes`).
"""

from __future__ import annotations

import re
from typing import Final

LEXICON: Final[dict[str, tuple[str, ...]]] = {
    "delivery": (
        "deliver*",
        "shipping",
        "shipped",
        "shipment*",
        "courier*",
        "parcel*",
        "package*",
        "arriv*",
        "late",
        "delay*",
        "tracking",
        "dispatch*",
        "postage",
        "on time",
    ),
    "price": (
        "price*",
        "pricey",
        "expensive",
        "overpriced",
        "cheap",
        "cheaper",
        "cost*",
        "value for money",
        "discount*",
        "deal*",
        "afford*",
    ),
    "quality": (
        "quality",
        "broke",
        "broken",
        "damaged",
        "defect*",
        "faulty",
        "well made",
        "durable",
        "material*",
        "as described",
        "sizing",
    ),
    "support": (
        "customer service",
        "customer support",
        "support",
        "helpful",
        "unhelpful",
        "rude",
        "answer*",
        "hotline",
        "agent*",
        "complain*",
    ),
    "returns": ("return*", "refund*", "exchange*"),
    "selection": (
        "selection",
        "range",
        "choice",
        "variety",
        "assortment",
        "out of stock",
        "in stock",
        "unavailable",
        "availability",
    ),
    "website": (
        "website",
        "site",
        "app",
        "checkout",
        "check out",
        "payment*",
        "login",
        "log in",
        "password",
        "search",
        "crash*",
    ),
}
THEME_NAMES: Final = tuple(LEXICON)


def keyword_pattern(keyword: str) -> str:
    """The regular expression of one keyword (word, phrase, or stem*)."""
    stem = keyword.endswith("*")
    words = keyword.rstrip("*").split()
    body = r"\s+".join(re.escape(w) for w in words)
    return body + (r"\w*" if stem else "")


def theme_pattern(keywords: tuple[str, ...]) -> str:
    """One case-insensitive, whole-word regular expression for a theme's keywords."""
    return r"(?i)\b(?:" + "|".join(keyword_pattern(k) for k in keywords) + r")\b"


_COMPILED: Final = {theme: re.compile(theme_pattern(words)) for theme, words in LEXICON.items()}


def comment_text(comment: str | None) -> str | None:
    """A comment as it is kept and counted: whitespace stripped; None when nothing is left (the
    report's "answers with a comment" and a version's comment files read it the same way)."""
    text = comment.strip() if comment else ""
    return text or None


def themes_of(comment: str | None) -> list[str]:
    """The themes one comment mentions, in lexicon order."""
    if not comment:
        return []
    return [theme for theme, pattern in _COMPILED.items() if pattern.search(comment)]
