"""Nothing a client sends makes the service fail: a list of nasty requests (malformed JSON, wrong
types, unknown fields, huge bodies, path injection, non-UTF-8, control characters, very long ids,
unicode) thrown at every endpoint, against both stores, answers below 500 with a JSON error body."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.store.base import Store
from tests.api_support import (
    ALL_SCOPES_KEY,
    API_KEYS,
    Artifact,
    client_for,
)

MAX_BODY = 64 * 1024
GOOD = {
    "response_id": "nasty-0",
    "customer_id": "NASTY-1",
    "score": 5,
    "responded_at": "2024-05-01T10:00:00Z",
    "touchpoint": "post_delivery",
}

# Path segments a client might put where an id or a name goes.
NASTY_IDS = [
    "x" * 5000,
    "客户-ß-😀",
    "%00",
    "a%0Ab",
    "%1B%5B31m",
    "%FF%FE",
    "..",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f",
    "'%3B DROP TABLE customers--",
    "{c:x}",
    "*",
    "%20",
    "$(reboot)",
    "%E2%80%AE",
]
NASTY_QUERIES = {
    "recommendations": [
        "limit=-1",
        "limit=1e9",
        "limit=abc",
        "limit=",
        "offset=-1",
        "offset=99999999999999999999999",
        "exclude_purchased=maybe",
        "in_stock=2",
        "category=%FF",
        "category=" + ",".join(["a"] * 5000),
        "exclude=" + ",".join(f"P{i}" for i in range(500)),
        "exclude=" + "x" * 5000,
        "country=" + "x" * 10000,
        "age_band=%00",
        "limit=1&limit=2&limit=x",
    ],
    "summary": [
        "by=%00",
        "by=segment&by=country",
        "since=9999-99-99",
        "since=0000-01-01",
        "until=9999-12-31",
        "since=2024-01-01T00:00:00",
        "since=" + "9" * 400,
        "until=%FF",
    ],
    "members": [
        "format=exe",
        "format=%00",
        "fields=../../etc/passwd",
        "fields=" + ",".join(["customer_id"] * 300),
        "fields=%FF",
        "since_version=../../etc",
        "since_version=" + "v" * 3000,
        "since_version=%00",
    ],
}
NASTY_BODIES: list[bytes] = [
    b"",
    b"{",
    b"null",
    b"[]",
    b"123",
    b'"text"',
    b"\xff\xfe\x00garbage",
    json.dumps({**GOOD, "customer_id": "caf\udce9"}, ensure_ascii=True).encode(),
    b"[" * 30_000 + b"]" * 30_000,  # nested deeper than the decoder's recursion limit
    b'{"score": 1e400}',
    json.dumps({**GOOD, "score": "nine"}).encode(),
    json.dumps({**GOOD, "score": True}).encode(),
    json.dumps({**GOOD, "score": 9.5}).encode(),
    json.dumps({**GOOD, "responded_at": 1714557600}).encode(),
    json.dumps({**GOOD, "responded_at": "yesterday"}).encode(),
    json.dumps({**GOOD, "touchpoint": ["post_delivery"]}).encode(),
    json.dumps({**GOOD, "extra": {"nested": [1, 2]}}).encode(),
    json.dumps({**GOOD, "response_id": "r" * 10_000}).encode(),
    json.dumps({**GOOD, "customer_id": "客户😀" * 30}).encode(),
    json.dumps({**GOOD, "comment": "\u0000\u202e" * 100}).encode(),
    json.dumps([GOOD] * 1001).encode(),
    json.dumps([{**GOOD, "response_id": f"nasty-{i}"} for i in range(3)] + [None, 7]).encode(),
    json.dumps({"a": "b" * (MAX_BODY + 10)}).encode(),  # over the body limit: 413
]


@dataclass(frozen=True)
class Nasty:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str | bytes] = field(default_factory=dict)

    def __str__(self) -> str:
        shown = self.path if len(self.path) < 120 else self.path[:120] + "..."
        return f"{self.method} {shown} body={None if self.body is None else self.body[:60]!r}"


def nasty_requests(version: str) -> Iterator[Nasty]:
    for nasty in NASTY_IDS:
        yield Nasty("GET", f"/v1/customers/{nasty}/recommendations")
        yield Nasty("GET", f"/v1/customers/{nasty}/offers")
        yield Nasty("GET", f"/v1/customers/{nasty}")
        yield Nasty("GET", f"/v1/segments/{nasty}/members")
        yield Nasty("POST", f"/v1/models/{nasty}/activate")
    for query in NASTY_QUERIES["recommendations"]:
        yield Nasty("GET", f"/v1/customers/C00000001/recommendations?{query}")
    for query in NASTY_QUERIES["summary"]:
        yield Nasty("GET", f"/v1/nps/summary?{query}")
    for query in NASTY_QUERIES["members"]:
        yield Nasty("GET", f"/v1/segments/detractors/members?{query}")
    for body in NASTY_BODIES:
        yield Nasty("POST", "/v1/nps-responses", body, {"Content-Type": "application/json"})
    yield Nasty(
        "POST", "/v1/nps-responses", json.dumps(GOOD).encode(), {"Content-Type": "text/plain"}
    )
    # Wrong methods, unknown routes, bodies where none belong.
    for method, path in itertools.product(
        ["PUT", "DELETE", "PATCH"],
        ["/v1/models", "/v1/nps-responses", "/v1/segments", "/v1/nps/summary", "/metrics"],
    ):
        yield Nasty(method, path, b"{}")
    yield Nasty("GET", "/v1/nps-responses")
    yield Nasty("POST", "/v1/models", b"{")
    yield Nasty("POST", f"/v1/models/{version}/activate", b"\xff" * 100)
    yield Nasty("GET", "/v1/../../etc/passwd")
    yield Nasty("GET", "/v1/customers/")
    # Header abuse: a huge or odd key must be refused, never crash.
    for headers in (
        {"Authorization": "Bearer " + "k" * 20_000},
        {"X-API-Key": "ключ-😀-key-0123456789".encode()},
        {"X-API-Key": b"\xff\xfe-not-utf8-0123456789"},
        {"Authorization": "Bearer\t\tspaced key"},
        {"Authorization": "Bearer " + ALL_SCOPES_KEY, "Content-Length": "abc"},
    ):
        yield Nasty("GET", "/v1/segments", headers=headers)


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store, api_keys=API_KEYS, max_body_bytes=MAX_BODY) as test_client:
        yield test_client


def _check(response: Any, request: Nasty) -> None:
    assert response.status_code < 500, f"{request} -> {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), request
        body = response.json()
        assert set(body) == {"error", "detail"}, request
        assert isinstance(body["error"], str) and body["error"], request
        assert isinstance(body["detail"], str) and body["detail"], request


def test_nasty_requests_never_cause_a_server_error(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    statuses: dict[int, int] = {}
    for nasty in nasty_requests(artifact.version):
        headers: dict[str, str | bytes] = {"X-API-Key": ALL_SCOPES_KEY, **nasty.headers}
        response = client.request(nasty.method, nasty.path, content=nasty.body, headers=headers)
        _check(response, nasty)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    # The list really exercises the error paths, not only the happy ones.
    assert {400, 401, 404, 405, 413} <= set(statuses), statuses


def test_a_body_over_the_limit_is_a_413_with_or_without_a_content_length(
    client: TestClient[Litestar],
) -> None:
    headers = {"X-API-Key": ALL_SCOPES_KEY, "Content-Type": "application/json"}
    big = b'{"comment": "' + b"x" * MAX_BODY + b'"}'
    announced = client.post("/v1/nps-responses", content=big, headers=headers)
    assert announced.status_code == 413
    assert announced.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield big[: MAX_BODY // 2]
        yield big[MAX_BODY // 2 :]

    streamed = client.post("/v1/nps-responses", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert streamed.json()["error"] == "payload_too_large"


def test_after_the_barrage_the_service_still_answers(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    headers = {"X-API-Key": ALL_SCOPES_KEY, "Content-Type": "application/json"}
    assert client.get("/health/ready").json()["status"] == "ready"
    recs = client.get("/v1/customers/C00000001/recommendations", headers=headers)
    assert recs.status_code == 200 and recs.json()["model_version"] == artifact.version
    body = json.dumps({**GOOD, "response_id": "after-barrage"})
    assert client.post("/v1/nps-responses", content=body, headers=headers).status_code == 202
