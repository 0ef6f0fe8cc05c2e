"""Who to survey next over HTTP against both stores: the due list per touchpoint, a recorded send
taking the customer off it (on another worker too), the decline's shorter throttle, an answer
through the intake counting as an ask, the daily cap, the experiments' re-survey asking both arms
alike, scopes, bad input, and replies that never show a segment or an answer."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain.experiments import Assignment, assign
from recsvc.store import FileStore, RedisStore
from recsvc.store.base import Store
from tests.api_support import (
    API_KEYS,
    KEYS,
    Artifact,
    client_for,
    published_store,
    with_experiments,
)

_lines = itertools.count()
DUE = "/v1/surveys/due"


def ago(**delta: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).isoformat(timespec="seconds")


def deliver(client: TestClient[Litestar], customer: str, delivered_days_ago: float) -> str:
    """An order line of `customer`, placed two days before its delivery; the order id."""
    n = next(_lines)
    order = f"SURVEY-O{n}"
    body = {
        "line_id": f"SURVEY-L{n}",
        "order_id": order,
        "customer_id": customer,
        "product_id": "P-SURVEY",
        "quantity": 1,
        "unit_price": 10.0,
        "ordered_at": ago(days=delivered_days_ago + 2),
        "delivered_at": ago(days=delivered_days_ago),
        "status": "delivered",
    }
    assert client.post("/v1/orders", json=body).status_code == 202
    return order


def place(client: TestClient[Litestar], customer: str, hours_ago: float) -> str:
    n = next(_lines)
    order = f"SURVEY-O{n}"
    body = {
        "line_id": f"SURVEY-L{n}",
        "order_id": order,
        "customer_id": customer,
        "product_id": "P-SURVEY",
        "quantity": 1,
        "unit_price": 10.0,
        "ordered_at": ago(hours=hours_ago),
        "status": "placed",
    }
    assert client.post("/v1/orders", json=body).status_code == 202
    return order


def due(client: TestClient[Litestar], touchpoint: str, limit: int = 1000) -> dict[str, Any]:
    reply = client.get(DUE, params={"touchpoint": touchpoint, "limit": limit})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def due_ids(client: TestClient[Litestar], touchpoint: str) -> set[str]:
    return {item["customer_id"] for item in due(client, touchpoint)["items"]}


def send(client: TestClient[Litestar], *sends: dict[str, Any]) -> dict[str, Any]:
    reply = client.post("/v1/surveys/sent", json={"sends": list(sends)})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


@contextlib.contextmanager
def another_worker(store: Store) -> Iterator[TestClient[Litestar]]:
    """The app on a second, independent handle of the same store (another worker or replica)."""
    other: Store
    if isinstance(store, FileStore):
        other = FileStore(store.root)
    else:
        assert isinstance(store, RedisStore)
        other = RedisStore(store.url, prefix=store.prefix, cache_dir=store.cache_dir)
    try:
        with client_for(other) as client:
            yield client
    finally:
        other.close()


def test_a_delivered_order_is_due_post_delivery_until_its_send_is_recorded_on_any_worker(
    client: TestClient[Litestar], store: Store
) -> None:
    order = deliver(client, "SURVEY-C1", delivered_days_ago=8)
    deliver(client, "SURVEY-C1-EARLY", delivered_days_ago=3)  # not yet 7 days
    deliver(client, "SURVEY-C1-LATE", delivered_days_ago=20)  # past the window
    body = due(client, "post_delivery")
    items = {item["customer_id"]: item for item in body["items"]}
    assert "SURVEY-C1-EARLY" not in items and "SURVEY-C1-LATE" not in items
    item = items["SURVEY-C1"]
    assert item["touchpoint"] == "post_delivery"
    assert item["reason"] == "post_delivery_7d"
    assert item["order_id"] == order
    assert "SURVEY-C1" not in due_ids(client, "pre_delivery")

    assert send(client, {"customer_id": "SURVEY-C1", "touchpoint": "post_delivery"}) == {
        "recorded": 1,
        "duplicates": 0,
    }
    assert "SURVEY-C1" not in due_ids(client, "post_delivery")
    with another_worker(store) as other:
        assert "SURVEY-C1" not in due_ids(other, "post_delivery")
        # The same send again, from the other worker: a duplicate (customer, touchpoint, day).
        again = other.post(
            "/v1/surveys/sent",
            json={"sends": [{"customer_id": "SURVEY-C1", "touchpoint": "post_delivery"}]},
        )
        assert again.json() == {"recorded": 0, "duplicates": 1}


def test_a_placed_order_is_due_pre_delivery_after_a_day_and_not_once_delivered(
    client: TestClient[Litestar],
) -> None:
    order = place(client, "SURVEY-C5", hours_ago=30)
    place(client, "SURVEY-C5-FRESH", hours_ago=2)
    items = {item["customer_id"]: item for item in due(client, "pre_delivery")["items"]}
    assert items["SURVEY-C5"]["reason"] == "pre_delivery_24h"
    assert items["SURVEY-C5"]["order_id"] == order
    assert "SURVEY-C5-FRESH" not in items
    deliver(client, "SURVEY-C6", delivered_days_ago=1)
    assert "SURVEY-C6" not in due_ids(client, "pre_delivery")


def test_a_decline_holds_a_customer_30_days_instead_of_the_asks_90(
    client: TestClient[Litestar],
) -> None:
    for customer in ("SURVEY-C2", "SURVEY-C3"):
        deliver(client, customer, delivered_days_ago=8)
    send(
        client,
        {"customer_id": "SURVEY-C2", "touchpoint": "relationship", "sent_at": ago(days=35)},
        {"customer_id": "SURVEY-C3", "touchpoint": "relationship", "sent_at": ago(days=35)},
    )
    assert due_ids(client, "post_delivery").isdisjoint({"SURVEY-C2", "SURVEY-C3"})  # 90 days
    declines = [
        # Declined 34 days ago: more than 30, so due again; 20 days ago: still held.
        {"customer_id": "SURVEY-C2", "touchpoint": "relationship", "declined_at": ago(days=34)},
        {"customer_id": "SURVEY-C3", "touchpoint": "relationship", "declined_at": ago(days=20)},
    ]
    reply = client.post("/v1/surveys/declined", json={"declines": declines})
    assert reply.status_code == 200 and reply.json() == {"recorded": 2, "duplicates": 0}
    now_due = due_ids(client, "post_delivery")
    assert "SURVEY-C2" in now_due
    assert "SURVEY-C3" not in now_due


def test_an_answer_taken_in_counts_as_asked_though_no_send_was_recorded(
    client: TestClient[Litestar], store: Store
) -> None:
    deliver(client, "SURVEY-C4", delivered_days_ago=9)
    assert "SURVEY-C4" in due_ids(client, "post_delivery")
    answer = {
        "response_id": "SURVEY-R4",
        "customer_id": "SURVEY-C4",
        "score": 3,
        "responded_at": ago(hours=1),
        "touchpoint": "relationship",
    }
    assert client.post("/v1/nps-responses", json=answer).status_code == 202
    assert "SURVEY-C4" not in due_ids(client, "post_delivery")
    with another_worker(store) as other:
        assert "SURVEY-C4" not in due_ids(other, "post_delivery")


def test_relationship_items_name_the_trigger_and_never_a_segment_or_an_answer(
    client: TestClient[Litestar], artifact: Artifact
) -> None:
    body = due(client, "relationship", limit=300)
    assert body["due"] >= len(body["items"]) > 0
    assert {item["reason"] for item in body["items"]} == {"relationship_cadence"}
    for item in body["items"]:
        assert set(item) == {"customer_id", "touchpoint", "reason", "due_since"}
    text = json.dumps(body)
    table = artifact.customer_table()
    for segment in set(table["primary_segment"].drop_nulls().to_list()):
        assert f'"{segment}"' not in text
    for word in ("promoter", "detractor", "passive", "score", "nps", "segment"):
        assert word not in text.lower()
    # Shared across segments, not all from one.
    primary = dict(
        zip(table["customer_id"].to_list(), table["primary_segment"].to_list(), strict=True)
    )
    assert len({primary[item["customer_id"]] for item in body["items"]}) > 1


def test_bad_input_is_a_400_naming_the_field(client: TestClient[Litestar]) -> None:
    cases = [
        (client.get(DUE, params={"touchpoint": "at_checkout"}), "touchpoint"),
        (client.get(DUE), "touchpoint"),
        (client.get(DUE, params={"touchpoint": "relationship", "limit": 0}), "limit"),
        (client.get(DUE, params={"touchpoint": "relationship", "limit": 1001}), "limit"),
        (client.post("/v1/surveys/sent", json={"sends": []}), "sends"),
        (
            client.post(
                "/v1/surveys/sent",
                json={"sends": [{"customer_id": "A\x01B", "touchpoint": "relationship"}]},
            ),
            "sends[0].customer_id",
        ),
        (
            client.post(
                "/v1/surveys/sent",
                json={"sends": [{"customer_id": "", "touchpoint": "relationship"}]},
            ),
            "customer_id",
        ),
        (
            client.post(
                "/v1/surveys/sent",
                json={"sends": [{"customer_id": "X", "touchpoint": "email"}]},
            ),
            "touchpoint",
        ),
        (
            client.post(
                "/v1/surveys/sent",
                json={
                    "sends": [
                        {
                            "customer_id": "X",
                            "touchpoint": "relationship",
                            "sent_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(),
                        }
                    ]
                },
            ),
            "sent_at",
        ),
        (
            client.post(
                "/v1/surveys/declined",
                json={"declines": [{"customer_id": "X", "touchpoint": "relationship", "mood": 1}]},
            ),
            "mood",
        ),
    ]
    for reply, field in cases:
        assert reply.status_code == 400, (field, reply.text)
        assert field in reply.json()["detail"], (field, reply.json())


def test_scopes_401_without_a_key_403_with_another_scope(store: Store) -> None:
    with client_for(store, api_keys=API_KEYS) as keyed:
        assert keyed.get(DUE, params={"touchpoint": "relationship"}).status_code == 401
        for scope in ("recommend", "export", "ingest", "admin", "privacy"):
            headers = {"X-API-Key": KEYS[scope]}
            reply = keyed.get(DUE, params={"touchpoint": "relationship"}, headers=headers)
            assert reply.status_code == 403, scope
            reply = keyed.post(
                "/v1/surveys/declined",
                json={"declines": [{"customer_id": "X", "touchpoint": "relationship"}]},
                headers=headers,
            )
            assert reply.status_code == 403, scope
        headers = {"X-API-Key": KEYS["survey"]}
        assert (
            keyed.get(DUE, params={"touchpoint": "relationship"}, headers=headers).status_code
            == 200
        )


def _rules(root: Path, text: str) -> str:
    path = root / "surveys.toml"
    path.write_text(text)
    return str(path)


def test_the_daily_cap_limits_the_list_by_the_sends_recorded_today(
    artifact: Artifact, tmp_path: Path
) -> None:
    with published_store("file", artifact, tmp_path) as store:
        rules = _rules(tmp_path, "[sampling]\ndaily_cap = 3\n")
        with client_for(store, surveys_file=rules) as capped:
            body = due(capped, "relationship", limit=100)
            assert body["due"] > 3
            assert (body["daily_cap"], body["sent_today"], body["remaining_today"]) == (3, 0, 3)
            assert len(body["items"]) == 3
            first, second = body["items"][:2]
            send(
                capped,
                {"customer_id": first["customer_id"], "touchpoint": "relationship"},
                {"customer_id": second["customer_id"], "touchpoint": "relationship"},
            )
            body = due(capped, "relationship", limit=100)
            assert (body["sent_today"], body["remaining_today"], len(body["items"])) == (2, 1, 1)
            assert body["items"][0]["customer_id"] not in {
                first["customer_id"],
                second["customer_id"],
            }
            send(
                capped,
                {"customer_id": body["items"][0]["customer_id"], "touchpoint": "relationship"},
            )
            body = due(capped, "post_delivery", limit=100)
            assert (body["remaining_today"], body["items"]) == (0, [])


def test_a_bad_rules_file_stops_the_start_naming_file_and_field(
    store: Store, tmp_path: Path
) -> None:
    from recsvc.errors import ConfigError

    rules = _rules(tmp_path, "[throttle]\nthrottle_days = -1\n")
    with (
        pytest.raises(ConfigError, match=r"surveys\.toml.*throttle\.throttle_days"),
        client_for(store, surveys_file=rules),
    ):
        pass


def _with_experiment(artifact: Artifact, root: Path) -> tuple[Path, dict[str, str]]:
    """The artifact as a new version whose experiment assigned 2,000 customers 30 days ago, half
    to each arm; the version directory and each assigned customer's arm."""
    customers = artifact.customer_table()["customer_id"].sort().to_list()[:2000]
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    arms = {c: assign("survey-test", "offer", c, 0.5) for c in customers}
    assignments = [
        Assignment("survey-test", "offer", c, arm, at, 0 if arm == "holdout" else 1)
        for c, arm in arms.items()
    ]
    copy = with_experiments(artifact, root, [], assignments, version=artifact.version + "-exp")
    return copy.directory, arms


def test_the_experiment_resurvey_asks_treatment_and_holdout_at_the_same_rate(
    artifact: Artifact, tmp_path: Path
) -> None:
    directory, arms = _with_experiment(artifact, tmp_path)
    store = FileStore(tmp_path / "store")
    store.publish(directory)
    try:
        with client_for(store) as client:
            body = due(client, "relationship", limit=600)
        resurveyed = [
            i["customer_id"] for i in body["items"] if i["reason"] == "experiment_resurvey"
        ]
        assert len(resurveyed) == 600  # more are due than the limit: re-surveys come first
        assert {i["reason"] for i in body["items"]} == {"experiment_resurvey"}
        chosen = set(resurveyed)
        assert chosen <= set(arms)
        rate = {
            arm: sum(c in chosen for c, a in arms.items() if a == arm)
            / sum(a == arm for a in arms.values())
            for arm in ("treatment", "holdout")
        }
        # About 600 / eligible in both arms; arms of ~1,000 customers: within sampling noise.
        assert abs(rate["treatment"] - rate["holdout"]) < 0.08, rate
    finally:
        store.close()
