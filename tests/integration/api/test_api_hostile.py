"""What a hostile or careless client can and cannot do, over HTTP through the real app:

- the storefront's `recommend` key reads products and offers, never a customer's survey answers or
  segment membership (those need `export`);
- ids longer than the contract's limit are a cheap 400 before any lookup, on every route;
- repeated list parameters are merged (`exclude=A&exclude=B`), other repeated ones are a 400;
- a path or query string that is not UTF-8 is a 400;
- error messages name the parameter, cut long values and never show a path of ours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.contract import MAX_ID_LENGTH
from recsvc.store.base import Store
from tests.api_support import ALL_SCOPES_KEY, API_KEYS, KEYS, Artifact, client_for

STOREFRONT = {"X-API-Key": KEYS["recommend"]}
MARKETER = {"X-API-Key": ALL_SCOPES_KEY}
SURVEY_FIELDS = {"segment", "nps_category", "complaint_theme", "known_customer"}


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store, api_keys=API_KEYS) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def detractor(artifact: Artifact) -> str:
    """A stored detractor with a complaint theme: the customer whose answers must not leak."""
    table = artifact.customer_table()
    row = table.filter(pl.col(ct.NPS_CATEGORY) == "detractor").row(0, named=True)
    return str(row[c.CUSTOMER_ID])


# --- what the storefront key reads ---------------------------------------------------------------


def test_the_storefront_key_gets_products_but_no_survey_answers_or_segments(
    client: TestClient[Litestar], detractor: str
) -> None:
    recs = client.get(f"/v1/customers/{detractor}/recommendations", headers=STOREFRONT).json()
    assert recs["items"] and recs["cold_start"] is False
    assert not SURVEY_FIELDS & set(recs), recs.keys()
    offers = client.get(f"/v1/customers/{detractor}/offers", headers=STOREFRONT).json()
    assert offers["offers"], "a detractor earns a recovery offer"
    assert not SURVEY_FIELDS & set(offers), offers.keys()
    assert "holdouts" not in offers  # a withheld recovery offer would name them a detractor
    for offer in offers["offers"]:
        assert set(offer) == {
            "id",
            "kind",
            "title",
            "text",
            "priority",
            "discount_percent",
            "valid_until",
            "products",
            "experiment",
            "arm",
        }


def test_an_unknown_id_looks_like_a_known_one_to_the_storefront_key(
    client: TestClient[Litestar], detractor: str
) -> None:
    """Only `cold_start` differs, which the storefront needs to label the list."""
    known = client.get(f"/v1/customers/{detractor}/recommendations", headers=STOREFRONT).json()
    unknown = client.get("/v1/customers/NOBODY-HERE/recommendations", headers=STOREFRONT).json()
    assert set(known) == set(unknown) == {"customer_id", "model_version", "cold_start", "items"}


def test_a_key_with_export_also_reads_the_survey_answers_and_segments(
    client: TestClient[Litestar], detractor: str
) -> None:
    recs = client.get(f"/v1/customers/{detractor}/recommendations", headers=MARKETER).json()
    assert recs["known_customer"] is True and "segment" in recs
    offers = client.get(f"/v1/customers/{detractor}/offers", headers=MARKETER).json()
    assert offers["nps_category"] == "detractor" and "complaint_theme" in offers
    assert all("segment" in offer for offer in offers["offers"])


# --- long ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/customers/{id}",
        "/v1/customers/{id}/recommendations",
        "/v1/customers/{id}/offers",
    ],
)
def test_an_id_over_the_limit_is_a_400_naming_the_parameter_without_echoing_it(
    client: TestClient[Litestar], path: str
) -> None:
    huge = "x" * 60_000
    response = client.get(path.format(id=huge), headers=MARKETER)
    assert response.status_code == 400, response.text[:200]
    detail = response.json()["detail"]
    assert "customer_id" in detail and "128" in detail
    assert len(response.text) < 300


def test_an_id_at_the_limit_is_looked_up_and_an_unknown_one_is_cut_in_the_404(
    client: TestClient[Litestar],
) -> None:
    at_limit = "y" * MAX_ID_LENGTH
    assert client.get(f"/v1/customers/{at_limit}/recommendations", headers=MARKETER).json()[
        "cold_start"
    ]
    missing = client.get(f"/v1/customers/{at_limit}", headers=MARKETER)
    assert missing.status_code == 404
    assert at_limit not in missing.json()["detail"] and "..." in missing.json()["detail"]


def test_an_excluded_id_over_the_limit_or_with_control_characters_is_a_400(
    client: TestClient[Litestar],
) -> None:
    for bad in ("z" * (MAX_ID_LENGTH + 1), "P1\nP2"):
        response = client.get(
            "/v1/customers/C00000001/recommendations",
            params={"exclude": ["P000001", bad]},
            headers=MARKETER,
        )
        assert response.status_code == 400, bad
        assert response.json()["detail"].startswith("exclude: ")


# --- repeated parameters -------------------------------------------------------------------------


def _first_items(client: TestClient[Litestar], **params: object) -> list[str]:
    response = client.get(
        "/v1/customers/C00000001/recommendations", params=params, headers=MARKETER
    )
    assert response.status_code == 200, response.text
    return [item["product_id"] for item in response.json()["items"]]


def test_repeated_and_comma_separated_exclusions_are_merged(client: TestClient[Litestar]) -> None:
    top = _first_items(client, limit=3)
    repeated = _first_items(client, limit=3, exclude=[top[0], top[1]])
    assert top[0] not in repeated and top[1] not in repeated and repeated[0] == top[2]
    mixed = _first_items(client, limit=3, exclude=[f"{top[0]},{top[1]}", top[2]])
    assert not set(top) & set(mixed)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/customers/C00000001/recommendations", "limit=1&limit=5"),
        ("/v1/customers/C00000001/recommendations", "in_stock=true&in_stock=false"),
        ("/v1/nps/summary", "by=segment&by=country"),
        ("/v1/segments/detractors/members", "format=csv&format=ndjson"),
    ],
)
def test_a_repeated_single_parameter_is_a_400_naming_it(
    client: TestClient[Litestar], path: str, query: str
) -> None:
    response = client.get(f"{path}?{query}", headers=MARKETER)
    assert response.status_code == 400
    name = query.split("=")[0]
    assert response.json()["detail"] == f"'{name}': given more than once; give it once"


def test_repeated_export_fields_are_merged(client: TestClient[Litestar]) -> None:
    response = client.get(
        "/v1/segments/detractors/members?fields=nps_category&fields=churn_risk,country",
        headers=MARKETER,
    )
    assert response.status_code == 200
    assert response.text.splitlines()[0] == "customer_id,nps_category,churn_risk,country"


# --- bytes that are not text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/v1/customers/%FF%FE/recommendations",
        "/v1/customers/C00000001/recommendations?exclude=%FF",
        "/v1/nps/summary?since=%C3",
    ],
)
def test_a_path_or_query_that_is_not_utf8_is_a_400(client: TestClient[Litestar], url: str) -> None:
    response = client.get(url, headers=MARKETER)
    assert response.status_code == 400, response.text
    assert "not valid UTF-8" in response.json()["detail"]


# --- messages name things, never our paths --------------------------------------------------------


def test_an_unknown_since_version_is_a_404_without_a_path(
    client: TestClient[Litestar], store: Store
) -> None:
    response = client.get(
        "/v1/segments/detractors/members?since_version=20000101T000000Z-gone", headers=MARKETER
    )
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "20000101T000000Z-gone" in detail
    assert "/" not in detail.replace("/v1", "") and "redis://" not in detail


def test_a_date_in_a_summary_query_is_checked_before_any_reading(
    client: TestClient[Litestar],
) -> None:
    today = dt.date.today().isoformat()
    assert client.get(f"/v1/nps/summary?since={today}", headers=MARKETER).status_code == 200
