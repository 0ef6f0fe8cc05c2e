"""The storefront's fast lane answers exactly what the route's handler answers: the same requests,
with the lane on and off, give the same status, headers and body, on both stores; the lane takes
the plain ones (counted in /metrics) and leaves every other one to the handler."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from recsvc.domain import columns as c
from recsvc.store.base import Store
from tests.api_support import ALL_SCOPES_KEY, API_KEYS, KEYS, Artifact, auth, client_for

RECS = "/v1/customers/{customer_id}/recommendations"
OFFERS = "/v1/customers/{customer_id}/offers"


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store, api_keys=API_KEYS) as test_client:
        yield test_client


def lane_answers(client: TestClient[Litestar]) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        sample.labels["path"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "recsvc_fast_lane_answers_total"
    }


def both_ways(
    client: TestClient[Litestar], path: str, headers: dict[str, str]
) -> tuple[tuple[int, str, bytes], tuple[int, str, bytes]]:
    """(status, content type, body) with the lane on, then with it off."""
    answers = []
    for on in (True, False):
        client.app.state.fast_lane = on
        try:
            response = client.get(path, headers=headers)
        finally:
            client.app.state.fast_lane = True
        answers.append((response.status_code, response.headers["content-type"], response.content))
    return answers[0], answers[1]


def _known(artifact: Artifact, k: int = 0) -> str:
    return str(artifact.table(c.ORDERS)[c.CUSTOMER_ID].unique().sort()[k])


def _plain_category(artifact: Artifact) -> str:
    names = artifact.table(c.PRODUCTS)[c.CATEGORY].unique().sort().to_list()
    return next(name for name in names if name.replace("_", "").isalnum())


def test_plain_requests_take_the_lane_and_answer_as_the_handler(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    customer = _known(artifact)
    products = artifact.table(c.PRODUCTS)[c.PRODUCT_ID].sort().to_list()
    category = _plain_category(artifact)
    plain = [
        f"/v1/customers/{customer}/recommendations",
        f"/v1/customers/{customer}/recommendations?limit=5",
        f"/v1/customers/{customer}/recommendations?limit=5&offset=5",
        f"/v1/customers/{customer}/recommendations?exclude={products[0]},{products[1]}"
        f"&exclude={products[2]}&limit=20",
        f"/v1/customers/{customer}/recommendations?category={category}&in_stock=true",
        f"/v1/customers/{customer}/recommendations?exclude_purchased=false&limit=100",
        "/v1/customers/NEW-VISITOR-1/recommendations?country=DE&age_band=25-34",
        f"/v1/customers/{customer}/offers",
    ]
    keys = [auth("recommend"), {"X-API-Key": ALL_SCOPES_KEY}]
    before = lane_answers(client)
    for path in plain:
        for headers in keys:
            on, off = both_ways(client, path, headers)
            assert on == off, path
            assert on[0] == 200, (path, on)
    after = lane_answers(client)
    taken = sum(after.values()) - sum(before.values())
    assert taken == len(plain) * len(keys)
    assert after.get(OFFERS, 0) - before.get(OFFERS, 0) == len(keys)
    # A key with `export` sees the segment; the lane gives it just as the handler does.
    body = client.get(plain[0], headers={"X-API-Key": ALL_SCOPES_KEY}).json()
    assert "segment" in body and "known_customer" in body
    assert "segment" not in client.get(plain[0], headers=auth("recommend")).json()


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=0", 400),
        ("limit=101", 400),
        ("limit=abc", 400),
        ("limit=05", 400),
        ("limit=5&limit=6", 400),
        ("offset=10001", 400),
        ("in_stock=True", 200),
        ("in_stock=maybe", 400),
        ("category=no-such-category", 400),
        ("category=toys+%26+games", None),
        ("colour=red", 200),  # unknown parameters are ignored
        ("limit=", 400),
        ("exclude=%FF", 400),
        ("exclude=A;B", None),
    ],
)
def test_other_requests_go_to_the_handler_and_answer_the_same(
    client: TestClient[Litestar], artifact: Artifact, query: str, status: int | None
) -> None:
    path = f"/v1/customers/{_known(artifact)}/recommendations?{query}"
    before = lane_answers(client)
    on, off = both_ways(client, path, auth("recommend"))
    assert on == off
    if status is not None:
        assert on[0] == status, on
    assert lane_answers(client) == before


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-key-0123456789"}, 401),
        (auth("export"), 403),
        ({"Authorization": "bearer " + KEYS["recommend"]}, 200),
    ],
)
def test_keys_are_checked_the_handler_s_way(
    client: TestClient[Litestar], artifact: Artifact, headers: dict[str, str], status: int
) -> None:
    for template in ("/v1/customers/{}/recommendations", "/v1/customers/{}/offers"):
        on, off = both_ways(client, template.format(_known(artifact, 1)), headers)
        assert on == off
        assert on[0] == status


def test_odd_paths_and_ids_go_to_the_handler(client: TestClient[Litestar]) -> None:
    for path in (
        "/v1/customers/C%2000001/recommendations",
        "/v1/customers/" + "X" * 200 + "/recommendations",
        "/v1/customers/%E2%82%AC/offers",
    ):
        on, off = both_ways(client, path, auth("recommend"))
        assert on == off, path


def test_a_live_answer_shows_on_the_lane_at_once(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    customer = _known(artifact, 2)
    posted = client.post(
        "/v1/nps-responses",
        json={
            "response_id": f"lane-{customer}",
            "customer_id": customer,
            "score": 0,
            "responded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "touchpoint": "post_delivery",
        },
        headers=auth("ingest"),
    )
    assert posted.status_code == 202, posted.text
    on, off = both_ways(client, f"/v1/customers/{customer}/offers", {"X-API-Key": ALL_SCOPES_KEY})
    assert on == off
    assert msgspec.json.decode(on[2])["nps_category"] == "detractor"
