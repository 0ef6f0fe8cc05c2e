"""Live records: what the service takes in over HTTP between two training runs.

Two kinds, one shape of handling: an NPS answer (`LiveResponse`) and an order line
(`LiveOrderLine`). Each is checked against the data contract at intake, stored durably and
idempotently by its `key`, read back per customer by every worker, merged by the next training
run and compacted once a published version holds it. Shared by the intake, the stores, the
customer's live state, NPS summaries and the training run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import msgspec

from recsvc.domain.times import utc


def stable_key(text: str) -> int:
    """A stable 64-bit key of an id (the same in training and in every worker): what a version
    stores to say which live records it holds."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


# gc=False: a worker keeps every live record in memory (the file store's index), hundreds of
# thousands on a busy day, and they hold only strings, numbers and times: the cyclic collector
# need not walk them on every full collection.
class _Received(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    def __post_init__(self) -> None:
        # Records stored by earlier versions carry naive times: they are UTC.
        for name in self.__struct_fields__:
            moment = getattr(self, name)
            if isinstance(moment, dt.datetime) and moment.tzinfo is not dt.UTC:
                msgspec.structs.force_setattr(self, name, utc(moment))


class LiveResponse(_Received, frozen=True, kw_only=True):
    """An NPS response accepted by the service (already validated against the contract).

    Its times are aware UTC (`recsvc.domain.times`). Idempotent by `response_id`: the first copy
    stored is the answer, a later one with the same id is a duplicate.
    """

    response_id: str
    customer_id: str
    score: int
    responded_at: dt.datetime
    touchpoint: str
    order_id: str | None = None
    comment: str | None = None
    received_at: dt.datetime

    @property
    def key(self) -> str:
        return self.response_id

    @property
    def occurred_at(self) -> dt.datetime:
        """When it happened: what the privacy rules date it by."""
        return self.responded_at


_revision_encoder = msgspec.json.Encoder()


class LiveOrderLine(_Received, frozen=True, kw_only=True):
    """An order line accepted by the service: the contract's `orders` shape plus its `line_id`.

    A line is sent again when its status changes (delivered, returned, cancelled): each distinct
    content of a `line_id` is a *revision*, stored once (`key`), and the revision received last is
    the line (`latest_revisions`). Sending a revision already stored is a duplicate, so a client
    retrying an old request never undoes a newer status.
    """

    line_id: str
    order_id: str
    customer_id: str
    product_id: str
    quantity: int
    unit_price: float
    ordered_at: dt.datetime
    promised_delivery_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    status: str = "delivered"
    received_at: dt.datetime

    @property
    def revision(self) -> str:
        """A digest of the line's content (everything but when it was received)."""
        content = _revision_encoder.encode(
            (
                self.line_id,
                self.order_id,
                self.customer_id,
                self.product_id,
                self.quantity,
                self.unit_price,
                self.ordered_at,
                self.promised_delivery_at,
                self.delivered_at,
                self.status,
            )
        )
        return hashlib.blake2b(content, digest_size=8).hexdigest()

    @property
    def key(self) -> str:
        return f"{self.line_id}#{self.revision}"

    @property
    def occurred_at(self) -> dt.datetime:
        """When it happened: what the privacy rules date it by (a revision of an order keeps the
        order's time)."""
        return self.ordered_at

    @property
    def bought(self) -> bool:
        """Whether the line counts as a purchase (as in training: neither cancelled nor returned)."""
        return self.status not in ("cancelled", "returned")


class LiveRecord(Protocol):
    """What the stores need of a live record."""

    @property
    def customer_id(self) -> str: ...

    @property
    def received_at(self) -> dt.datetime: ...

    @property
    def key(self) -> str: ...

    @property
    def occurred_at(self) -> dt.datetime: ...


R = TypeVar("R", LiveResponse, LiveOrderLine)


def erased_records(
    customer_id: str, until: dt.datetime | None = None
) -> Callable[[LiveRecord], bool]:
    """Which stored records an erasure of the customer removes: all of theirs, or those that
    occurred at or before `until` (a returning customer's later ones stay)."""

    def erased(record: LiveRecord) -> bool:
        return record.customer_id == customer_id and (until is None or record.occurred_at <= until)

    return erased


def customer_mention(customer_id: str) -> bytes:
    """How a stored record (its JSON) names its customer: a cheap test of a line before decoding
    it."""
    return b'"customer_id":' + msgspec.json.encode(customer_id)


@dataclass(frozen=True, slots=True)
class LiveKind(Generic[R]):
    """One kind of live record: its type and how people call one."""

    name: str  # "answers", "orders"
    type: type[R]
    noun: str  # "NPS response", "order line"


ANSWERS: LiveKind[LiveResponse] = LiveKind("answers", LiveResponse, "NPS response")
ORDER_LINES: LiveKind[LiveOrderLine] = LiveKind("orders", LiveOrderLine, "order line")


def latest_revisions(lines: Iterable[LiveOrderLine]) -> list[LiveOrderLine]:
    """The current revision of each line: the one received last (stored order breaks ties), in
    the order the lines were first received."""
    latest: dict[str, tuple[dt.datetime, int, LiveOrderLine]] = {}
    first: dict[str, int] = {}
    for position, line in enumerate(lines):
        first.setdefault(line.line_id, position)
        held = latest.get(line.line_id)
        if held is None or (line.received_at, position) >= held[:2]:
            latest[line.line_id] = (line.received_at, position, line)
    return [latest[line_id][2] for line_id in sorted(first, key=first.__getitem__)]


@dataclass(frozen=True, slots=True)
class LiveActivity:
    """One customer's live records, oldest first: what a request reads of the store."""

    answers: Sequence[LiveResponse] = ()
    orders: Sequence[LiveOrderLine] = ()
    # When the customer was last erased (`recsvc.domain.privacy`): a version built before then
    # must not show what it holds of them. Not live activity by itself (`__bool__`).
    erased_at: dt.datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.answers) or bool(self.orders)

    def after_erasure(self) -> LiveActivity:
        """The records dated after the customer's erasure (a returning customer's): an older one
        that reached the store while the erasure ran is never served."""
        erased = self.erased_at
        if erased is None:
            return self
        return LiveActivity(
            answers=[r for r in self.answers if r.occurred_at > erased],
            orders=[line for line in self.orders if line.occurred_at > erased],
            erased_at=erased,
        )


NO_ACTIVITY = LiveActivity()
