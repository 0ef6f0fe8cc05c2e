"""`GET /v1/products/{product_id}/similar` over HTTP on a real trained version: what the product's
buyers also bought, then neighbours in the model's item space, filtered and limited, the product itself left out, a product nobody bought
placed by its features, unknown and malformed ids refused with the parameter named; pages read
from the version's neighbour lists, the live computation when filters exhaust a list or a
version has none."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import msgspec
import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.service import similar
from recsvc.service.recommend import Query
from recsvc.version.artifacts import MANIFEST, LoadedModel, load_model, read_manifest
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
    # A share is at most 1, lifted by at most 1 + the version's trend weight.
    top = 2 + read_manifest(artifact.directory).alike_trend_weight
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= top for s in scores)
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


# --- the version's neighbour lists ----------------------------------------------------------------

# The live computation itself, whatever a test's spy replaces.
LIVE = similar.live_neighbours


@pytest.fixture
def live_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The products whose page the service computed live instead of reading the version's list."""
    calls: list[int] = []

    def spy(model: LoadedModel, index: int, query: Query) -> similar.Page:
        calls.append(index)
        return LIVE(model, index, query)

    monkeypatch.setattr(similar, "live_neighbours", spy)
    return calls


def computed_live(model: LoadedModel, product: str, query: Query) -> list[dict[str, object]]:
    """The page the live computation gives, as the API shapes it."""
    index = model.item_index(product)
    assert index is not None
    chosen, scores, bought = LIVE(model, index, query)
    return [
        {
            "product_id": model.item_id_list[i],
            "score": round(score, 6),
            "category": model.item_category_names[i],
            "reason": "bought_alike" if alike else "similar_attributes",
        }
        for i, score, alike in zip(chosen.tolist(), scores.tolist(), bought.tolist(), strict=True)
    ]


def test_a_trained_version_answers_product_pages_from_its_neighbour_lists(
    client: TestClient[Litestar], artifact: Artifact, live_calls: list[int]
) -> None:
    model = load_model(artifact.directory)
    files = set(model.manifest.files)
    assert {"similar_items.npy", "similar_scores.npy", "similar_reasons.npy"} <= files
    assert model.similar is not None
    assert model.similar.items.shape == (model.item_ids.size, 100)
    catalog = products(artifact)
    sold = catalog.filter(pl.col("sold"))["product_id"].to_list()
    unsold = catalog.filter(~pl.col("sold"))["product_id"].to_list()
    for product in [*sold[:8], *unsold[:2]]:
        body = client.get(
            f"/v1/products/{product}/similar", params={"limit": 100}, headers=auth("recommend")
        ).json()
        # Exactly the live computation (same scores, order and reasons), read from the list.
        assert body["items"] == computed_live(model, product, Query(limit=100)), product
    assert live_calls == []


def test_filters_the_list_can_answer_are_read_from_it(
    client: TestClient[Litestar], artifact: Artifact, live_calls: list[int]
) -> None:
    model = load_model(artifact.directory)
    product = products(artifact).filter(pl.col("sold"))["product_id"][3]
    ranked = computed_live(model, product, Query(limit=model.item_ids.size))  # the whole catalogue
    category = ranked[0]["category"]
    items = client.get(
        f"/v1/products/{product}/similar",
        params={"category": category, "limit": 3},
        headers=auth("recommend"),
    ).json()["items"]
    assert live_calls == []
    assert items == [item for item in ranked if item["category"] == category][:3]


def test_filters_that_exhaust_the_list_are_computed_live(
    client: TestClient[Litestar], artifact: Artifact, live_calls: list[int]
) -> None:
    model = load_model(artifact.directory)
    assert model.similar is not None
    product = products(artifact).filter(pl.col("sold"))["product_id"][0]
    index = model.item_index(product)
    assert index is not None
    names = model.item_category_names
    listed = Counter(names[i] for i in model.similar.items[index].tolist() if i >= 0)
    catalogue = Counter(name for i, name in enumerate(names) if i != index)
    # The category with the most products its list leaves out; asking for one more than the list
    # holds of it.
    category = max(catalogue, key=lambda name: catalogue[name] - listed[name])
    assert catalogue[category] > listed[category], "a list of 100 in a catalogue of more"
    limit = min(listed[category] + 1, 100)
    items = client.get(
        f"/v1/products/{product}/similar",
        params={"category": category, "limit": limit},
        headers=auth("recommend"),
    ).json()["items"]
    assert live_calls == [index]
    ranked = computed_live(model, product, Query(limit=model.item_ids.size))
    assert items == [item for item in ranked if item["category"] == category][:limit]
    assert len(items) == limit


def test_a_version_without_neighbour_lists_computes_every_page_live(
    artifact: Artifact, tmp_path: Path, live_calls: list[int]
) -> None:
    older = tmp_path / artifact.directory.name
    shutil.copytree(artifact.directory, older)
    manifest = read_manifest(older)
    files = {name: entry for name, entry in manifest.files.items() if "similar_" not in name}
    for name in set(manifest.files) - set(files):
        (older / name).unlink()
    older_manifest = msgspec.structs.replace(manifest, files=files)
    (older / MANIFEST).write_bytes(msgspec.json.encode(older_manifest))
    model, listed = load_model(older, verify_hashes=True), load_model(artifact.directory)
    assert model.similar is None
    product = products(artifact).filter(pl.col("sold"))["product_id"][1]
    page = similar.similar_products(model, product, Query(limit=20))
    assert live_calls == [model.item_index(product)]
    assert page == similar.similar_products(listed, product, Query(limit=20))
