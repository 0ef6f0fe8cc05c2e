"""Segment membership between versions: who entered and who left each segment (`SegmentChange`),
and the membership spells a sequence of such changes makes (`segment_spells`).

Pure numpy over sorted id arrays (a version's `customer_ids` are sorted and a segment's members
ascend, so its member ids are sorted too): merges by binary search, no loop over customers. The
member export's `since_version` (`recsvc.service.exports.plan`) and the store's membership journal
(`recsvc.store.memberships`) share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from recsvc.errors import NotFoundError
from recsvc.version.erased import without
from recsvc.version.profiles import Profiles

_NO_IDS = np.zeros(0, dtype="U1")
_NO_SEQS = np.zeros(0, dtype=np.int64)


class SegmentChange(msgspec.Struct, frozen=True):
    """Who entered and who left one segment (customer ids, ascending)."""

    segment: str
    entered: list[str] = []
    exited: list[str] = []


def find_sorted_ids(needles: np.ndarray, haystack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, positions) of sorted `needles` in sorted `haystack`."""
    if haystack.size == 0:
        return np.zeros(needles.size, dtype=bool), np.zeros(needles.size, dtype=np.int64)
    positions = np.searchsorted(haystack, needles)
    clipped = np.minimum(positions, haystack.size - 1)
    return (positions < haystack.size) & (haystack[clipped] == needles), clipped


def segment_ids(profiles: Profiles, name: str, hidden: np.ndarray | None = None) -> np.ndarray:
    """The ids of the segment's members, ascending; none when the version lacks the segment.
    `hidden`: rows left out (customers a worker masks, `recsvc.version.erased`)."""
    try:
        rows = np.asarray(profiles.members(name))
    except NotFoundError:
        return _NO_IDS
    if hidden is not None:
        rows = without(rows, hidden)
    return profiles.customer_ids[rows]


def id_changes(before: np.ndarray, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids in `now` and not in `before` (entered), and in `before` and not in `now` (exited):
    both arguments sorted, both results sorted."""
    stayed, _ = find_sorted_ids(now, before)
    kept, _ = find_sorted_ids(before, now)
    return now[~stayed], before[~kept]


def changes_between(
    before: Callable[[str], np.ndarray],
    before_segments: Iterable[str],
    current: Profiles,
    hidden: np.ndarray | None = None,
) -> Iterator[SegmentChange]:
    """The segments whose members changed from `before` (a segment's sorted member ids, for each
    of `before_segments`) to `current` (without the `hidden` rows), one at a time: `current`'s
    segments in rule order, then those only `before` had, by name. A segment missing on one side
    is empty there."""
    names = [info.name for info in current.segments()]
    names += sorted(set(before_segments) - set(names))
    for name in names:
        entered, exited = id_changes(before(name), segment_ids(current, name, hidden))
        if entered.size or exited.size:
            yield SegmentChange(name, entered.tolist(), exited.tolist())


def membership_changes(previous: Profiles | None, current: Profiles) -> list[SegmentChange]:
    """Who entered and who left each segment from `previous` to `current` (None: nobody was in
    any segment before, so every member entered); segments without a change are left out."""
    if previous is None:
        return list(changes_between(lambda _: _NO_IDS, (), current))
    return list(
        changes_between(
            lambda name: segment_ids(previous, name),
            (info.name for info in previous.segments()),
            current,
        )
    )


# --- spells --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentSpells:
    """One segment's membership spells, by customer id then start: who, from which step (a
    journal's seq) and until which (0 while still a member)."""

    customer_ids: np.ndarray
    entered: np.ndarray  # int64
    exited: np.ndarray  # int64, 0 = open

    def open_ids(self) -> np.ndarray:
        """The segment's members after the last step, ascending."""
        return self.customer_ids[self.exited == 0]


Step = tuple[int, np.ndarray, np.ndarray]  # (seq, entered ids, exited ids)


def segment_spells(steps: Sequence[Step]) -> SegmentSpells:
    """The spells one segment's steps make, `steps` in seq order.

    A customer's spell opens at an entry and closes at their next exit. An entry while already a
    member, or an exit while not one, changes nothing: a step computed from a stale view (an
    erasure that removed a customer's earlier steps meanwhile) cannot invent or break a spell.
    """
    if not steps:
        return SegmentSpells(_NO_IDS, _NO_SEQS, _NO_SEQS)
    parts: list[np.ndarray] = []
    part_seqs: list[np.ndarray] = []
    part_kinds: list[np.ndarray] = []
    for seq, entered, exited in steps:
        for part, entry in ((entered, True), (exited, False)):
            parts.append(part)
            part_seqs.append(np.full(part.size, seq, dtype=np.int64))
            part_kinds.append(np.full(part.size, entry))
    ids, seqs, enters = np.concatenate(parts), np.concatenate(part_seqs), np.concatenate(part_kinds)
    # By customer, each customer's events in step order (a stable sort; every step's ids are
    # sorted runs, which the sort merges quickly).
    order = np.argsort(ids, kind="stable")
    ids, seqs, enters = ids[order], seqs[order], enters[order]
    # A customer's state before an event is the kind of their event before it (an ignored event
    # repeats the state): keep only events that change it, starting from "not a member".
    same = np.zeros(ids.size, dtype=bool)
    same[1:] = ids[1:] == ids[:-1]
    was_member = np.zeros(ids.size, dtype=bool)
    was_member[1:] = enters[:-1]
    was_member &= same
    keep = enters != was_member
    ids, seqs, enters = ids[keep], seqs[keep], enters[keep]
    # Kept events alternate entry, exit per customer: an entry's exit is the next event, if theirs.
    starts = np.flatnonzero(enters)
    following = starts + 1
    closed = following < ids.size
    closed[closed] = ids[following[closed]] == ids[starts[closed]]
    exited = np.zeros(starts.size, dtype=np.int64)
    exited[closed] = seqs[following[closed]]
    return SegmentSpells(ids[starts], seqs[starts], exited)
