"""The live intake refuses what the batch validator refuses, by the same rules (`recsvc.domain.contract`):
ids under the id rule, scores that are JSON integers 0..10 in ASCII digits, answers not dated in
the future, bodies that are UTF-8 JSON announced as `application/json`. Nothing valid in a batch is
lost because of a bad neighbour, and no hostile body gets a 500."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.domain import times
from recsvc.domain.contract import FUTURE_SKEW, MAX_ID_LENGTH
from recsvc.store.base import Store

URL = "/v1/nps-responses"


def answer(rid: str, **fields: Any) -> dict[str, Any]:
    return {
        "response_id": rid,
        "customer_id": "RULES-CUSTOMER",
        "score": 7,
        "responded_at": times.iso(times.now() - dt.timedelta(hours=1)),
        "touchpoint": "relationship",
        **fields,
    }


def rejected_errors(client: TestClient[Litestar], item: dict[str, Any]) -> list[str]:
    """Post `item` next to a valid one; the valid one is stored, the item's errors returned."""
    good = answer(f"{item['response_id']}-good-neighbour")
    response = client.post(URL, json=[good, item])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] + body["duplicates"] == 1, "the valid neighbour is never lost"
    assert [r["index"] for r in body["rejected"]] == [1], body
    errors: list[str] = body["rejected"][0]["errors"]
    return errors


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("customer_id", "C\x001", "control or separator character"),
        ("customer_id", "C\n1", "control or separator character"),
        ("customer_id", "C\u20281", "control or separator character"),
        ("customer_id", "x" * (MAX_ID_LENGTH + 1), f"longer than {MAX_ID_LENGTH} characters"),
        ("customer_id", 12345, "expected a string"),
        ("order_id", "O\t1", "control or separator character"),
        ("score", "\u0669", "expected an integer, got a JSON string"),
        ("score", "7", "expected an integer, got a JSON string"),
        ("score", 7.0, "expected an integer, got a JSON number"),
        ("score", True, "expected an integer, got a JSON boolean"),
        ("score", 11, "out of range"),
        ("responded_at", "9999-12-31T00:00:00Z", "in the future"),
        ("responded_at", "\u0662\u0660\u0662\u0665-01-01", "not a date-time"),
        ("responded_at", 1735689600, "expected a string"),
        ("comment", "y" * 5_001, "longer than 5000 characters"),
    ],
)
def test_a_field_breaking_a_contract_rule_is_rejected_by_name(
    client: TestClient[Litestar], field: str, value: Any, says: str
) -> None:
    rid = f"rule-{field}-{abs(hash(repr(value))) % 10**8}"
    errors = rejected_errors(client, answer(rid, **{field: value}))
    assert any(e.startswith(f"{field}: ") and says in e for e in errors), errors


def test_an_id_of_exactly_the_limit_and_a_time_just_inside_the_skew_are_accepted(
    client: TestClient[Litestar], store: Store
) -> None:
    customer = "é" * MAX_ID_LENGTH  # characters, not bytes; any script's letters
    soon = times.iso(times.now() + FUTURE_SKEW - dt.timedelta(minutes=1))
    response = client.post(URL, json=answer("rule-edge", customer_id=customer, responded_at=soon))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    assert [r.response_id for r in store.answers.of_customer(customer)] == ["rule-edge"]


def test_a_far_future_answer_does_not_pin_the_customers_latest_answer(
    client: TestClient[Litestar],
) -> None:
    """An answer dated 9999 is refused, so a real detractor answer given today counts."""
    customer = "RULES-FUTURE"
    late = answer("rule-9999", customer_id=customer, score=10, responded_at="9999-12-31T23:59:59Z")
    assert client.post(URL, json=late).status_code == 400
    today = answer("rule-today", customer_id=customer, score=0)
    assert client.post(URL, json=today).json()["accepted"] == 1
    offers = client.get(f"/v1/customers/{customer}/offers").json()
    assert offers["nps_category"] == "detractor"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_a_body_not_announced_as_json_is_a_415(
    client: TestClient[Litestar], content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = b'{"response_id": "rule-415"}'
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert "application/json" in response.json()["detail"]


def test_json_with_a_charset_of_utf8_is_taken(client: TestClient[Litestar]) -> None:
    body = b'{"response_id": "rule-charset", "customer_id": "RULES-C", "score": 9, '
    body += b'"responded_at": "2025-01-01T00:00:00Z", "touchpoint": "relationship"}'
    headers = {"Content-Type": "application/json; charset=UTF-8"}
    assert client.post(URL, content=body, headers=headers).status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        b'{"response_id": "rule-utf8", "comment": "\xff\xfe"}',
        b"\xff\xfe{}",
        b'[{"response_id": "\xc3"}]',
    ],
)
def test_a_body_that_is_not_utf8_is_a_400_not_a_500(
    client: TestClient[Litestar], body: bytes
) -> None:
    response = client.post(URL, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert "UTF-8" in response.json()["detail"]
