"""Offer experiments along the path a user takes, on both stores: the storefront asks for offers
(each shown offer names its experiment and arm, a holdout customer's offer is withheld and listed
only to `export` keys) → the workers' exposure lines reach the store → the next training run finds
the assignments → `GET /v1/experiments`, the detail and the assignment export report them. And the
personalisation experiment: off by default; on, its holdout gets its segment's popular products."""

from __future__ import annotations

import io
import time
from collections import Counter

import msgspec
import polars as pl
import pytest

from recsvc.domain import columns as c
from recsvc.domain.experiments import assign
from recsvc.store import RedisStore
from recsvc.store.base import Store
from tests.api_support import (
    ALL_SCOPES_KEY,
    API_KEYS,
    Artifact,
    answered_customers,
    auth,
    client_for,
)
from training.config import load_config
from training.run.pipeline import run_pipeline

CUSTOMERS_ASKED = 400
MARKETER = {"Authorization": f"Bearer {ALL_SCOPES_KEY}"}  # recommend and export


def _exposed(store: Store, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The arms the store's log holds for `wanted` (experiment, customer) pairs, once all are in
    (the workers write every 100 ms)."""
    deadline = time.monotonic() + 5
    while True:
        arms = {(x.experiment, x.customer_id): x.arm for x in store.exposures.read()}
        if wanted <= set(arms) or time.monotonic() > deadline:
            return arms
        time.sleep(0.05)


def test_offers_are_logged_and_the_next_run_reports_each_experiment(
    store: Store, artifact: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> None:
    table = answered_customers(artifact)
    ids = table[c.CUSTOMER_ID].to_list()[:CUSTOMERS_ASKED]
    expected: dict[tuple[str, str], str] = {}
    with client_for(store, api_keys=API_KEYS) as client:
        for customer in ids:
            shop = client.get(f"/v1/customers/{customer}/offers", headers=auth("recommend"))
            marketer = client.get(f"/v1/customers/{customer}/offers", headers=MARKETER)
            assert shop.status_code == marketer.status_code == 200, shop.text
            body, full = shop.json(), marketer.json()
            assert "holdouts" not in body, "a withheld recovery offer would name a detractor"
            assert [o["id"] for o in body["offers"]] == [o["id"] for o in full["offers"]]
            for offer in body["offers"]:
                assert offer["experiment"] == offer["id"] and offer["arm"] == "treatment"
                assert assign(offer["id"], offer["id"], customer, 0.1) == "treatment"
                expected[(offer["id"], customer)] = "treatment"
            for held in full["holdouts"]:
                assert held["arm"] == "holdout"
                assert assign(held["offer_id"], held["offer_id"], customer, 0.1) == "holdout"
                assert held["offer_id"] not in [o["id"] for o in body["offers"]]
                expected[(held["experiment"], customer)] = "holdout"
        arms = Counter(expected.values())
        assert arms["holdout"] > 0 and arms["treatment"] > 5 * arms["holdout"], arms
        logged = _exposed(store, set(expected))
        assert {key: logged.get(key) for key in expected} == expected
        before = client.get("/v1/experiments", headers=auth("export")).json()
        assert before["experiments"] == [], "the artifact was trained before any exposure"

    root = tmp_path_factory.mktemp("experiments-run")
    url = store.url
    if isinstance(store, RedisStore):  # its URL names the server; the test's prefix goes with it
        url = f"{url}?prefix={store.prefix}&cache_dir={root / 'cache'}"
    record = run_pipeline(
        artifact.data,
        store=url,
        config=load_config(search_trials=0, epochs=1, components=8),
        runs_dir=root / "runs",
        show_progress=False,
        force=True,
    )
    assert record.version is not None and record.status == "published", record

    with client_for(store, api_keys=API_KEYS) as client:
        assert client.get("/v1/experiments", headers=auth("recommend")).status_code == 403
        assert client.get("/v1/experiments").status_code == 401
        deadline = time.monotonic() + 10  # a Redis store's workers follow the pointer
        while True:
            listed = client.get("/v1/experiments", headers=auth("export"))
            assert listed.status_code == 200, listed.text
            body = listed.json()
            if body["model_version"] == record.version or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert body["model_version"] == record.version
        per_experiment = Counter(experiment for experiment, _ in expected)
        assert {e["experiment"] for e in body["experiments"]} == set(per_experiment)
        for experiment, n in per_experiment.items():
            detail = client.get(f"/v1/experiments/{experiment}", headers=auth("export"))
            assert detail.status_code == 200, detail.text
            result = detail.json()["result"]
            arms = {a["arm"]: a for a in result["arms"]}
            assigned = Counter(arm for (e, _), arm in expected.items() if e == experiment)
            assert {arm: a["assigned"] for arm, a in arms.items()} == {
                "treatment": assigned["treatment"],
                "holdout": assigned["holdout"],
            }
            assert arms["treatment"]["exposed"] == assigned["treatment"]
            assert arms["holdout"]["exposed"] == 0
            # Assigned today: no outcome window has ended, so nothing is analysed yet.
            assert arms["treatment"]["analysed"] == arms["holdout"]["analysed"] == 0
            assert result["status"] == "collecting" and result["holdout_share"] == 0.1
            assert next(o["outcome"] for o in result["outcomes"]) == "conversion"
            assert sum(assigned.values()) == n
        missing = client.get("/v1/experiments/no_such_offer", headers=auth("export"))
        assert missing.status_code == 404 and "no_such_offer" in missing.json()["detail"]

        experiment = max(per_experiment, key=lambda e: per_experiment[e])
        rows = {(customer, arm) for (e, customer), arm in expected.items() if e == experiment}
        path = f"/v1/experiments/{experiment}/assignments"
        csv = client.get(path, headers=auth("export"))
        assert csv.status_code == 200 and csv.headers["x-model-version"] == record.version
        frame = pl.read_csv(io.BytesIO(csv.content))
        assert frame.columns == [
            "experiment",
            "offer_id",
            "customer_id",
            "arm",
            "assigned_at",
            "exposures",
        ]
        assert set(zip(frame["customer_id"], frame["arm"], strict=True)) == rows
        lines = client.get(f"{path}?format=ndjson", headers=auth("export")).content.splitlines()
        assert {(r["customer_id"], r["arm"]) for r in map(msgspec.json.decode, lines)} == rows
        parquet = client.get(f"{path}?format=parquet", headers=auth("export"))
        assert pl.read_parquet(io.BytesIO(parquet.content)).height == len(rows)
        bad = client.get(f"{path}?format=xlsx", headers=auth("export"))
        assert bad.status_code == 400 and "format" in bad.json()["detail"]


def test_the_personalisation_experiment_is_off_by_default_and_splits_when_on(
    store: Store, artifact: Artifact
) -> None:
    ids = answered_customers(artifact)[c.CUSTOMER_ID].to_list()[:80]
    with client_for(store, api_keys=API_KEYS) as client:
        plain = client.get(f"/v1/customers/{ids[0]}/recommendations", headers=auth("recommend"))
        assert "experiment" not in plain.json() and "arm" not in plain.json()
    with client_for(store, api_keys=API_KEYS, recommendation_holdout_share=0.5) as client:
        arms: dict[tuple[str, str], str] = {}
        for customer in ids:
            response = client.get(
                f"/v1/customers/{customer}/recommendations?limit=5", headers=auth("recommend")
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["experiment"] == "recommendations"
            assert body["arm"] == assign("recommendations", "recommendations", customer, 0.5)
            reasons = {item["reason"] for item in body["items"]}
            if body["arm"] == "holdout":
                assert reasons == {"popular_in_segment"}
            else:
                assert "popular_in_segment" not in reasons
            arms[("recommendations", customer)] = body["arm"]
        assert 10 < Counter(arms.values())["holdout"] < 70
        logged = _exposed(store, set(arms))
        assert {key: logged.get(key) for key in arms} == arms


def test_a_segments_popular_products_are_what_its_customers_bought_most(
    store: Store, artifact: Artifact
) -> None:
    from recsvc.service.recommend import Query, popular_in_segment

    model = store.load_active()
    assert model is not None
    table = answered_customers(artifact)
    segment = "brand_ambassadors"
    members = set(table.filter(pl.col("primary_segment") == segment)[c.CUSTOMER_ID].to_list())
    assert len(members) > 50
    orders = artifact.table("orders").filter(pl.col(c.CUSTOMER_ID).is_in(members))
    top = (
        orders.group_by(c.PRODUCT_ID)
        .agg(pl.col(c.CUSTOMER_ID).n_unique().alias("buyers"))
        .sort("buyers", descending=True)
    )
    outsider = "Z-not-a-customer"
    page = popular_in_segment(model, outsider, Query(limit=3), {"primary_segment": segment})
    # The version's purchases are the shop's lines up to its training day: the leader by a
    # margin of a few buyers, whatever lines the version left out.
    leaders = set(top.head(3)[c.PRODUCT_ID].to_list())
    assert page.items[0].product_id in leaders, (page.items, top.head(5))
    assert page.segment == segment and page.items[0].reason == "popular_in_segment"
    shop = popular_in_segment(model, outsider, Query(limit=3))
    assert [i.product_id for i in shop.items] != [i.product_id for i in page.items]


def test_a_customers_exposures_are_in_their_data_and_go_with_the_erasure(
    store: Store, artifact: Artifact
) -> None:
    ids = answered_customers(artifact)[c.CUSTOMER_ID].to_list()[CUSTOMERS_ASKED:]
    with client_for(store, api_keys=API_KEYS) as client:
        customer, offered = next(
            (customer, body)
            for customer in ids
            if (body := client.get(f"/v1/customers/{customer}/offers", headers=MARKETER).json())[
                "offers"
            ]
            or body["holdouts"]
        )
        arms = {o["id"]: o["arm"] for o in offered["offers"]} | {
            h["offer_id"]: "holdout" for h in offered["holdouts"]
        }
        _exposed(store, {(offer, customer) for offer in arms})
        data = client.get(f"/v1/customers/{customer}/data", headers=auth("privacy")).json()
        assert {(x["offer_id"], x["arm"]) for x in data["offers_shown"]} == set(arms.items())
        assert "customer_id" not in data["offers_shown"][0]  # the document's own
        holders = {h["name"]: h["records"] for h in data["holders"]}
        assert holders["exposure_log"] == len(arms)
        erased = client.delete(f"/v1/customers/{customer}", headers=auth("privacy"))
        assert erased.status_code == 202 and erased.json()["removed"][
            "experiment_exposures"
        ] == len(arms)
        assert not [x for x in store.exposures.read() if x.customer_id == customer]
        after = client.get(f"/v1/customers/{customer}/data", headers=auth("privacy")).json()
        assert after["offers_shown"] == []
