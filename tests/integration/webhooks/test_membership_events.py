"""Segment membership reaches a CRM as a user's path makes it change: a training run publishes
(a new destination first gets every current member), a detractor answer comes in over HTTP, the
next run publishes (the customer exits and enters segments, `model.published` goes out), and an
admin rolls back (the reverse). The receiver's picture of each segment then equals the active
version's membership, which equals the open spells of `GET /v1/segments/memberships`."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from recsvc.domain.webhooks import PUBLISHED, SEGMENT_ENTERED, SEGMENT_EXITED
from recsvc.store import open_store
from recsvc.store.base import Store
from recsvc.version.profiles import Profiles
from tests.api_support import client_for
from tests.integration.store.test_live_compaction import answer, post, train
from tests.integration.webhooks.test_delivery import (
    SECRET,
    assert_documented,
    delivering,
    unique,
    write_webhooks,
)
from tests.webhook_receiver import Receiver, running
from training.sources.generate import generate

BATCH = 40


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("membership-events") / "data"
    generate(data, 400, seed=11, show_progress=False)
    return data


def membership(store: Store) -> dict[str, set[str]]:
    version = store.active_version()
    assert version is not None
    profiles = Profiles.open(store.version_path(version))
    return {
        info.name: set(profiles.customer_ids[profiles.members(info.name)].tolist())
        for info in profiles.segments()
    }


def replay(bodies: list[dict[str, Any]]) -> dict[str, set[str]]:
    """A receiver's picture of each segment from the member events, in arrival order."""
    members: dict[str, set[str]] = defaultdict(set)
    for body in bodies:
        data = body["data"]
        if body["type"] == SEGMENT_ENTERED:
            members[data["segment"]] |= set(data["customer_ids"])
        elif body["type"] == SEGMENT_EXITED:
            members[data["segment"]] -= set(data["customer_ids"])
    return {name: ids for name, ids in members.items() if ids}


def test_publishes_and_a_rollback_reach_the_receiver_as_member_changes(
    demo: Path, empty_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SECRET", SECRET)
    first = train(demo, empty_store_url, tmp_path / "runs")
    assert first.version is not None
    store = open_store(empty_store_url, cache_dir=tmp_path / "cache")
    receiver = Receiver(SECRET)
    with running(receiver) as live:
        webhooks = write_webhooks(
            tmp_path / "webhooks.toml", live.url, extra=f"batch_size = {BATCH}\n"
        )
        options: dict[str, Any] = {
            "retry_base": dt.timedelta(milliseconds=50),
            "poll_seconds": 0.05,
        }

        def settled(expected: dict[str, set[str]]) -> bool:
            return (
                store.outbox.state("crm").pending == 0
                and replay([r.body for r in unique(live)]) == expected
            )

        with delivering(store, webhooks, **options):
            # A new destination: every current member, as entered, in batches.
            v1 = {name: ids for name, ids in membership(store).items() if ids}
            assert live.wait_for(lambda _: settled(v1), 30), replay([r.body for r in unique(live)])
            initial = [r.body for r in unique(live)]
            assert all(b["data"]["initial_sync"] for b in initial)
            assert max(len(b["data"]["customer_ids"]) for b in initial) <= BATCH

            # A promoter turns detractor over HTTP; the next run moves them.
            with client_for(store, webhooks_file=str(webhooks)) as client:
                promoter = sorted(v1.get("promoters", set()) or next(iter(v1.values())))[0]
                post(client, [answer("R-turned", promoter, 0, hour=21)])
            second = train(demo, empty_store_url, tmp_path / "runs")
            assert second.version is not None and second.version != first.version
            v2 = {name: ids for name, ids in membership(store).items() if ids}
            assert v2 != v1
            assert live.wait_for(lambda _: settled(v2), 30)
            published = [r.body for r in unique(live) if r.body["type"] == PUBLISHED]
            assert [p["data"]["version"] for p in published] == [second.version]
            assert published[0]["data"]["previous_version"] == first.version
            moved = [
                b["data"]["segment"]
                for b in (r.body for r in unique(live))
                if b["type"] in (SEGMENT_ENTERED, SEGMENT_EXITED)
                and not b["data"]["initial_sync"]
                and promoter in b["data"]["customer_ids"]
            ]
            assert moved, "the customer who turned detractor left or entered a segment"

            # The admin rolls back: the receiver's segments follow the re-activated version.
            with client_for(store, webhooks_file=str(webhooks)) as client:
                back = client.post(f"/v1/models/{first.version}/activate")
                assert back.status_code == 200, back.text
                assert live.wait_for(lambda _: settled(v1), 30)
                spells = client.get("/v1/segments/memberships?format=ndjson")
                assert spells.status_code == 200, spells.text
            # A receiver that lost its copy asks for the members again: an initial sync of the
            # re-activated version, after what was waiting.
            # Counted before asking: the deliverer may send the first group before the answer.
            before = len(unique(live))
            with client_for(store, webhooks_file=str(webhooks)) as client:
                again = client.post("/v1/webhooks/crm/resync")
                assert again.status_code == 200, again.text
            assert live.wait_for(
                lambda r: (
                    store.outbox.state("crm").filled_seq is not None
                    and store.outbox.state("crm").pending == 0
                    and len(unique(r)) > before
                    # The initial sync may reach the receiver in several groups: wait for the
                    # whole picture (a loaded machine once read the outbox empty between two).
                    and replay([x.body for x in unique(r)][before:]) == v1
                ),
                30,
            )
            resent = [r.body for r in unique(live)][before:]
            assert all(b["data"]["initial_sync"] for b in resent)
            assert replay(resent) == v1
        rollback = [r.body for r in unique(live) if r.body["type"] == PUBLISHED][-1]["data"]
        assert rollback["version"] == first.version and rollback["reason"] != "publish"
    open_spells: dict[str, set[str]] = defaultdict(set)
    for line in spells.text.splitlines():
        row = json.loads(line)
        if row["exited_at"] is None:
            open_spells[row["segment"]].add(row["customer_id"])
    assert dict(open_spells) == v1
    assert all(r.verified for r in live.received)
    assert_documented(live.received)
    store.close()
