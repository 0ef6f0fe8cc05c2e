"""`GET /v1/products/{product_id}/similar` over HTTP on a real trained version: what the product's
buyers also bought, then neighbours in the model's item space, filtered and limited, the product itself left out, a product nobody bought
placed by its features, unknown and malformed ids refused with the parameter named."""

from __future__ import annotations

import polars as pl
from litestar import Litestar
from litestar.testing import TestClient

from tests.api_support import Artifact, auth


def products(artifact: Artifact) -> pl.DataFrame:
    sold = artifact.table("orders")["product_id"].unique().implode()
    return artifact.table("products").with_columns(pl.col("product_id").is_in(sold).alias("sold"))


def also_bought_with(artifact: Artifact, product: str) -> set[str]:
    orders = artifact.table("orders")
    buyers = orders.filter(pl.col("product_id") == product)["customer_id"].unique().implode()
    return set(orders.filter(pl.col("customer_id").is_in(buyers))["product_id"].to_list())


def test_neighbours_are_ranked_filtered_and_leave_out_the_product(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    catalog = products(artifact)
    product = catalog.filter(pl.col("sold"))["product_id"][0]
    reply = client.get(f"/v1/products/{product}/similar", headers=auth("recommend"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["product_id"] == product and body["model_version"] == artifact.version
    items = body["items"]
    assert len(items) == 10
    assert product not in {item["product_id"] for item in items}
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 2 for s in scores)
    # What the product's buyers also bought leads (scores above 1), then closeness in the model's
    # item space (up to 1).
    reasons = [item["reason"] for item in items]
    assert reasons[0] == "bought_alike"
    assert reasons == sorted(reasons)  # bought_alike, then similar_attributes
    assert all((s > 1) == (r == "bought_alike") for s, r in zip(scores, reasons, strict=True))
    also_bought = also_bought_with(artifact, product)
    assert all(
        item["product_id"] in also_bought for item in items if item["reason"] == "bought_alike"
    )
    known = dict(catalog.select("product_id", "category").iter_rows())
    assert all(known[item["product_id"]] == item["category"] for item in items)
    # Repeating the request gives the same page.
    again = client.get(f"/v1/products/{product}/similar", headers=auth("recommend")).json()
    assert again == body

    category = known[items[-1]["product_id"]]
    kept = client.get(
        f"/v1/products/{product}/similar",
        params={"category": category, "in_stock": "true", "limit": 5},
        headers=auth("recommend"),
    ).json()["items"]
    in_stock = dict(catalog.select("product_id", "in_stock").iter_rows())
    assert 0 < len(kept) <= 5
    assert all(item["category"] == category and in_stock[item["product_id"]] for item in kept)


def test_a_product_nobody_bought_is_placed_by_its_features(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    catalog = products(artifact)
    unsold = catalog.filter(~pl.col("sold"))
    assert unsold.height > 0, "the demo catalogue leaves some products unsold"
    product, category = unsold.select("product_id", "category").row(0)
    items = client.get(f"/v1/products/{product}/similar", headers=auth("recommend")).json()["items"]
    assert len(items) == 10 and product not in {item["product_id"] for item in items}
    # Its vector comes from its features alone: every neighbour says so. (How well features place
    # it is measured on a full-size fit by bench/bench_similar.py; this fit is 3 epochs.)
    assert {item["reason"] for item in items} == {"similar_attributes"}
    assert category in set(catalog["category"])


def test_unknown_and_malformed_products_and_limits_are_refused(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    product = artifact.table("products")["product_id"][0]
    missing = client.get("/v1/products/NO-SUCH-PRODUCT/similar", headers=auth("recommend"))
    assert missing.status_code == 404 and "NO-SUCH-PRODUCT" in missing.json()["detail"]
    bad = client.get(f"/v1/products/{'x' * 200}/similar", headers=auth("recommend"))
    assert bad.status_code == 400 and bad.json()["detail"].startswith("product_id:")
    for limit in ("0", "101", "ten"):
        reply = client.get(
            f"/v1/products/{product}/similar", params={"limit": limit}, headers=auth("recommend")
        )
        assert reply.status_code == 400 and "limit" in reply.json()["detail"], limit
