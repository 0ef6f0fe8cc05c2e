"""One page of a segment's members for people to read (the marketer console): the export's default
columns, filtered by customer id and by NPS category, sorted by any of those columns, paged.

The rows are the export's rows: the same members (erased customers left out the same way) and the
same values, so a page and `GET /v1/segments/{name}/members` never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from recsvc.errors import InvalidRequest
from recsvc.version.erased import without
from recsvc.version.profiles import EXPORT_COLUMNS, Profiles, row_type

COLUMNS: Final = EXPORT_COLUMNS
PAGE_SIZES: Final = (25, 50, 100, 200)
MAX_QUERY: Final = 100


@dataclass(frozen=True, slots=True)
class MemberQuery:
    contains: str = ""  # part of the customer id, case-insensitive
    nps_category: str = ""  # promoter, passive, detractor, or "none" (never answered)
    sort: str = COLUMNS[0]
    descending: bool = False
    page: int = 1
    per_page: int = PAGE_SIZES[0]


@dataclass(frozen=True, slots=True)
class MemberPage:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    matching: int  # members that pass the filters
    members: int  # all members (erased ones left out)
    page: int
    pages: int
    query: MemberQuery


def parse_member_query(
    *,
    contains: str | None,
    nps_category: str | None,
    sort: str | None,
    order: str | None,
    page: str | None,
    per_page: str | None,
) -> MemberQuery:
    """Check the console's parameters; InvalidRequest names the one at fault."""
    if contains is not None and len(contains) > MAX_QUERY:
        raise InvalidRequest(f"q: at most {MAX_QUERY} characters")
    category = (nps_category or "").strip()
    if category not in ("", "promoter", "passive", "detractor", "none"):
        raise InvalidRequest(
            f"nps_category: {category[:40]!r} is not promoter, passive, detractor or none"
        )
    column = sort or COLUMNS[0]
    if column not in COLUMNS:
        raise InvalidRequest(f"sort: {column[:40]!r} is not one of {', '.join(COLUMNS)}")
    if order not in (None, "", "asc", "desc"):
        raise InvalidRequest(f"order: {order[:40]!r} is not asc or desc")
    return MemberQuery(
        contains=(contains or "").strip(),
        nps_category=category,
        sort=column,
        descending=order == "desc",
        page=_whole("page", page, 1, 1, 1_000_000),
        per_page=_whole("per_page", per_page, PAGE_SIZES[0], PAGE_SIZES[0], PAGE_SIZES[-1]),
    )


def _whole(name: str, value: str | None, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise InvalidRequest(f"{name}: a whole number from {lo} to {hi}")
    return int(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    # Missing values last whatever the order; numbers and strings each in their own order.
    if value is None:
        return (2, 0)
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value))


def _rows(profiles: Profiles, indices: np.ndarray) -> list[tuple[Any, ...]]:
    """These members' export columns, as tuples in `COLUMNS` order."""
    decoded = profiles.rows(indices, row_type(COLUMNS), COLUMNS)
    return [tuple(getattr(r, f"f{i}") for i in range(len(COLUMNS))) for r in decoded]


def member_page(
    profiles: Profiles, segment: str, masked: np.ndarray, query: MemberQuery
) -> MemberPage:
    """The page of `segment`'s members `query` asks for (NotFoundError for an unknown segment)."""
    indices = without(profiles.members(segment), masked)
    members = int(indices.size)
    if query.contains:
        ids = profiles.customer_ids[indices]
        hit = np.char.find(np.char.lower(ids), query.contains.lower()) >= 0
        indices = indices[hit]
    category_at = COLUMNS.index("nps_category")
    rows: list[tuple[Any, ...]]
    needs_all = query.nps_category or query.sort != COLUMNS[0]
    if needs_all:
        # Filtering by a column or sorting by one reads every matching member's row (the narrow
        # export records: tens of bytes each), then pages.
        rows = _rows(profiles, indices)
        if query.nps_category:
            wanted = None if query.nps_category == "none" else query.nps_category
            rows = [r for r in rows if r[category_at] == wanted]
        at = COLUMNS.index(query.sort)
        present = [r for r in rows if r[at] is not None]
        missing = [r for r in rows if r[at] is None]
        present.sort(key=lambda r: _sort_key(r[at]), reverse=query.descending)
        rows = present + missing
        matching = len(rows)
    else:
        # Ids ascend already: read only the page's rows.
        matching = int(indices.size)
        if query.descending:
            indices = indices[::-1]
        rows = []
    pages = max(1, math.ceil(matching / query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    if needs_all:
        rows = rows[start : start + query.per_page]
    else:
        chosen = np.ascontiguousarray(indices[start : start + query.per_page])
        rows = _rows(profiles, chosen)
    return MemberPage(
        columns=COLUMNS,
        rows=rows,
        matching=matching,
        members=members,
        page=page,
        pages=pages,
        query=query,
    )
