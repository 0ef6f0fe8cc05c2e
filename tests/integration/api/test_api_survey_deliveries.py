"""Delivery survey triggers for a shop that sends its orders only in its nightly files: the
training run writes the recent orders into the version, and `GET /v1/surveys/due` lists the
customers whose order was delivered a week ago (post-delivery) or placed and not yet delivered
(pre-delivery), with no order line taken in live. A live revision of the order then wins over the
version's record, and an erasure takes the customer off the list at once."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import columns as c
from recsvc.store import FileStore
from recsvc.version.recent_orders import RECENT_ORDERS_FILE
from tests.api_support import client_for
from training.config import load_config
from training.run.pipeline import run_pipeline
from training.sources.generate import generate

# The service's "now" is the real clock: the data ends yesterday, as `./dev demo` makes it.
END_DATE = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
END = dt.datetime.combine(END_DATE, dt.time(23, 59, 59))  # naive UTC, like the shop's files
DELIVERED = "DELIVERY-C1"  # an order delivered 8 days before the data's end
PLACED = "DELIVERY-C2"  # an order placed 2 days before the end, not delivered
PRODUCT = "P000001"  # the demo's first product


def _shop(data: Path) -> None:
    """Demo data ending yesterday, with two customers of our own and one order each."""
    generate(data, 400, seed=11, end_date=END_DATE, show_progress=False)
    customers = pl.read_parquet(data / f"{c.CUSTOMERS}.parquet")
    mine = customers.head(2).with_columns(pl.Series(c.CUSTOMER_ID, [DELIVERED, PLACED]))
    pl.concat([customers, mine]).write_parquet(data / f"{c.CUSTOMERS}.parquet")
    orders = pl.read_parquet(data / f"{c.ORDERS}.parquet")
    delivered_at = END - dt.timedelta(days=8)
    added = pl.DataFrame(
        {
            "line_id": ["DELIVERY-L1", "DELIVERY-L2"],
            c.ORDER_ID: ["DELIVERY-O1", "DELIVERY-O2"],
            c.CUSTOMER_ID: [DELIVERED, PLACED],
            c.PRODUCT_ID: [PRODUCT, PRODUCT],
            "quantity": [1, 1],
            "unit_price": [19.99, 24.99],
            c.ORDERED_AT: [delivered_at - dt.timedelta(days=2), END - dt.timedelta(days=2)],
            "promised_delivery_at": [delivered_at, END + dt.timedelta(days=1)],
            c.DELIVERED_AT: [delivered_at, None],
            c.STATUS: ["delivered", "placed"],
        },
        schema=orders.schema,
    )
    pl.concat([orders, added]).write_parquet(data / f"{c.ORDERS}.parquet")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileStore]:
    """A store holding the version a real training run made of the shop's files."""
    root = tmp_path_factory.mktemp("survey-deliveries")
    _shop(root / "data")
    record = run_pipeline(
        root / "data",
        store=f"file://{root / 'store'}",
        config=load_config(search_trials=0, epochs=1, components=8),
        runs_dir=root / "runs",
        show_progress=False,
        force=True,
    )
    assert record.version is not None and record.status == "published", record
    store = FileStore(root / "store")
    try:
        yield store
    finally:
        store.close()


def _due(client: TestClient[Litestar], touchpoint: str) -> dict[str, dict[str, Any]]:
    reply = client.get("/v1/surveys/due", params={"touchpoint": touchpoint, "limit": 1000})
    assert reply.status_code == 200, reply.text
    return {item["customer_id"]: item for item in reply.json()["items"]}


def test_orders_from_the_nightly_files_trigger_delivery_surveys(trained: FileStore) -> None:
    version = trained.active_version()
    assert version is not None
    directory = trained.version_dir(version)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert RECENT_ORDERS_FILE in manifest["files"]
    assert not list(trained.orders.iter_live()) and not list(trained.orders.iter_archived())

    with client_for(trained) as client:
        post = _due(client, "post_delivery")
        assert post[DELIVERED]["reason"] == "post_delivery_7d"
        assert post[DELIVERED]["order_id"] == "DELIVERY-O1"
        assert post[DELIVERED]["due_since"] == (
            (END - dt.timedelta(days=1)).isoformat() + "Z"
        )  # delivered 8 days before the end: due 7 days after the delivery
        assert PLACED not in post
        pre = _due(client, "pre_delivery")
        assert pre[PLACED]["reason"] == "pre_delivery_24h"
        assert pre[PLACED]["order_id"] == "DELIVERY-O2"
        assert DELIVERED not in pre


def test_a_live_revision_wins_over_the_version_and_an_erasure_hides_the_customer(
    trained: FileStore,
) -> None:
    with client_for(trained) as client:
        assert PLACED in _due(client, "pre_delivery")
        now = dt.datetime.now(dt.UTC)
        delivered = {
            "line_id": "DELIVERY-L2",
            "order_id": "DELIVERY-O2",
            "customer_id": PLACED,
            "product_id": PRODUCT,
            "quantity": 1,
            "unit_price": 24.99,
            "ordered_at": (END - dt.timedelta(days=2)).isoformat() + "Z",
            "delivered_at": (now - dt.timedelta(hours=1)).isoformat(timespec="seconds"),
            "status": "delivered",
        }
        reply = client.post("/v1/orders", json=delivered)
        assert reply.status_code == 202, reply.text
        assert PLACED not in _due(client, "pre_delivery")  # delivered now: not before delivery

        assert DELIVERED in _due(client, "post_delivery")
        assert client.delete(f"/v1/customers/{DELIVERED}").status_code in (200, 202, 204)
        assert DELIVERED not in _due(client, "post_delivery")
