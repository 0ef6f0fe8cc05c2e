"""The storefront's two routes without Litestar's per-request machinery, for the requests that need
none of it.

Measured through granian on one core (`bench/bench_service.py`, 1M customers): through the
handler a recommendation cost about 210 us of server CPU, against about 100 us for a bare Litestar
app returning a constant body; building the `Request`, running the key hook, extracting eight
query parameters, resolving dependencies and building a `Response` took more than ranking the
customer. Through this lane the same answer costs about as much as the bare app.

The lane is a route middleware on the two handlers, so Litestar has routed the request and parsed
its path parameter. It answers a request only when it can answer it exactly as the handler would:

- GET, with a key that carries the route's scope (or no keys configured: development mode);
- no percent sign in the path or the query, and every query parameter one the route declares,
  each given once (list parameters may repeat) with a plain value: digits in range, `true` or
  `false`, ids and names of unreserved characters;
- the service answers without an error.

Anything else (a missing or weak key, an unknown or repeated parameter, a value out of range, a
category that does not exist, no model yet) goes on to the handler, which answers it as it always
has (401, 403, 400, 503). The rules stay where they are (the handlers' signatures and
`recsvc.api.params`); the lane recognises only their plain subset.
`tests/integration/api/test_fast_lane.py` sends the same requests with the lane on and off and
compares status, headers and body.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
from litestar.datastructures import State
from litestar.types import ASGIApp, Receive, Scope, Send

from recsvc.api.auth import granted, key_in
from recsvc.api.dependencies import active_model
from recsvc.api.params import DEFAULT_LIMIT, LIMIT_RANGE, OFFSET_RANGE, check_id
from recsvc.api.storefront.services import offers_for, recommendations_for

# Bytes a plain query value may hold: unreserved characters and the list separator. A value with
# anything else (a space, `+`, `%`, `;`) is decoded by Litestar's rules, on the handler's path.
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~,")
_BOOLEANS = {b"true": True, b"false": False}
_MAX_DIGITS = 6

Answer = Callable[[State, str, dict[str, Any], frozenset[str]], msgspec.Struct]


class Route(msgspec.Struct, frozen=True):
    """What the lane must know of one route: its scope, its query parameters by kind, and how to
    answer (the service call the handler makes, given the app's state, the customer, the parsed
    parameters and the key's scopes)."""

    scope: str
    answer: Answer
    ints: dict[str, tuple[int, int]] = {}
    booleans: frozenset[str] = frozenset()
    texts: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()


def _recommendations(
    state: State, customer_id: str, query: dict[str, Any], scopes: frozenset[str]
) -> msgspec.Struct:
    holder = state.holder
    model = active_model(holder)  # none yet: an error, so the handler answers (503)
    return recommendations_for(
        model,
        customer_id,
        holder.live(customer_id),
        limit=query.get("limit", DEFAULT_LIMIT),
        offset=query.get("offset", 0),
        exclude_purchased=query.get("exclude_purchased", True),
        exclude=query.get("exclude"),
        category=query.get("category"),
        in_stock=query.get("in_stock"),
        given_features={"country": query.get("country"), "age_band": query.get("age_band")},
        sees_answers="export" in scopes,
        holdout_share=state.settings.recommendation_holdout_share,
        exposures=state.exposures,
    )


def _offers(
    state: State, customer_id: str, query: dict[str, Any], scopes: frozenset[str]
) -> msgspec.Struct:
    holder = state.holder
    return offers_for(
        active_model(holder),
        customer_id,
        holder.live(customer_id),
        state.catalog,
        sees_answers="export" in scopes,
        exposures=state.exposures,
    )


RECOMMENDATIONS = Route(
    scope="recommend",
    answer=_recommendations,
    ints={"limit": LIMIT_RANGE, "offset": OFFSET_RANGE},
    booleans=frozenset({"exclude_purchased", "in_stock"}),
    texts=frozenset({"country", "age_band"}),
    lists=frozenset({"exclude", "category"}),
)
OFFERS = Route(scope="recommend", answer=_offers)
# Requests the lane answered, per route template, in this worker
# (`recsvc_fast_lane_answers_total`).
ANSWERED: Counter[str] = Counter()

_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")


class FastLane:
    """The route middleware (`middleware=[DefineMiddleware(FastLane, route=...)]`)."""

    def __init__(self, app: ASGIApp, route: Route) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._answer(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _answer(self, scope: Scope) -> bytes | None:
        body = self._try(scope)
        if body is not None:
            ANSWERED[scope["path_template"]] += 1
        return body

    def _try(self, scope: Scope) -> bytes | None:
        """The response body, or None: the handler answers."""
        state: State = scope["litestar_app"].state
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or not state.get("fast_lane", True)
            or b"%" in (scope.get("raw_path") or b"%")
        ):
            return None
        scopes = _granted(scope, state)
        if scopes is None or self.route.scope not in scopes:
            return None
        query = _plain_query(scope.get("query_string", b""), self.route)
        customer_id = scope["path_params"].get("customer_id")
        if query is None or not isinstance(customer_id, str):
            return None
        try:
            check_id("customer_id", customer_id)
            return _encode(self.route.answer(state, customer_id, query, scopes))
        except Exception:  # every error is the handler's to answer, with its status and words
            return None


def _granted(scope: Scope, state: State) -> frozenset[str] | None:
    """The key's scopes (every scope in development mode); None when the handler must decide."""
    keys = state.settings.api_keys
    if not keys:  # development mode: no header to read
        return granted(keys, None)
    authorization = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is not None:
                return None
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            if api_key is not None:
                return None
            api_key = value.decode("latin-1")
    return granted(keys, key_in(authorization, api_key))


def _plain_query(raw: bytes, route: Route) -> dict[str, Any] | None:
    """The parameters of a plain query string, as the handler would receive them; None when the
    handler must parse it."""
    query: dict[str, Any] = {}
    if not raw:
        return query
    for part in raw.split(b"&"):
        name_bytes, equals, value = part.partition(b"=")
        if not equals or not value or not _PLAIN.issuperset(value):
            return None
        if not _PLAIN.issuperset(name_bytes):
            return None
        name = name_bytes.decode("ascii")
        if name in route.lists:
            query.setdefault(name, []).append(value.decode("ascii"))
            continue
        if name in query:
            return None
        if name in route.ints:
            low, high = route.ints[name]
            if not value.isdigit() or len(value) > _MAX_DIGITS or value[:1] == b"0" != value:
                return None
            number = int(value)
            if not low <= number <= high:
                return None
            query[name] = number
        elif name in route.booleans:
            if value not in _BOOLEANS:
                return None
            query[name] = _BOOLEANS[value]
        elif name in route.texts:
            query[name] = value.decode("ascii")
        else:
            return None
    return query
