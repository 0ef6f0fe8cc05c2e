"""The membership journal on both stores (`Store.memberships`), on tiny hand-built versions: every
publish and rollback appends who entered and who left each segment, the replayed spells close and
open to match the active version, a pointer switch the journal missed (a crash) is recorded by the
next read or activation, concurrent syncs append once, and an erasure removes the customer from
every stored part and keeps them out of later activations. Redis runs on one server and on a
cluster (the sync's WATCH and MULTI stay in the journal's slot)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from recsvc.domain.privacy import Erasure, customer_hash
from recsvc.store import FileStore, RedisStore, Store, open_store
from recsvc.store.files import ACTIVE
from recsvc.version.profiles import Profiles
from tests.api_support import STORE_KINDS_AND_CLUSTER
from tests.artifact_factory import make_artifact
from tests.integration.serve.test_privacy_serve import unclaimed

pytestmark = pytest.mark.parametrize("empty_store_url", STORE_KINDS_AND_CLUSTER, indirect=True)

# Each customer's NPS category (so their segment) in three versions: c001 and c003 move, c004 is
# gone from v2, c005 joins in v3.
V1 = ["promoter", "passive", "detractor", "promoter", "detractor"]
V2 = ["promoter", "detractor", "detractor", "passive"]
V3 = ["promoter", "detractor", "detractor", "passive", "passive", "promoter"]
SEGMENT = {"promoter": "promoters", "passive": "passives", "detractor": "detractors"}


@pytest.fixture
def artifacts(tmp_path: Path) -> dict[str, Path]:
    return {
        name: make_artifact(tmp_path / name, name, len(categories), categories=categories)
        for name, categories in (("v1", V1), ("v2", V2), ("v3", V3))
    }


@pytest.fixture
def store(empty_store_url: str) -> Store:
    return open_store(empty_store_url)


def history(store: Store) -> list[tuple[str, str, int, int | None]]:
    """The spells, with the seq of the activation that opened and closed each."""
    seq = {a.activated_at: a.seq for a in store.memberships.activations()}
    return [
        (s.segment, s.customer_id, seq[s.entered_at], seq[s.exited_at] if s.exited_at else None)
        for s in store.memberships.spells()
    ]


def assert_open_spells_match_the_active_version(store: Store) -> None:
    active = store.active_version()
    assert active is not None
    profiles = Profiles.open(store.version_path(active))
    open_spells: dict[str, set[str]] = {}
    for spell in store.memberships.spells():
        if spell.exited_at is None:
            assert spell.entered_version in {a.version for a in store.memberships.activations()}
            open_spells.setdefault(spell.segment, set()).add(spell.customer_id)
    for info in profiles.segments():
        members = set(profiles.customer_ids[profiles.members(info.name)].tolist())
        assert open_spells.get(info.name, set()) == members, info.name
    assert set(open_spells) <= {info.name for info in profiles.segments()}


def switch_pointer(store: Store, version: str) -> None:
    """The pointer switch alone, as a process killed right after it leaves the store."""
    if isinstance(store, FileStore):
        (store.root / ACTIVE).write_text(version + "\n")
    else:
        assert isinstance(store, RedisStore)
        store._client.set(f"{store.prefix}:active", version)


def test_publishes_and_a_rollback_close_and_open_spells_to_match_the_active_version(
    store: Store, artifacts: dict[str, Path]
) -> None:
    store.publish(artifacts["v1"])
    store.publish(artifacts["v2"])
    store.activate("v1")  # the rollback
    store.activate("v1")  # already active: nothing to add
    activations = list(store.memberships.activations())
    assert [(a.seq, a.version, a.previous, a.reason) for a in activations] == [
        (1, "v1", None, "publish"),
        (2, "v2", "v1", "publish"),
        (3, "v1", "v2", "rollback"),
    ]
    stamps = [a.activated_at for a in activations]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3 and stamps[0].endswith("Z")
    assert {c.segment: (c.entered, c.exited) for c in activations[1].changes} == {
        "promoters": ([], ["c003"]),
        "passives": (["c003"], ["c001"]),
        "detractors": (["c001"], ["c004"]),
    }
    assert sorted(history(store)) == sorted(
        [
            ("promoters", "c000", 1, None),  # a member throughout: one spell
            ("promoters", "c003", 1, 2),
            ("promoters", "c003", 3, None),  # back in at the rollback: a new spell
            ("passives", "c001", 1, 2),
            ("passives", "c001", 3, None),
            ("passives", "c003", 2, 3),
            ("detractors", "c001", 2, 3),
            ("detractors", "c002", 1, None),
            ("detractors", "c004", 1, 2),  # gone from v2 altogether
            ("detractors", "c004", 3, None),
        ]
    )
    assert_open_spells_match_the_active_version(store)
    assert store.memberships.last_seq() == 3

    # A version pruned since does not matter: changes are worked out against the journal.
    store.publish(artifacts["v3"], keep=1)
    assert [v.version for v in store.list_versions()] == ["v3"]
    assert next(store.memberships.activations(after_seq=3)).reason == "publish"
    assert_open_spells_match_the_active_version(store)
    assert ("passives", "c004", 4, None) in history(store)

    first = dt.datetime.fromisoformat(stamps[2])  # since the rollback: what it and v3 changed
    assert {(s.customer_id, s.segment) for s in store.memberships.spells(first)} == {
        ("c001", "passives"),  # closed by v3
        ("c001", "detractors"),  # closed by the rollback, opened again by v3
        ("c003", "passives"),
        ("c003", "promoters"),
        ("c004", "detractors"),
        ("c004", "passives"),
        ("c005", "promoters"),
    }
    assert [s.segment for s in store.memberships.spells(customer_id="c003")] == [
        "promoters",
        "promoters",
        "passives",
        "passives",
    ]
    assert unclaimed(store) == []  # the registry names the journal's files


def test_a_pointer_switch_the_journal_missed_is_recorded_by_the_next_read_or_activation(
    store: Store, artifacts: dict[str, Path]
) -> None:
    store.publish(artifacts["v1"])
    store.publish(artifacts["v2"], activate=False)
    switch_pointer(store, "v2")  # killed before the journal's append
    assert store.memberships.last_seq() == 2  # a read records it first
    assert_open_spells_match_the_active_version(store)
    switch_pointer(store, "v1")
    store.publish(artifacts["v3"])  # the next activation records the missed one first
    assert [(a.version, a.previous, a.reason) for a in store.memberships.activations()] == [
        ("v1", None, "publish"),
        ("v2", "v1", "publish"),
        ("v1", "v2", "rollback"),
        ("v3", "v1", "publish"),
    ]
    assert_open_spells_match_the_active_version(store)


def test_concurrent_syncs_append_one_entry(
    empty_store_url: str, store: Store, artifacts: dict[str, Path]
) -> None:
    store.publish(artifacts["v1"])
    store.publish(artifacts["v2"], activate=False)
    switch_pointer(store, "v2")
    stores = [open_store(empty_store_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    appended: list[object] = []

    def sync(other: Store) -> None:
        barrier.wait()
        appended.append(other.memberships.sync())

    threads = [threading.Thread(target=sync, args=(other,)) for other in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([entry for entry in appended if entry is not None]) == 1
    assert [a.version for a in store.memberships.activations()] == ["v1", "v2"]
    for other in stores:
        other.close()


def test_an_erased_customer_leaves_every_part_and_no_activation_brings_them_back(
    store: Store, artifacts: dict[str, Path]
) -> None:
    store.publish(artifacts["v1"])
    store.publish(artifacts["v2"])
    store.activate("v1")
    assert store.memberships.erase("c004") == 2  # two spells: v1's, and the rollback's
    assert store.memberships.erase("c004") == 0
    assert "c004" not in str(list(store.memberships.activations()))
    assert not list(store.memberships.spells(customer_id="c004"))
    # Erased now (the suppression list): a version built before keeps them masked, and
    # re-activating it adds no spell of theirs.
    store.erasures.append(
        Erasure(
            erasure_id="e1",
            customer_hash=customer_hash("c004"),
            erased_at=dt.datetime.now(dt.UTC),
            requested_by="test",
            state="started",
        )
    )
    store.activate("v2")
    store.activate("v1")
    assert "c004" not in {s.customer_id for s in store.memberships.spells()}
    assert [a.reason for a in store.memberships.activations()][-2:] == ["activate", "rollback"]
