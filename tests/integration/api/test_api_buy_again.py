"""Buy-again over HTTP on a real trained version: orders posted live count with the version's
recency weighting, and a product due again (the days since its last purchase match its reorder
interval) comes first when the version's blend weighs timing, while the product bought most often
and most recently comes first when it does not."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.store import FileStore
from recsvc.version.artifacts import MANIFEST, LoadedModel, load_model, read_manifest
from recsvc.version.scoring import BlendParams
from tests.api_support import Artifact, client_for

# Propensity alone ranks what the customer bought (weight 1): with timing, or without.
DUE = BlendParams(weight=1.0, timing=1.0)
FREQUENT = BlendParams(weight=1.0, timing=0.0)


def _with_blend(artifact: Artifact, root: Path, blend: BlendParams) -> Path:
    """A copy of the trained version whose manifest holds `blend` (weight and timing; the decay
    stays the one its weights were computed with): what the run would have written had its
    hold-out chosen it."""
    directory = root / f"artifact-blend-{uuid.uuid4().hex[:8]}"
    shutil.copytree(artifact.directory, directory)
    manifest = read_manifest(directory)
    chosen = BlendParams(weight=blend.weight, timing=blend.timing, decay=manifest.blend.decay)
    manifest = msgspec.structs.replace(manifest, blend=chosen)
    (directory / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    return directory


@pytest.fixture(scope="module")
def clients(
    artifact: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, TestClient[Litestar]]]:
    root = tmp_path_factory.mktemp("buy-again")
    stores = {}
    for name, blend in (("due", DUE), ("frequent", FREQUENT)):
        store = FileStore(root / f"store-{name}")
        store.publish(_with_blend(artifact, root, blend))
        stores[name] = store
    with client_for(stores["due"]) as due, client_for(stores["frequent"]) as frequent:
        yield {"due": due, "frequent": frequent}
    for store in stores.values():
        store.close()


def _order(
    client: TestClient[Litestar], customer: str, product: str, order: str, days_ago: int
) -> None:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    body: dict[str, Any] = {
        "line_id": f"{order}-line",
        "order_id": order,
        "customer_id": customer,
        "product_id": product,
        "quantity": 1,
        "unit_price": 9.5,
        "ordered_at": at.isoformat(timespec="seconds"),
        "status": "delivered",
    }
    response = client.post("/v1/orders", json=body)
    assert response.status_code == 202, response.text


def _scenario(model: LoadedModel) -> tuple[str, str, int, str]:
    """A learned customer with at most two products bought, a product with a reorder interval of
    one to four months (to be due) and one with the longest interval (bought just now, so not
    due), neither bought by the customer."""
    arrays = model.arrays
    p = arrays.purchases
    cycles = np.asarray(arrays.item_reorder_days, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(cycles))
    slow = int(finite[np.argmax(cycles[finite])])
    monthly = [int(i) for i in finite if 30 <= cycles[i] <= 120 and i != slow]
    assert monthly and cycles[slow] >= 20, "the demo shop reorders its consumables"
    for customer in range(arrays.n_customers):
        bought = set(p.items[p.row(customer)].tolist())
        if arrays.has_identity[customer] and 0 < len(bought) <= 2:
            due = next(i for i in monthly if i not in bought)
            if slow not in bought:
                days = round(float(cycles[due]))
                ids = model.item_id_list
                return str(model.customer_ids[customer]), ids[due], days, ids[slow]
    raise AssertionError("no customer with a short history")


def test_a_due_product_comes_first_when_the_blend_weighs_timing(
    clients: dict[str, TestClient[Litestar]], artifact: Artifact
) -> None:
    model = load_model(artifact.directory)
    customer, due, cycle, frequent = _scenario(model)
    for client in clients.values():
        # The due product: bought a cycle ago and two cycles ago. The other: three orders in the
        # last three days, the customer's three latest, so it weighs more and was bought more.
        _order(client, customer, due, f"due-1-{uuid.uuid4().hex[:6]}", 2 * cycle)
        _order(client, customer, due, f"due-2-{uuid.uuid4().hex[:6]}", cycle)
        for days_ago in (3, 2, 1):
            _order(client, customer, frequent, f"often-{days_ago}-{uuid.uuid4().hex[:6]}", days_ago)
    pages = {
        name: client.get(
            f"/v1/customers/{customer}/recommendations",
            params={"exclude_purchased": "false", "limit": 5},
        ).json()["items"]
        for name, client in clients.items()
    }
    assert [pages["due"][0]["product_id"], pages["due"][0]["reason"]] == [due, "buy_again"]
    assert [pages["frequent"][0]["product_id"], pages["frequent"][0]["reason"]] == [
        frequent,
        "buy_again",
    ]
    # Weight 1: a score is the propensity (the model only breaks ties, at a thousandth). The due
    # product's two orders are the customer's fourth and fifth latest, its due factor about 1;
    # the other's three orders are the latest three, its due factor 1 without timing.
    decay = model.manifest.blend.decay
    assert pages["due"][0]["score"] == pytest.approx(math.log1p(decay**3 + decay**4), abs=0.02)
    assert pages["frequent"][0]["score"] == pytest.approx(
        math.log1p(1 + decay + decay**2), abs=0.02
    )
