"""Outbound events as the Standard Webhooks specification has them: the event types and their
payloads, a message's id and signature, and when a failed delivery is tried again.

Pure: the outbox (`recsvc.store.outbox`) stores `OutboxEvent`s, the deliverer
(`recsvc.service.webhooks`) signs and sends them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import random
from email.utils import parsedate_to_datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

SEGMENT_ENTERED = "segment.member.entered"
SEGMENT_EXITED = "segment.member.exited"
DETRACTOR = "nps.response.detractor"
PUBLISHED = "model.published"
ERASED = "customer.erased"
EVENT_TYPES = (SEGMENT_ENTERED, SEGMENT_EXITED, DETRACTOR, PUBLISHED, ERASED)
SECRET_PREFIX = "whsec_"

# Retries: exponential from RETRY_BASE, each wait jittered to 50-100% of its step and capped, until
# the event is MAX_AGE old (about three days: 15 attempts at the defaults).
RETRY_BASE = dt.timedelta(seconds=5)
RETRY_CAP = dt.timedelta(hours=6)
MAX_AGE = dt.timedelta(days=3)


# --- payloads (the `data` of each event type) -----------------------------------------------------


Time = Annotated[str, Meta(description="UTC, ISO 8601 with a Z")]


class MemberChange(msgspec.Struct, frozen=True, kw_only=True):
    """`segment.member.entered` / `segment.member.exited`: customers who entered or left one
    segment when `version` became active, one batch of them."""

    segment: Annotated[str, Meta(description="the segment's name, as the API and exports give it")]
    version: Annotated[str, Meta(description="the model version whose activation moved them")]
    previous_version: Annotated[
        str | None, Meta(description="the version active before (null: the first, or a sync)")
    ]
    activated_at: Annotated[str, Meta(description="when `version` became active (UTC, Z)")]
    customer_ids: Annotated[list[str], Meta(description="the shop's customer ids, sorted")]
    batch: Annotated[int, Meta(ge=1, description="this batch's number, from 1")]
    batches: Annotated[int, Meta(ge=1, description="how many batches this change has")]
    initial_sync: Annotated[
        bool,
        Meta(description="true: the current members sent to a new destination, not a change"),
    ] = False


class DetractorResponse(msgspec.Struct, frozen=True, kw_only=True):
    """`nps.response.detractor`: a new detractor answer (score 0-6) taken in live."""

    response_id: str
    customer_id: str
    score: Annotated[int, Meta(ge=0, le=6)]
    responded_at: Time
    touchpoint: str | None = None
    order_id: str | None = None
    comment: str | None = None


class ModelPublished(msgspec.Struct, frozen=True, kw_only=True):
    """`model.published`: a version became active, by a training run's publish or a rollback."""

    version: str
    previous_version: str | None
    activated_at: Time
    reason: Annotated[
        str,
        Meta(
            description="publish (a training run's new version), rollback (an older version "
            "activated again) or activate (a newer stored version activated again)"
        ),
    ]


class CustomerErased(msgspec.Struct, frozen=True, kw_only=True):
    """`customer.erased`: a customer was erased here (a privacy request); a receiver that holds
    data about them from earlier events should erase it too (GDPR article 19)."""

    customer_id: Annotated[
        str, Meta(description="the shop's customer id, for the receiver to find")
    ]
    erased_at: Time
    erasure_id: Annotated[
        str, Meta(description="the erasure log entry's id (GET /v1/privacy/erasures)")
    ]


Payload = MemberChange | DetractorResponse | ModelPublished | CustomerErased
PAYLOADS: dict[str, type[msgspec.Struct]] = {
    SEGMENT_ENTERED: MemberChange,
    SEGMENT_EXITED: MemberChange,
    DETRACTOR: DetractorResponse,
    PUBLISHED: ModelPublished,
    ERASED: CustomerErased,
}


class Envelope(msgspec.Struct, frozen=True):
    """The body POSTed: Standard Webhooks' recommended `{type, timestamp, data}`."""

    type: str
    timestamp: str
    data: Payload


class _MemberEnvelope(msgspec.Struct, frozen=True):
    type: str
    timestamp: str
    data: MemberChange


class OutboxEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One message waiting in a destination's outbox. `id` is the `webhook-id`, the same on every
    attempt; `customers` are the ids the body names (what an erasure looks for)."""

    id: str
    type: str
    created_at: str
    body: str  # the Envelope as JSON, exactly as signed and sent
    customers: list[str] = msgspec.field(default_factory=list)


_encoder = msgspec.json.Encoder()


def event_id(*parts: object) -> str:
    """A deterministic `webhook-id` from what identifies the event (destination, source, batch):
    built again after a crash, the same event gets the same id, so a receiver drops the repeat."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"msg_{digest[:32]}"


def new_event(
    event_type: str, payload: Payload, *, id: str, created_at: str, customers: list[str]
) -> OutboxEvent:
    body = _encoder.encode(Envelope(event_type, created_at, payload)).decode()
    return OutboxEvent(
        id=id, type=event_type, created_at=created_at, body=body, customers=customers
    )


def without_customer(event: OutboxEvent, customer_id: str) -> OutboxEvent | None:
    """The event with a customer taken out (a privacy erasure): None when it was about them alone
    (a detractor answer, a batch of one), else the batch re-encoded without them, same id."""
    if customer_id not in event.customers:
        return event
    remaining = [c for c in event.customers if c != customer_id]
    if not remaining or event.type not in (SEGMENT_ENTERED, SEGMENT_EXITED):
        return None
    envelope = msgspec.json.decode(event.body, type=_MemberEnvelope)
    data = msgspec.structs.replace(
        envelope.data, customer_ids=[c for c in envelope.data.customer_ids if c != customer_id]
    )
    body = _encoder.encode(Envelope(envelope.type, envelope.timestamp, data)).decode()
    return msgspec.structs.replace(event, body=body, customers=remaining)


# --- signatures -----------------------------------------------------------------------------------


def decode_secret(secret: str) -> bytes:
    """A `whsec_` secret's key bytes; ValueError saying what is wrong (never quoting it)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a secret is {SECRET_PREFIX!r} and base64") from None
    if len(key) < 24:
        raise ValueError("a secret holds at least 24 bytes (32 is usual)")
    return key


def signature(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of id.timestamp.body>` per key,
    space-separated, so a receiver holding either the old or the new secret verifies it."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


def headers(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(keys, msg_id, timestamp, body),
    }


# --- retries --------------------------------------------------------------------------------------

Outcome = Literal["delivered", "retry", "throttled", "gone", "expired"]


def outcome_of(status: int | None) -> Outcome:
    """What a reply means: 2xx delivered; 410 the receiver is gone for good (the destination is
    disabled); 429 throttled (wait as told); anything else, a timeout or no connection, retry."""
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    if status == 429:
        return "throttled"
    return "retry"


def retry_delay(
    attempts: int,
    rng: random.Random,
    base: dt.timedelta = RETRY_BASE,
    cap: dt.timedelta = RETRY_CAP,
) -> dt.timedelta:
    """The wait after the `attempts`-th failed attempt (1-based): base * 2^(attempts-1), capped,
    then jittered to 50-100% so destinations that failed together do not retry together."""
    step = min(base * 2 ** min(attempts - 1, 40), cap)
    return step * (0.5 + rng.random() / 2)


def retry_after(
    value: str | None, now: dt.datetime, cap: dt.timedelta = RETRY_CAP
) -> dt.timedelta | None:
    """A `Retry-After` header (seconds, or an HTTP date) as a wait, capped; None when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(dt.timedelta(seconds=int(value)), cap)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return min(max(moment - now, dt.timedelta(0)), cap)
