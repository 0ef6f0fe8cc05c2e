"""The one time convention: every datetime is timezone-aware UTC, from the edge inwards.

A naive datetime is converted where it enters (`utc`: the data contract reads naive times as UTC;
records stored by older versions carry naive ones), and text we write carries an explicit `Z`. The
only naive datetimes left are inside polars frames of the training job, whose `Datetime("us")`
columns hold UTC; `naive_utc` is the one way into them.
"""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def today() -> dt.date:
    """Today's date in UTC (a customer's "days since" and an offer's validity count from it)."""
    return now().date()


def utc(moment: dt.datetime) -> dt.datetime:
    """`moment` as aware UTC; a naive value is taken as UTC (the contract's rule)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """`moment` in UTC without a zone: the spelling of polars' naive `Datetime("us")` columns."""
    return utc(moment).replace(tzinfo=None)


def iso(moment: dt.datetime) -> str:
    """ISO 8601 with seconds and a `Z`, e.g. 2025-12-30T12:00:00Z (what the API and files show)."""
    return utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_micros(moment: dt.datetime) -> str:
    """ISO 8601 with microseconds and a `Z`, e.g. 2025-12-30T12:00:00.250000Z: a stamp that must
    tell apart, and order, two events within one second."""
    return utc(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> dt.datetime:
    """A timestamp we wrote (`iso`, or an older naive spelling) as aware UTC; ValueError if not one."""
    return utc(dt.datetime.fromisoformat(text))


def epoch_seconds(moment: dt.datetime) -> int:
    return int((utc(moment) - EPOCH).total_seconds())
