"""`POST /v1/recommendations`: suggestions for an anonymous cart over HTTP, through the real app
on a real trained version, on both stores: the cart left out, filters and paging as on the
customer endpoint, a cart the model does not know served the popular products, and every bad
body a 400 naming the field."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.service.cart import LIVE_CART_PRODUCTS
from recsvc.service.similar import bought_alike_shares
from recsvc.store.base import Store
from recsvc.store.files import FileStore
from recsvc.version.artifacts import LoadedModel, load_model
from recsvc.version.carts import FUSION_DEPTH, FUSION_K, cart_vector
from recsvc.version.scoring import score_items
from tests.api_support import API_KEYS, Artifact, auth, client_for

CART = "/v1/recommendations"


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient[Litestar]]:
    with client_for(store, api_keys=API_KEYS) as test_client:
        yield test_client


def basket(artifact: Artifact, k: int) -> list[str]:
    """The distinct products of the k-th customer with at least four of them."""
    orders = artifact.table(c.ORDERS)
    per_customer = (
        orders.group_by(c.CUSTOMER_ID)
        .agg(pl.col(c.PRODUCT_ID).unique().sort())
        .filter(pl.col(c.PRODUCT_ID).list.len() >= 4)
        .sort(c.CUSTOMER_ID)
    )
    return list(per_customer[c.PRODUCT_ID][k])


def suggest(client: TestClient[Litestar], **body: object) -> dict[str, object]:
    response = client.post(CART, json=body, headers=auth("recommend"))
    assert response.status_code == 200, response.text
    reply: dict[str, object] = response.json()
    return reply


def ids(reply: dict[str, object]) -> list[str]:
    items = reply["items"]
    assert isinstance(items, list)
    return [item["product_id"] for item in items]


def test_a_cart_gets_suggestions_from_customers_who_bought_like_it(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    cart = basket(artifact, 0)
    reply = suggest(client, product_ids=cart, limit=10)
    assert reply["customer_id"] is None and reply["cold_start"] is True
    assert reply["model_version"] == artifact.version
    assert len(ids(reply)) == 10
    assert not set(cart) & set(ids(reply)), "the cart is never suggested"
    assert {item["reason"] for item in reply["items"]} == {"customers_like_you"}  # type: ignore[union-attr]
    assert "segment" not in reply and "known_customer" not in reply
    # Another taste, another list; the same cart, the same list.
    other = suggest(client, product_ids=basket(artifact, 40), limit=10)
    assert ids(other) != ids(reply)
    assert ids(suggest(client, product_ids=cart, limit=10)) == ids(reply)


def expected_page(
    model: LoadedModel, cart_ids: list[str], weight: float, read: int | None = None
) -> list[str]:
    """The first 10 of the fused ranking, recomputed from the version's purchases (live shares,
    not the neighbour lists the service reads) at `weight`, and the cart left out; `read`: only
    the first that many cart products' shares (a version without lists)."""
    cart = np.sort(np.searchsorted(model.item_ids, cart_ids)).astype(np.int32)
    vector = cart_vector(model.arrays, model.item_buyers, cart)
    assert vector is not None
    by_model = score_items(model.arrays, vector).astype(np.float64)
    by_model[cart] = -np.inf
    summed = np.searchsorted(model.item_ids, cart_ids[:read])
    alike = sum(bought_alike_shares(model, int(i)) for i in summed)
    alike[cart] = 0.0
    fused = np.zeros(model.item_ids.size)
    for scores, share, ranks in (
        (by_model, 1.0, np.isfinite(by_model)),
        (alike, weight, alike > 0),
    ):
        ranked = np.argsort(-scores, kind="stable")[: min(FUSION_DEPTH, int(ranks.sum()))]
        fused[ranked] += share / (FUSION_K + np.arange(ranked.size))
    fused += 1e-9 * np.nan_to_num(by_model, neginf=0.0) / np.nanmax(by_model)  # the model's order
    fused[cart] = -np.inf
    return [model.item_id_list[i] for i in np.argsort(-fused, kind="stable")[:10]]


@pytest.mark.parametrize(
    ("weight", "lists"), [(None, True), (0.0, True), (1.0, True), (1.0, False)]
)
def test_the_page_fuses_the_models_ranking_with_what_the_carts_buyers_also_bought(
    artifact: Artifact, tmp_path: Path, weight: float | None, lists: bool
) -> None:
    """The cart's model ranking and its products' bought-alike shares, fused by rank at the
    version's weight: the one its training run chose (None), and versions written with 0 (the
    model alone) and 1, with and without neighbour lists (then the first 10 products, live)."""
    directory = artifact.directory
    if weight is not None:
        directory = tmp_path / artifact.directory.name
        shutil.copytree(artifact.directory, directory)
        manifest = json.loads((directory / "manifest.json").read_text())
        manifest["cart_alike_weight"] = weight
        if not lists:
            for stem in ("similar_items", "similar_scores", "similar_reasons"):
                del manifest["files"][f"{stem}.npy"]
                (directory / f"{stem}.npy").unlink()
        (directory / "manifest.json").write_text(json.dumps(manifest))
    model = load_model(directory)
    assert (model.similar is not None) == lists
    chosen = model.manifest.cart_alike_weight
    assert chosen in (0.0, 0.5, 1.0) and (weight is None or chosen == weight)
    read = None if lists else LIVE_CART_PRODUCTS
    store = FileStore(tmp_path / "store")
    store.publish(directory)
    with client_for(store, api_keys=API_KEYS) as client:
        sizes = []
        for k in (2, 7, 30):
            cart_ids = basket(artifact, k)
            sizes.append(len(cart_ids))
            served = ids(suggest(client, product_ids=cart_ids, limit=10))
            expected = expected_page(model, cart_ids, chosen, read)
            # Ties in the fused scores may fall either way; the set and most places agree.
            assert len(set(served) & set(expected)) >= 9, (served, expected)
            assert sum(a == b for a, b in zip(served, expected, strict=True)) >= 7
            if weight == 1.0:
                # Both views are in the page: neither ranking alone gives it.
                assert served != expected_page(model, cart_ids, 0.0)
        # Some cart is longer than the live path reads.
        assert max(sizes) > LIVE_CART_PRODUCTS, sizes
    store.close()


def test_filters_and_paging_are_the_customer_endpoints(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    cart = basket(artifact, 1)
    products = artifact.table(c.PRODUCTS)
    first, second = (
        ids(suggest(client, product_ids=cart, limit=5)),
        ids(suggest(client, product_ids=cart, limit=5, offset=5)),
    )
    assert first + second == ids(suggest(client, product_ids=cart, limit=10))
    excluded = ids(suggest(client, product_ids=cart, limit=10, exclude=first[:2]))
    assert not set(first[:2]) & set(excluded)
    category = str(products[c.CATEGORY].mode()[0])
    kept = suggest(client, product_ids=cart, limit=20, category=[category])
    assert {item["category"] for item in kept["items"]} == {category}  # type: ignore[union-attr]
    in_stock = set(products.filter(pl.col(c.IN_STOCK))[c.PRODUCT_ID].to_list())
    assert set(ids(suggest(client, product_ids=cart, limit=30, in_stock=True))) <= in_stock


def test_a_cart_the_model_does_not_know_gets_the_popular_products(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    reply = suggest(client, product_ids=["NOT-A-PRODUCT-1", "NOT-A-PRODUCT-2"], limit=5)
    assert reply["cold_start"] is True
    assert {item["reason"] for item in reply["items"]} == {"popular"}  # type: ignore[union-attr]
    known = ids(reply)[0]
    assert known not in ids(suggest(client, product_ids=[known, "NOT-A-PRODUCT-1"], limit=5))


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"product_ids": []}, "product_ids"),
        ({}, "product_ids"),
        ({"product_ids": ["P1"], "limit": 0}, "limit"),
        ({"product_ids": ["P1"], "limit": 101}, "limit"),
        ({"product_ids": ["P1"], "offset": -1}, "offset"),
        ({"product_ids": ["P1"], "colour": "red"}, "colour"),
        ({"product_ids": ["P1"], "category": ["no-such-category"]}, "category"),
        ({"product_ids": ["bad\nid"]}, "product_ids"),
        ({"product_ids": ["P1"] * 201}, "product_ids"),
        ({"product_ids": "P1"}, "product_ids"),
    ],
)
def test_a_bad_cart_is_a_400_naming_the_field(
    client: TestClient[Litestar], body: dict[str, object], named: str
) -> None:
    response = client.post(CART, json=body, headers=auth("recommend"))
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_a_cart_needs_the_recommend_scope(client: TestClient[Litestar]) -> None:
    assert client.post(CART, json={"product_ids": ["P1"]}).status_code == 401
    assert (
        client.post(CART, json={"product_ids": ["P1"]}, headers=auth("export")).status_code == 403
    )
