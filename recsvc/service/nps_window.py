"""The date window of the NPS endpoints (`since`, `until`: responded days, UTC, both included):
parsed once here so every endpoint names a bad parameter the same way."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from recsvc.errors import InvalidRequest

_EPOCH = dt.date(1970, 1, 1)
_DAY_SECONDS = 86_400
# fromisoformat alone also takes 20240101 and week dates: the API documents YYYY-MM-DD only.
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class DayWindow:
    since: dt.date | None = None  # first responded day included (UTC)
    until: dt.date | None = None  # last responded day included (UTC)

    def mask(self, seconds: np.ndarray) -> np.ndarray:
        """Which of these times (UTC seconds since 1970) fall inside the window (bool)."""
        inside = np.ones(seconds.shape[0], dtype=bool)
        if self.since is not None:
            inside &= seconds >= (self.since - _EPOCH).days * _DAY_SECONDS
        if self.until is not None:
            inside &= seconds < ((self.until - _EPOCH).days + 1) * _DAY_SECONDS
        return inside


def _date(name: str, value: str | None) -> dt.date | None:
    if value is None or value == "":
        return None
    try:
        if not _DATE_RE.match(value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: not a date, use YYYY-MM-DD (got {value[:40]!r})") from None


def parse_window(since: str | None, until: str | None) -> DayWindow:
    """Check `since` and `until`; InvalidRequest names the one at fault."""
    first, last = _date("since", since), _date("until", until)
    if first is not None and last is not None and first > last:
        raise InvalidRequest(f"since: {first} is after until ({last})")
    return DayWindow(first, last)
