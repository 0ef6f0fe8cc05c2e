"""Standard Webhooks signatures (checked by the `standardwebhooks` package, an independent
implementation), event ids, erasure inside a batch, and the retry schedule."""

from __future__ import annotations

import base64
import datetime as dt
import random

import msgspec
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from recsvc.domain.webhooks import (
    DETRACTOR,
    SEGMENT_ENTERED,
    DetractorResponse,
    MemberChange,
    decode_secret,
    event_id,
    headers,
    new_event,
    outcome_of,
    retry_after,
    retry_delay,
    without_customer,
)

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def _now_seconds() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


def test_a_receiver_holding_either_secret_verifies_a_message_signed_during_rotation() -> None:
    body = b'{"type":"model.published"}'
    sent = headers([decode_secret(OLD), decode_secret(NEW)], "msg_1", _now_seconds(), body)
    assert Webhook(OLD).verify(body, sent) == {"type": "model.published"}
    assert Webhook(NEW).verify(body, sent) == {"type": "model.published"}
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, sent)
    with pytest.raises(WebhookVerificationError):  # the body is signed, not only the id
        Webhook(OLD).verify(body + b" ", sent)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("abc", "starts with 'whsec_'"),
        ("whsec_***", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least 24 bytes"),
    ],
)
def test_a_bad_secret_is_refused_without_quoting_it(secret: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        decode_secret(secret)
    assert secret not in str(info.value)


def test_event_ids_are_stable_and_distinct() -> None:
    assert event_id("crm", 3, "promoters", SEGMENT_ENTERED, 1) == event_id(
        "crm", 3, "promoters", SEGMENT_ENTERED, 1
    )
    assert event_id("crm", 3, "promoters", SEGMENT_ENTERED, 1) != event_id(
        "crm", 3, "promoters", SEGMENT_ENTERED, 2
    )
    assert event_id("a", "b").startswith("msg_")


def _batch(ids: list[str]) -> MemberChange:
    return MemberChange(
        segment="promoters",
        version="v2",
        previous_version="v1",
        activated_at="2026-12-02T12:00:00Z",
        customer_ids=ids,
        batch=1,
        batches=1,
    )


def test_an_erased_customer_leaves_a_batch_which_keeps_its_id() -> None:
    event = new_event(
        SEGMENT_ENTERED, _batch(["C1", "C2"]), id="msg_a", created_at="t", customers=["C1", "C2"]
    )
    after = without_customer(event, "C1")
    assert after is not None and after.id == "msg_a" and after.customers == ["C2"]
    assert msgspec.json.decode(after.body)["data"]["customer_ids"] == ["C2"]
    assert without_customer(event, "C9") is event
    alone = new_event(SEGMENT_ENTERED, _batch(["C1"]), id="msg_b", created_at="t", customers=["C1"])
    assert without_customer(alone, "C1") is None
    answer = DetractorResponse(
        response_id="R1", customer_id="C1", score=2, responded_at="2026-12-02T12:00:00Z"
    )
    detractor = new_event(DETRACTOR, answer, id="msg_c", created_at="t", customers=["C1"])
    assert without_customer(detractor, "C1") is None


def test_the_retry_schedule_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    base = dt.timedelta(seconds=5)
    for attempt in range(1, 30):
        delay = retry_delay(attempt, rng, base=base)
        step = min(base * 2 ** (attempt - 1), dt.timedelta(hours=6))
        assert step / 2 <= delay <= step
    # The defaults reach the three-day give-up after about fifteen attempts, not hundreds.
    waited, attempts = dt.timedelta(0), 0
    while waited < dt.timedelta(days=3):
        attempts += 1
        waited += retry_delay(attempts, random.Random(attempts))
    assert 10 <= attempts <= 30


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after("7", NOW) == dt.timedelta(seconds=7)
    assert retry_after("Wed, 02 Dec 2026 12:00:30 GMT", NOW) == dt.timedelta(seconds=30)
    assert retry_after("999999999", NOW) == dt.timedelta(hours=6)
    assert retry_after("soon", NOW) is None
    assert retry_after(None, NOW) is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (410, "gone"),
        (429, "throttled"),
        (500, "retry"),
        (301, "retry"),
        (None, "retry"),
    ],
)
def test_what_a_reply_means(status: int | None, outcome: str) -> None:
    assert outcome_of(status) == outcome
