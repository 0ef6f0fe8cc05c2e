"""Which products come with an offer: the filters that answer a detractor's complaint theme (the
catalog itself is `recsvc.domain.offers`)."""

from __future__ import annotations

from recsvc.service.recommend import Query


def products_for_theme(theme: str | None) -> Query:
    """Which products answer a complaint: in stock after a delivery complaint, the cheaper price
    bands after a price complaint, the upper bands (in stock) after a quality complaint; otherwise
    the customer's usual recommendations."""
    if theme == "delivery":
        return Query(in_stock=True)
    if theme == "price":
        return Query(price_bands=("budget", "low"))
    if theme == "quality":
        return Query(price_bands=("high", "premium"), in_stock=True)
    return Query()
