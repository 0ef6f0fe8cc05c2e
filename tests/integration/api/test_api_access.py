"""API keys and scopes over HTTP, for every route: no key is a 401, a key without the route's scope a
403, the right key passes (as `Authorization: Bearer` or `X-API-Key`); probes, metrics and docs
need no key; keys never reach the logs; without keys (development mode) everything is open."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.store.base import Store
from tests.api_support import (
    ALL_SCOPES_KEY,
    API_KEYS,
    KEYS,
    Artifact,
    client_for,
    published_store,
)

_ids = itertools.count()


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    scope: str | None  # None: open

    def call(self, client: TestClient[Litestar], headers: dict[str, str]) -> Any:
        if self.method == "POST" and self.path == "/v1/nps-responses":
            body = {
                "response_id": f"access-{next(_ids)}",
                "customer_id": "ACCESS-1",
                "score": 9,
                "responded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "touchpoint": "relationship",
            }
            return client.post(self.path, json=body, headers=headers)
        if self.method == "POST" and self.path == "/v1/surveys/sent":
            sends = [{"customer_id": "ACCESS-1", "touchpoint": "relationship"}]
            return client.post(self.path, json={"sends": sends}, headers=headers)
        return client.request(self.method, self.path, headers=headers)


@pytest.fixture(scope="module")
def store(artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with published_store("file", artifact, tmp_path_factory.mktemp("access")) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store, api_keys=API_KEYS) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def routes(artifact: Artifact) -> list[Route]:
    customer = "C00000001"
    return [
        Route("GET", f"/v1/customers/{customer}/recommendations", "recommend"),
        Route("GET", f"/v1/customers/{customer}/offers", "recommend"),
        Route(
            "GET",
            f"/v1/products/{artifact.table('products')['product_id'][0]}/similar",
            "recommend",
        ),
        Route("GET", f"/v1/customers/{customer}", "export"),
        Route("GET", "/v1/segments", "export"),
        Route("GET", "/v1/segments/detractors/members", "export"),
        Route("GET", "/v1/nps/summary?by=segment", "export"),
        Route("GET", "/v1/nps/themes", "export"),
        Route("POST", "/v1/nps-responses", "ingest"),
        Route("GET", "/v1/models", "admin"),
        Route("POST", f"/v1/models/{artifact.version}/activate", "admin"),
        Route("GET", "/v1/privacy/erasures", "admin"),
        Route("DELETE", "/v1/customers/ACCESS-ERASED", "privacy"),
        Route("GET", f"/v1/customers/{customer}/data", "privacy"),
        Route("GET", "/v1/surveys/due?touchpoint=relationship", "survey"),
        Route("POST", "/v1/surveys/sent", "survey"),
        Route("GET", "/health/live", None),
        Route("GET", "/health/ready", None),
        Route("GET", "/metrics", None),
        Route("GET", "/docs", None),
        Route("GET", "/docs/openapi.json", None),
    ]


def test_every_scoped_route_answers_401_without_a_key(
    client: TestClient[Litestar], routes: list[Route]
) -> None:
    for route in routes:
        if route.scope is None:
            continue
        response = route.call(client, {})
        assert response.status_code == 401, route
        assert response.json()["error"] == "unauthorized"
        assert "Authorization: Bearer KEY" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_an_unknown_or_malformed_key_is_a_401(
    client: TestClient[Litestar], routes: list[Route]
) -> None:
    scoped = [route for route in routes if route.scope is not None]
    for route, headers in itertools.product(
        scoped,
        [
            {"Authorization": "Bearer not-a-configured-key-000"},
            {"X-API-Key": KEYS["admin"][:-1]},
            {"Authorization": f"Basic {KEYS['admin']}"},  # not a bearer token, no X-API-Key
            {"Authorization": "Bearer "},
        ],
    ):
        response = route.call(client, headers)
        assert response.status_code == 401, (route, headers)
        assert response.json()["error"] == "unauthorized"


def test_a_key_without_the_routes_scope_is_a_403_naming_the_scope(
    client: TestClient[Litestar], routes: list[Route]
) -> None:
    for route in routes:
        if route.scope is None:
            continue
        for scope, key in KEYS.items():
            if scope == route.scope:
                continue
            response = route.call(client, {"Authorization": f"Bearer {key}"})
            assert response.status_code == 403, (route, scope)
            assert response.json() == {
                "error": "forbidden",
                "detail": f"this API key lacks the '{route.scope}' scope",
            }


@pytest.mark.parametrize("form", ["bearer", "x-api-key", "lower-case bearer"])
def test_the_key_with_the_routes_scope_passes_in_either_header(
    client: TestClient[Litestar], routes: list[Route], form: str
) -> None:
    for route in routes:
        if route.scope is None:
            continue
        key = KEYS[route.scope]
        headers = {
            "bearer": {"Authorization": f"Bearer {key}"},
            "x-api-key": {"X-API-Key": key},
            "lower-case bearer": {"authorization": f"bearer  {key} "},
        }[form]
        response = route.call(client, headers)
        assert response.status_code < 300, (route, response.text)
        all_scopes = route.call(client, {"X-API-Key": ALL_SCOPES_KEY})
        assert all_scopes.status_code < 300, route


def test_probes_metrics_and_docs_need_no_key(
    client: TestClient[Litestar], routes: list[Route]
) -> None:
    for route in routes:
        if route.scope is None:
            assert route.call(client, {}).status_code == 200, route


def test_the_openapi_document_declares_both_key_forms_on_scoped_routes(
    client: TestClient[Litestar],
) -> None:
    schema = client.get("/docs/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "api_key"}
    assert schema["components"]["securitySchemes"]["api_key"]["name"] == "X-API-Key"
    operation = schema["paths"]["/v1/customers/{customer_id}/recommendations"]["get"]
    assert operation["security"] == [{"bearer": []}, {"api_key": []}]
    assert "security" not in schema["paths"]["/health/ready"]["get"]


def test_keys_never_reach_the_logs_or_the_replies(
    client: TestClient[Litestar], routes: list[Route], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-key-that-must-not-be-logged-4711"
    with caplog.at_level(logging.DEBUG):
        for route in routes:
            for headers in (
                {"Authorization": f"Bearer {wrong}"},
                {"X-API-Key": KEYS["recommend"]},
                {"X-API-Key": KEYS[route.scope or "admin"]},
            ):
                response = route.call(client, headers)
                assert wrong not in response.text
                assert all(key not in response.text for key in API_KEYS)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged, "the requests were logged at all"
    assert wrong not in logged
    assert all(key not in logged for key in API_KEYS)


def test_without_keys_every_route_is_open(store: Store, routes: list[Route]) -> None:
    with client_for(store) as open_client:
        for route in routes:
            assert route.call(open_client, {}).status_code < 300, route
