"""Query parameters, one rule each for every route: a list parameter (`exclude`, `category`,
`fields`) takes repeats and commas alike (`?exclude=A&exclude=B,C` is three ids), any other
parameter given twice is a 400 rather than one of the values silently winning, and percent-encoded
bytes must decode as UTF-8 (a path or query that is not text is a 400, not a mangled id)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Annotated, Any

from litestar import Request
from litestar.params import Parameter, PathParameter

from recsvc.domain.contract import ID_RULE, MAX_ID_LENGTH, id_problem
from recsvc.errors import InvalidRequest, shown

# A customer id in a path, documented (and checked by Litestar) under the id rule's length;
# `check_id` adds the rest of the rule.
# The catalogue filters recommendations and similar products take.
CategoryFilter = Annotated[
    list[str] | None,
    Parameter(description="categories to keep, repeated or comma-separated"),
]
StockFilter = Annotated[bool | None, Parameter(description="keep only (not) in-stock products")]
CustomerId = Annotated[
    str,
    PathParameter(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description=f"the shop's customer id: {ID_RULE}",
    ),
]

# Paging: items per page and items skipped (the storefront's handlers and its fast lane).
LIMIT_RANGE = (1, 100)
DEFAULT_LIMIT = 10
OFFSET_RANGE = (0, 10_000)

# A route handler's `opt` key naming its list-valued query parameters.
LIST_PARAMETERS = "list_parameters"
MAX_LIST_ITEMS = 200


def lists(*names: str) -> dict[str, tuple[str, ...]]:
    """The `opt` of a route handler whose query parameters `names` are lists."""
    return {LIST_PARAMETERS: names}


def check_query(request: Request[Any, Any, Any]) -> None:
    """Refuse a path or query string that is not UTF-8, and repeated non-list parameters.

    Cheap on the storefront's path: nothing is parsed unless a `%` or a second parameter is there.
    """
    scope = request.scope
    query: bytes = scope.get("query_string", b"")
    raw_path: bytes = scope.get("raw_path") or b""
    if b"%" in raw_path:
        _check_text("the path", raw_path)
    if b"%" in query:
        _check_text("the query string", query)
    if b"&" not in query:
        return
    allowed = request.route_handler.opt.get(LIST_PARAMETERS, ())
    seen: set[str] = set()
    for name, _ in urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen and name not in allowed:
            raise InvalidRequest(f"{shown(name)}: given more than once; give it once")
        seen.add(name)


def _check_text(where: str, raw: bytes) -> None:
    try:
        urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{where} is not valid UTF-8 once percent-decoded") from None


def split_list(name: str, values: Sequence[str] | None) -> list[str]:
    """A list parameter's values: every repeat, each split at commas, blanks dropped."""
    if not values:
        return []
    items = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if len(items) > MAX_LIST_ITEMS:
        raise InvalidRequest(f"{name}: at most {MAX_LIST_ITEMS} values")
    return items


def check_id(name: str, value: str) -> str:
    """An id from a path or query, under the contract's id rule, before any lookup (400)."""
    problem = id_problem(value)
    if problem:
        raise InvalidRequest(f"{name}: {problem} (an id is {ID_RULE})")
    return value


def id_list(name: str, values: Sequence[str] | None) -> list[str]:
    """A list parameter of ids, each under the id rule."""
    items = split_list(name, values)
    for item in items:
        check_id(name, item)
    return items
