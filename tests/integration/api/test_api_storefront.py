"""Recommendations and offers over HTTP, through the real app on a real trained version, against
both stores: filters, paging, cold start, limits, and offers that follow live NPS answers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.api.app import create_app
from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.offers import load_offers
from recsvc.errors import ConfigError
from recsvc.service.settings import Settings
from tests.api_support import Artifact


@pytest.fixture(scope="module")
def customers(artifact: Artifact) -> pl.DataFrame:
    has_identity = np.load(artifact.directory / "customer_has_identity.npy")
    ids = np.load(artifact.directory / "customer_ids.npy")
    learned = pl.DataFrame({c.CUSTOMER_ID: ids.astype(str), "learned": has_identity})
    return artifact.customer_table().join(learned, on=c.CUSTOMER_ID).sort(c.CUSTOMER_ID)


def _catalog(artifact: Artifact) -> pl.DataFrame:
    return artifact.table(c.PRODUCTS)


def _recs(client: TestClient[Litestar], customer: str, query: str = "") -> dict[str, object]:
    response = client.get(f"/v1/customers/{customer}/recommendations?{query}")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _ids(body: dict[str, object]) -> list[str]:
    items = body["items"]
    assert isinstance(items, list)
    return [item["product_id"] for item in items]


def _regular(customers: pl.DataFrame, k: int = 0) -> str:
    """A customer the model learned, with several orders."""
    rows = customers.filter(pl.col("learned"), pl.col(ct.ORDER_COUNT) >= 3)
    return str(rows[c.CUSTOMER_ID][k])


# --- recommendations -------------------------------------------------------------------------------


def test_a_known_customer_gets_suggestions_from_their_history(
    client: TestClient[Litestar], customers: pl.DataFrame, artifact: Artifact
) -> None:
    customer = _regular(customers)
    body = _recs(client, customer, "limit=10")
    assert body["model_version"] == artifact.version
    assert body["cold_start"] is False and body["known_customer"] is True
    assert len(_ids(body)) == 10
    bought = set(
        artifact.table(c.ORDERS).filter(pl.col(c.CUSTOMER_ID) == customer)[c.PRODUCT_ID].to_list()
    )
    assert not bought & set(_ids(body)), "exclude_purchased is on by default"


def test_several_categories_at_once_keep_only_those(
    client: TestClient[Litestar], customers: pl.DataFrame, artifact: Artifact
) -> None:
    catalog = _catalog(artifact)
    wanted = sorted(catalog[c.CATEGORY].unique().to_list())[:2]
    body = _recs(client, _regular(customers), f"limit=40&category={wanted[0]},{wanted[1]}")
    categories = {item["category"] for item in body["items"]}  # type: ignore[attr-defined]
    assert categories == set(wanted)


def test_an_explicit_exclude_list_leaves_those_products_out(
    client: TestClient[Litestar], customers: pl.DataFrame
) -> None:
    customer = _regular(customers, 1)
    top = _ids(_recs(client, customer, "limit=5"))
    after = _ids(_recs(client, customer, f"limit=5&exclude={top[0]},{top[2]},NOT-A-PRODUCT"))
    assert top[0] not in after and top[2] not in after
    assert after[:3] == [top[1], top[3], top[4]]


def test_in_stock_keeps_only_products_in_stock(
    client: TestClient[Litestar], customers: pl.DataFrame, artifact: Artifact
) -> None:
    catalog = _catalog(artifact)
    in_stock = set(catalog.filter(pl.col(c.IN_STOCK))[c.PRODUCT_ID].to_list())
    ids = _ids(_recs(client, _regular(customers, 2), "limit=50&in_stock=true"))
    assert ids and set(ids) <= in_stock


def test_offset_pages_follow_each_other_without_repeats(
    client: TestClient[Litestar], customers: pl.DataFrame
) -> None:
    customer = _regular(customers, 3)
    pages = [_ids(_recs(client, customer, f"limit=10&offset={k * 10}")) for k in range(3)]
    flat = [product for page in pages for product in page]
    assert len(flat) == len(set(flat)) == 30
    assert flat == _ids(_recs(client, customer, "limit=30"))


def test_an_unknown_customer_without_features_gets_the_popular_products(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    body = _recs(client, "NEVER-SEEN-1", "limit=5")
    assert body["cold_start"] is True and body["known_customer"] is False
    assert {item["reason"] for item in body["items"]} == {"popular"}  # type: ignore[attr-defined]
    popularity = np.load(artifact.directory / "item_popularity.npy")
    item_ids = np.load(artifact.directory / "item_ids.npy")
    order = np.lexsort((np.arange(popularity.size), -popularity))
    assert _ids(body) == [str(i) for i in item_ids[order][:5]]


def test_an_unknown_customer_with_a_known_feature_is_folded_in_from_it(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    country = str(artifact.table(c.CUSTOMERS)[c.COUNTRY].drop_nulls()[0])
    body = _recs(client, "NEVER-SEEN-2", f"limit=5&country={country}")
    assert body["cold_start"] is True and body["known_customer"] is False
    assert {item["reason"] for item in body["items"]} == {"customers_like_you"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("limit", ["0", "101", "-3", "ten", "1.5"])
def test_a_limit_outside_1_to_100_is_a_400_naming_limit(
    client: TestClient[Litestar], customers: pl.DataFrame, limit: str
) -> None:
    response = client.get(f"/v1/customers/{_regular(customers)}/recommendations?limit={limit}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "limit" in response.json()["detail"]


def test_the_limit_bounds_themselves_are_accepted(
    client: TestClient[Litestar], customers: pl.DataFrame
) -> None:
    customer = _regular(customers)
    assert len(_ids(_recs(client, customer, "limit=1"))) == 1
    assert len(_ids(_recs(client, customer, "limit=100"))) == 100


def test_an_unknown_category_is_a_400_listing_the_known_ones(
    client: TestClient[Litestar], customers: pl.DataFrame, artifact: Artifact
) -> None:
    response = client.get(
        f"/v1/customers/{_regular(customers)}/recommendations?category=spaceships"
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "category" in detail and "spaceships" in detail
    assert str(_catalog(artifact)[c.CATEGORY][0]) in detail


# --- offers ----------------------------------------------------------------------------------------


def _offers(client: TestClient[Litestar], customer: str) -> dict[str, object]:
    response = client.get(f"/v1/customers/{customer}/offers")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _kinds(body: dict[str, object]) -> list[str]:
    """The kinds of the offers the customer earned: shown, or withheld by an experiment's holdout
    (the shipped catalog runs every offer as one)."""
    offers = body["offers"]
    assert isinstance(offers, list)
    catalog = load_offers()
    withheld = body.get("holdouts", [])
    assert isinstance(withheld, list)
    return [offer["kind"] for offer in offers] + [
        catalog.offers[held["offer_id"]].kind for held in withheld
    ]


def test_promoters_get_rewards_and_ambassadors_a_referral(
    client: TestClient[Litestar], customers: pl.DataFrame
) -> None:
    ambassadors = customers.filter(pl.col(ct.PRIMARY_SEGMENT) == "brand_ambassadors")
    body = _offers(client, str(ambassadors[c.CUSTOMER_ID][0]))
    assert body["nps_category"] == "promoter"
    assert {"referral", "reward"} <= set(_kinds(body))
    assert "recovery" not in _kinds(body)
    promoter = customers.filter(
        pl.col(ct.SEGMENTS).list.contains("promoters"),
        ~pl.col(ct.SEGMENTS).list.contains("brand_ambassadors"),
    )
    kinds = _kinds(_offers(client, str(promoter[c.CUSTOMER_ID][0])))
    assert "reward" in kinds and "referral" not in kinds


def test_a_customer_who_just_posted_a_detractor_score_gets_a_recovery_offer_at_once(
    client: TestClient[Litestar], customers: pl.DataFrame, artifact: Artifact
) -> None:
    promoters = customers.filter(pl.col(ct.NPS_CATEGORY) == "promoter", pl.col("learned"))
    customer = str(promoters[c.CUSTOMER_ID][-1])  # the tests of this module use it alone
    assert "recovery" not in _kinds(_offers(client, customer))
    answer = {
        "response_id": f"storefront-{customer}",
        "customer_id": customer,
        "score": 2,
        "responded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "touchpoint": "post_delivery",
        "comment": "The parcel arrived two weeks late",
    }
    assert client.post("/v1/nps-responses", json=answer).status_code == 202
    body = _offers(client, customer)
    assert body["nps_category"] == "detractor"
    assert body["complaint_theme"] == "delivery"
    assert _kinds(body)[0] == "recovery"
    recovery = body["offers"][0]  # type: ignore[index]
    in_stock = set(_catalog(artifact).filter(pl.col(c.IN_STOCK))[c.PRODUCT_ID].to_list())
    products = [p["product_id"] for p in recovery["products"]]
    assert products and set(products) <= in_stock, "after a late delivery: items in stock"
    assert _recs(client, customer)["segment"] in {
        "detractors",
        "late_delivery_detractors",
        "high_value_detractors",
    }


def test_an_unknown_customer_gets_offers_without_an_error(client: TestClient[Litestar]) -> None:
    body = _offers(client, "NEVER-SEEN-3")
    assert body["nps_category"] == "unknown"


def _bad_catalog(tmp_path: Path) -> Settings:
    catalog = tmp_path / "offers.toml"
    catalog.write_text(
        '[offers.summer_sale]\nkind = "reward"\ntitle = "Sun"\nsegments = ["promoters"]\n'
        "discount_percent = 150\n"
    )
    return Settings(store=f"file://{tmp_path / 'store'}", offers_file=str(catalog))


def test_a_bad_offer_catalog_stops_the_start_naming_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"offers\.toml") as error:
        create_app(_bad_catalog(tmp_path))
    assert "discount_percent" in str(error.value) and "<= 100" in str(error.value)


def test_a_bad_offer_catalog_stops_the_start_naming_the_offer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="summer_sale"):
        create_app(_bad_catalog(tmp_path))
