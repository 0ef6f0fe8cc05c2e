"""Who entered and who left each segment between two versions (on five-customer versions written
by training's own writer), and the membership spells a sequence of such changes makes (on
hand-built steps)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recsvc.version.memberships import (
    SegmentChange,
    changes_between,
    find_sorted_ids,
    id_changes,
    membership_changes,
    segment_spells,
)
from tests.unit.version.test_profiles import ROWS, _version


def ids(*values: str) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="U1")


def test_the_change_between_two_versions_names_who_entered_and_who_left_each_segment(
    tmp_path: Path,
) -> None:
    before = _version(tmp_path / "v1", ROWS, [str(r["customer_id"]) for r in ROWS])
    # v2: C1 turns detractor (enters), C3 turns promoter (leaves), C5 is gone (leaves).
    changed = [dict(r) for r in ROWS if r["customer_id"] != "C5"]
    changed[0]["nps_category"] = "promoter"
    changed[1]["nps_category"] = "detractor"
    after = _version(tmp_path / "v2", changed, [str(r["customer_id"]) for r in changed])
    changes = {c.segment: c for c in membership_changes(before, after)}
    assert changes["detractors"] == SegmentChange("detractors", ["C1"], ["C3", "C5"])
    # Nothing else moved: segments without a change are left out.
    assert set(changes) <= {"detractors", "late_and_unhappy"}
    assert membership_changes(after, after) == []


def test_with_no_previous_version_every_member_entered(tmp_path: Path) -> None:
    profiles = _version(tmp_path / "v1", ROWS, [str(r["customer_id"]) for r in ROWS])
    changes = membership_changes(None, profiles)
    assert [c.segment for c in changes] == [info.name for info in profiles.segments() if info.size]
    for change in changes:
        members = profiles.customer_ids[profiles.members(change.segment)].tolist()
        assert change.entered == members and change.exited == []


def test_a_segment_missing_on_one_side_counts_as_empty(tmp_path: Path) -> None:
    profiles = _version(tmp_path / "v1", ROWS, [str(r["customer_id"]) for r in ROWS])
    before = {"retired": ids("C1", "C9"), "detractors": ids("C3")}
    changes = list(changes_between(lambda name: before.get(name, ids()), before, profiles))
    by_name = {c.segment: c for c in changes}
    assert by_name["retired"] == SegmentChange("retired", [], ["C1", "C9"])  # gone: all left
    assert by_name["detractors"] == SegmentChange("detractors", ["C5"], [])
    assert changes[-1].segment == "retired"  # the version's own segments first, in rule order
    hidden = np.array([profiles.index_of("C5")])
    unmasked = changes_between(lambda name: before.get(name, ids()), before, profiles, hidden)
    assert "detractors" not in {c.segment for c in unmasked}  # a masked customer never enters


def test_sorted_id_lookups_and_differences() -> None:
    found, positions = find_sorted_ids(ids("A", "C", "Z"), ids("A", "B", "C"))
    assert found.tolist() == [True, True, False] and positions[:2].tolist() == [0, 2]
    assert not find_sorted_ids(ids("A"), ids())[0].any()
    entered, exited = id_changes(ids("A", "B", "C"), ids("B", "C", "D", "E"))
    assert entered.tolist() == ["D", "E"] and exited.tolist() == ["A"]


def test_the_delta_of_a_million_customers_takes_well_under_a_second() -> None:
    everyone = np.array([f"C{i:08d}" for i in range(1_000_000)])
    before = everyone[::2]
    now = everyone[np.arange(1_000_000) % 3 == 0]
    started = time.perf_counter()
    entered, exited = id_changes(before, now)
    elapsed = time.perf_counter() - started
    assert entered.size == 166_667 and exited.size == 333_333
    assert elapsed < 1.0, elapsed


# --- spells ----------------------------------------------------------------------------------------


def spells(*steps: tuple[int, tuple[str, ...], tuple[str, ...]]) -> list[tuple[str, int, int]]:
    made = segment_spells([(seq, ids(*entered), ids(*exited)) for seq, entered, exited in steps])
    return list(
        zip(made.customer_ids.tolist(), made.entered.tolist(), made.exited.tolist(), strict=True)
    )


def test_a_spell_runs_from_an_entry_to_the_next_exit() -> None:
    assert spells(
        (1, ("A", "B", "C"), ()),
        (2, ("D",), ("A", "B")),
        (3, ("A",), ("D",)),  # a rollback: A back in, D out again
    ) == [("A", 1, 2), ("A", 3, 0), ("B", 1, 2), ("C", 1, 0), ("D", 2, 3)]


def test_open_spells_are_the_members_after_the_last_step() -> None:
    made = segment_spells([(1, ids("A", "B"), ids()), (2, ids("C"), ids("A"))])
    assert made.open_ids().tolist() == ["B", "C"]
    assert segment_spells([]).open_ids().size == 0


def test_an_exit_without_a_spell_or_a_second_entry_changes_nothing() -> None:
    """What an erasure racing a sync may leave: steps computed from a stale view."""
    assert spells(
        (1, ("A",), ("Z",)),  # Z was never in
        (2, ("A",), ()),  # A is in already
        (3, (), ("A",)),
        (4, (), ("A",)),  # out already
    ) == [("A", 1, 3)]
