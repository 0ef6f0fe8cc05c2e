"""Events built from a membership-journal entry for one destination: its event and segment
filters, batches of `batch_size` ids, stable ids, and customers erased since the entry left out."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import msgspec

from recsvc.domain.privacy import Erasure, Suppression, customer_hash
from recsvc.domain.webhooks import PUBLISHED, SEGMENT_ENTERED, SEGMENT_EXITED
from recsvc.service.webhooks.destinations import Destination, load_destinations
from recsvc.service.webhooks.events import activation_events, initial_sync_events

SECRET = "whsec_" + base64.b64encode(b"e" * 32).decode()
ACTIVATED = "2026-12-01T02:00:00.000001Z"


class Change(msgspec.Struct):
    segment: str
    entered: list[str]
    exited: list[str]


class Entry(msgspec.Struct):
    seq: int
    version: str
    previous: str | None
    activated_at: str
    reason: str
    changes: list[Change]


def destination(tmp_path: Path, extra: str = "") -> Destination:
    path = tmp_path / "webhooks.toml"
    path.write_text(f'[destinations.crm]\nurl = "https://x.test"\nsecret_env = "S"\n{extra}')
    (only,) = load_destinations(path, {"S": SECRET})
    return only


ENTRY = Entry(
    seq=4,
    version="v2",
    previous="v1",
    activated_at=ACTIVATED,
    reason="publish",
    changes=[
        Change("detractors", [f"C{n}" for n in range(5)], ["C9"]),
        Change("promoters", ["C7"], []),
    ],
)


def test_batches_filters_and_stable_ids(tmp_path: Path) -> None:
    only_detractors = destination(tmp_path, 'segments = ["detractors"]\nbatch_size = 2\n')
    events = activation_events(only_detractors, ENTRY, Suppression())
    assert [e.type for e in events] == [PUBLISHED, SEGMENT_EXITED, *[SEGMENT_ENTERED] * 3]
    entered = [msgspec.json.decode(e.body)["data"] for e in events if e.type == SEGMENT_ENTERED]
    assert [d["customer_ids"] for d in entered] == [["C0", "C1"], ["C2", "C3"], ["C4"]]
    assert [(d["batch"], d["batches"]) for d in entered] == [(1, 3), (2, 3), (3, 3)]
    assert all(d["version"] == "v2" and d["previous_version"] == "v1" for d in entered)
    again = activation_events(only_detractors, ENTRY, Suppression())
    assert [e.id for e in again] == [e.id for e in events] and len({e.id for e in events}) == 5
    no_published = destination(tmp_path, 'events = ["segment.member.entered"]\n')
    assert {e.type for e in activation_events(no_published, ENTRY, Suppression())} == {
        SEGMENT_ENTERED
    }


def test_customers_erased_since_the_entry_are_left_out_returning_ones_kept(
    tmp_path: Path,
) -> None:
    moment = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
    suppression = Suppression.of(
        [
            Erasure(  # erased after the entry: it may still hold them
                erasure_id="e1",
                customer_hash=customer_hash("C1"),
                erased_at=moment + dt.timedelta(hours=1),
                requested_by="test",
                state="started",
            ),
            Erasure(  # erased before: the entry holds them only as a returning customer
                erasure_id="e2",
                customer_hash=customer_hash("C2"),
                erased_at=moment - dt.timedelta(days=3),
                requested_by="test",
                state="started",
            ),
        ]
    )
    events = activation_events(destination(tmp_path), ENTRY, suppression)
    ids = [i for e in events for i in e.customers]
    assert "C1" not in ids and "C2" in ids
    initial = initial_sync_events(
        destination(tmp_path),
        [("detractors", ["C1", "C2", "C3"])],
        version="v2",
        activated_at=ACTIVATED,
        seq=4,
        suppression=suppression,
    )
    (event,) = initial
    assert (
        event.customers == ["C2", "C3"] and msgspec.json.decode(event.body)["data"]["initial_sync"]
    )
