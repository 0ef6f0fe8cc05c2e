"""The membership journal of both stores (`Store.memberships`): an append-only log of activations,
each with who entered and who left each segment, from which the segment membership history (one
row per spell a customer spent in a segment, `spells`) is replayed.

Every activation of a version appends one entry: `seq` (1, 2, ...), the version, the one active
before, `activated_at` (UTC with microseconds and a `Z`, strictly increasing, so a spell's start is
its key even when two activations fall in one second), `reason` (`publish`: the version's first
activation; `rollback`: back to an older version; `activate`: to a newer one active before) and its
changes (`SegmentChange`: per segment, the customer ids that entered and exited, ascending).

The changes are worked out against the journal's own replay (each segment's members after its
last entry), not against the previous version's files: a version pruned since does not matter,
a customer erased from the journal does not come back through an old version's files, and after
every append the open spells are the active version's segments exactly, without the customers
that version masks (erased after its data, `recsvc.version.erased`).

`sync` appends the active version's entry unless the journal already ends with it. The store calls
it right after every pointer switch (a publish activates through `activate`), and every read calls
it first (`reconcile`): a process killed between the switch and the append is repaired by the next
activation or read. Concurrent syncs append once: the file store holds an `flock`, Redis WATCHes
the entry list. A sync reads the pointer itself, so two activations racing record the one that won.

File store, under `memberships/`: `activations.ndjson` (one JSON entry per line, appended under the
lock and fsync'd) and `part-<seq>.zlib` (the entry's changes, zlib-compressed JSON lines, one
`SegmentChange` per line), each part written (temporary file, fsync, rename) before its entry, so a
crash in between leaves a part no entry names, overwritten by the next sync. Redis:
`{prefix}:{memberships}:log` (list of entries) and `{prefix}:{memberships}:part:<seq>` (the same
compressed part), written by one MULTI (one hash tag: legal on a cluster).

Size: a part holds every id that entered or left at its activation, so the first activation holds
every membership: 1M customers in eight segments (2.3M memberships) is ~28 MB of JSON, ~6 MB
stored, written in about a second; a nightly run's part holds only the night's changes. A replay reads one segment at a time (its ids
as numpy arrays), so memory follows the largest segment's history, not the whole journal.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import msgspec
import numpy as np
import redis

from recsvc.domain import times
from recsvc.domain.privacy import Suppression
from recsvc.errors import RecsvcError, StoreUnavailable
from recsvc.store.durable import append_lines, exclusive_lock, replace_durably
from recsvc.store.redis_live import as_bytes
from recsvc.version.artifacts import read_manifest
from recsvc.version.erased import ErasedRows, erasures_as_of
from recsvc.version.memberships import (
    SegmentChange,
    SegmentSpells,
    Step,
    changes_between,
    segment_spells,
)
from recsvc.version.profiles import Profiles

__all__ = ["Activation", "ActivationInfo", "SegmentChange", "Spell"]

log = logging.getLogger("recsvc.store")

MEMBERSHIPS_DIR = Path("memberships")
PUBLISH = "publish"
ROLLBACK = "rollback"
ACTIVATE = "activate"
_SPELL_CHUNK = 10_000
_REDIS_ATTEMPTS = 20  # a sync or part rewrite retried this often when another one got in first
_MICROSECOND = dt.timedelta(microseconds=1)
_KEPT_BYTES = 64 << 20  # decompressed parts a replay keeps between segments


class ActivationInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One activation in the journal, without its changes."""

    seq: int
    version: str
    previous: str | None  # the version active before (as the journal saw it); None at first
    activated_at: str  # UTC, microseconds, Z; strictly increasing with seq
    reason: str  # publish, rollback, activate


class Activation(ActivationInfo, frozen=True, kw_only=True):
    """One activation and who entered and left each segment (segments without a change left out)."""

    changes: list[SegmentChange] = []


class _Entry(ActivationInfo, frozen=True, kw_only=True):
    """An entry as stored: which segments its part holds, so a replay reads only those parts."""

    segments: list[str] = []


class Spell(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One stretch of time a customer spent in a segment: from the activation that put them in to
    the one that took them out (None while they are still a member)."""

    segment: str
    customer_id: str
    entered_at: str
    exited_at: str | None
    entered_version: str
    exited_version: str | None


_encoder = msgspec.json.Encoder()
_entry_decoder = msgspec.json.Decoder(_Entry)
_change_decoder = msgspec.json.Decoder(SegmentChange)


def _decode_entries(lines: Iterable[bytes]) -> list[_Entry]:
    entries = []
    for line in lines:
        if not line.strip():
            continue
        try:
            entries.append(_entry_decoder.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # a writer died mid-line: that entry was never appended
    return entries


def encode_part(changes: Iterable[SegmentChange]) -> tuple[bytes, list[str]]:
    """A part (zlib-compressed JSON lines) and the segments it holds; each change is encoded as
    it comes, so only one segment's ids are Python strings at a time."""
    compressor = zlib.compressobj()
    pieces, segments = [], []
    for change in changes:
        pieces.append(compressor.compress(_encoder.encode(change) + b"\n"))
        segments.append(change.segment)
    pieces.append(compressor.flush())
    return b"".join(pieces), segments


def _segment_prefix(name: str) -> bytes:
    """How a part's line of segment `name` starts (a Struct encodes its fields in order)."""
    return b'{"segment":' + _encoder.encode(name) + b","


def _ids(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="U1")


def _without(part: bytes, customer_id: str) -> tuple[bytes, int] | None:
    """A compressed part without the customer's ids and how many spells they started there (its
    entered lists holding them); None when the part does not name them."""
    data = zlib.decompress(part)
    mention = _encoder.encode(customer_id)
    if mention not in data:
        return None
    lines, started, found = [], 0, False
    for line in data.splitlines():
        if mention in line:
            change = _change_decoder.decode(line)
            entered, exited = list(change.entered), list(change.exited)
            for ids in (entered, exited):
                at = bisect.bisect_left(ids, customer_id)  # the lists are sorted
                if at < len(ids) and ids[at] == customer_id:
                    del ids[at]
                    found = True
                    started += ids is entered
            line = _encoder.encode(SegmentChange(change.segment, entered, exited))
        lines.append(line + b"\n")
    return (zlib.compress(b"".join(lines)), started) if found else None


class Journal:
    """What both backends share: sync, the reads and the replay. A backend stores the entries and
    the parts (`_entries`, `_last_entry`, `_parts`, `_append_synced`, `erase`)."""

    def __init__(
        self,
        active_version: Callable[[], str | None],
        version_path: Callable[[str], Path],
        suppression: Callable[[], Suppression],
    ) -> None:
        self._active_version = active_version
        self._version_path = version_path
        self._suppression = suppression

    # --- what a backend provides ---------------------------------------------------------------

    def _entries(self) -> list[_Entry]:
        raise NotImplementedError

    def _last_entry(self) -> _Entry | None:
        raise NotImplementedError

    def _parts(self, seqs: Sequence[int]) -> dict[int, bytes]:
        """The compressed parts of these entries (a part listed but missing is left out)."""
        raise NotImplementedError

    def _append_synced(self) -> ActivationInfo | None:
        """Under the backend's guard: read the entries and the pointer again and, unless the
        journal ends with the active version, append its entry (`_next_entry`)."""
        raise NotImplementedError

    def erase(self, customer_id: str) -> int:
        """Remove the customer from every part (a privacy erasure); how many spells went."""
        raise NotImplementedError

    # --- writing -------------------------------------------------------------------------------

    def _is_current(self, last: _Entry | None, active: str | None) -> bool:
        return active is None or (last is not None and last.version == active)

    def sync(self) -> ActivationInfo | None:
        """Append the active version's entry unless the journal ends with it; the entry appended,
        or None. Raises what reading the version raises (ArtifactError, NotFoundError,
        StoreUnavailable)."""
        if self._is_current(self._last_entry(), self._active_version()):
            return None
        return self._append_synced()

    def reconcile(self) -> None:
        """`sync`, a failure logged rather than raised: after a pointer switch (which stands) and
        before a read (which serves what the journal holds); the next activation or read repairs."""
        try:
            self.sync()
        except (RecsvcError, OSError) as exc:
            log.error("the membership journal could not record the active version: %s", exc)

    def _next_entry(self, entries: list[_Entry], active: str) -> tuple[_Entry, bytes]:
        """The entry (and its compressed part) that brings the journal to the active version."""
        path = self._version_path(active)
        current = Profiles.open(path)
        as_of = erasures_as_of(read_manifest(path).notes)
        hidden = ErasedRows(current.customer_ids, as_of).rows(self._suppression())
        lines = _part_lines(self._parts([e.seq for e in entries]))
        part, segments = encode_part(
            changes_between(
                lambda name: _segment_spells(entries, lines, name).open_ids(),
                _segment_names(entries),
                current,
                hidden,
            )
        )
        last = entries[-1] if entries else None
        moment = times.now()
        if last is not None:  # strictly after the last one, whatever the clock says
            moment = max(moment, times.parse_iso(last.activated_at) + _MICROSECOND)
        previous = last.version if last is not None else None
        if active not in {e.version for e in entries}:
            reason = PUBLISH
        elif previous is not None and active < previous:  # versions sort by their run's time
            reason = ROLLBACK
        else:
            reason = ACTIVATE
        entry = _Entry(
            seq=last.seq + 1 if last is not None else 1,
            version=active,
            previous=previous,
            activated_at=times.iso_micros(moment),
            reason=reason,
            segments=segments,
        )
        return entry, part

    # --- reading -------------------------------------------------------------------------------

    def latest(self) -> ActivationInfo | None:
        """The last activation (the active version's, once reconciled), without its changes."""
        self.reconcile()
        last = self._last_entry()
        if last is None:
            return None
        return ActivationInfo(
            seq=last.seq,
            version=last.version,
            previous=last.previous,
            activated_at=last.activated_at,
            reason=last.reason,
        )

    def last_seq(self) -> int:
        latest = self.latest()
        return latest.seq if latest is not None else 0

    def activations(self, after_seq: int = 0) -> Iterator[Activation]:
        """The activations after `after_seq`, oldest first, each with its changes."""
        self.reconcile()
        entries = [e for e in self._entries() if e.seq > after_seq]
        return self._with_changes(entries)

    def _with_changes(self, entries: list[_Entry]) -> Iterator[Activation]:
        for entry in entries:
            part = self._parts([entry.seq]).get(entry.seq)
            lines = zlib.decompress(part).splitlines() if part is not None else []
            yield Activation(
                seq=entry.seq,
                version=entry.version,
                previous=entry.previous,
                activated_at=entry.activated_at,
                reason=entry.reason,
                changes=[_change_decoder.decode(line) for line in lines if line],
            )

    def spells(
        self,
        since: dt.datetime | None = None,
        *,
        customer_id: str | None = None,
        through: int | None = None,
    ) -> Iterator[Spell]:
        """The membership history: every spell, segment by segment (in the order the journal
        first named them), each segment's by customer id and start. `since`: only spells that
        started or ended at or after it; `customer_id`: only theirs; `through`: as of that seq.
        The entries are read now; the parts as the iterator goes."""
        self.reconcile()
        entries = [e for e in self._entries() if through is None or e.seq <= through]
        return self._spells(entries, since, customer_id)

    def _spells(
        self, entries: list[_Entry], since: dt.datetime | None, customer_id: str | None
    ) -> Iterator[Spell]:
        if not entries:
            return
        seqs = np.array([e.seq for e in entries], dtype=np.int64)
        # Indexed by an entry's position; -1 (an open spell) is the None at the end.
        stamps: list[str | None] = [e.activated_at for e in entries] + [None]
        versions: list[str | None] = [e.version for e in entries] + [None]
        first = 0  # the first seq a spell must start or end at to be shown
        if since is not None:
            late = [e.seq for e in entries if times.parse_iso(e.activated_at) >= since]
            first = late[0] if late else int(seqs[-1]) + 1
        parts = self._parts([e.seq for e in entries])
        lines = _part_lines(parts)
        if customer_id is not None:  # only the parts naming the customer, kept as lines
            mention = _encoder.encode(customer_id)
            theirs = {}
            for seq, part in parts.items():
                if mention in (data := zlib.decompress(part)):
                    theirs[seq] = data.splitlines()
            lines = theirs.get
        for name in _segment_names(entries):
            spells = _segment_spells(entries, lines, name, customer_id)
            if since is not None:
                shown = (spells.entered >= first) | (spells.exited >= first)
                ids, entered, exited = (
                    spells.customer_ids[shown],
                    spells.entered[shown],
                    spells.exited[shown],
                )
            else:
                ids, entered, exited = spells.customer_ids, spells.entered, spells.exited
            start_at = np.searchsorted(seqs, entered)
            end_at = np.where(exited > 0, np.searchsorted(seqs, exited), -1)
            for start in range(0, ids.size, _SPELL_CHUNK):
                window = slice(start, start + _SPELL_CHUNK)
                for customer, began, ended in zip(
                    ids[window].tolist(),
                    start_at[window].tolist(),
                    end_at[window].tolist(),
                    strict=True,
                ):
                    yield Spell(
                        segment=name,
                        customer_id=customer,
                        entered_at=stamps[began] or "",
                        exited_at=stamps[ended],
                        entered_version=versions[began] or "",
                        exited_version=versions[ended],
                    )


PartLines = Callable[[int], list[bytes] | None]  # an entry's part as JSON lines, None if missing


def _part_lines(parts: dict[int, bytes]) -> PartLines:
    """Each part's lines, decompressed when first asked for. A replay asks once per segment: the
    decompressed parts are kept up to `_KEPT_BYTES` (a shop's first, largest part among them),
    any beyond decompressed again each time."""
    kept: dict[int, list[bytes]] = {}
    room = [_KEPT_BYTES]

    def lines(seq: int) -> list[bytes] | None:
        if seq in kept:
            return kept[seq]
        part = parts.get(seq)
        if part is None:
            return None
        data = zlib.decompress(part)
        split = data.splitlines()
        if len(data) <= room[0]:
            kept[seq] = split
            room[0] -= len(data)
        return split

    return lines


def _segment_spells(
    entries: list[_Entry], lines_of: PartLines, name: str, customer_id: str | None = None
) -> SegmentSpells:
    """One segment's spells replayed from the parts (only the customer's, if given)."""
    prefix = _segment_prefix(name)
    mention = _encoder.encode(customer_id) if customer_id is not None else b""
    steps: list[Step] = []
    for entry in entries:
        lines = lines_of(entry.seq) if name in entry.segments else None
        line = next((x for x in lines or () if x.startswith(prefix)), None)
        if line is None or mention not in line:
            continue
        change = _change_decoder.decode(line)
        if customer_id is None:
            steps.append((entry.seq, _ids(change.entered), _ids(change.exited)))
        else:
            steps.append(
                (
                    entry.seq,
                    _ids([customer_id] if customer_id in change.entered else []),
                    _ids([customer_id] if customer_id in change.exited else []),
                )
            )
    return segment_spells(steps)


def _segment_names(entries: Iterable[_Entry]) -> list[str]:
    """Every segment the entries' parts hold, in the order they first appear."""
    return list(dict.fromkeys(name for entry in entries for name in entry.segments))


# --- the file store --------------------------------------------------------------------------------


class FileMembershipJournal(Journal):
    """`memberships/` under the file store's root (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        active_version: Callable[[], str | None],
        version_path: Callable[[str], Path],
        suppression: Callable[[], Suppression],
    ) -> None:
        super().__init__(active_version, version_path, suppression)
        self.directory = directory
        self.entries_path = directory / "activations.ndjson"
        self._lock_path = directory / ".lock"

    def _part_path(self, seq: int) -> Path:
        return self.directory / f"part-{seq:08d}.zlib"

    def _entries(self) -> list[_Entry]:
        try:
            return _decode_entries(self.entries_path.read_bytes().splitlines())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the membership journal: {exc}") from exc

    def _last_entry(self) -> _Entry | None:
        entries = self._entries()
        return entries[-1] if entries else None

    def _parts(self, seqs: Sequence[int]) -> dict[int, bytes]:
        parts = {}
        for seq in seqs:
            try:
                parts[seq] = self._part_path(seq).read_bytes()
            except FileNotFoundError:
                log.warning("membership journal part %d is missing", seq)
            except OSError as exc:
                raise StoreUnavailable(f"cannot read the membership journal: {exc}") from exc
        return parts

    def _locked(self) -> AbstractContextManager[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        return exclusive_lock(self._lock_path)

    def _write_part(self, seq: int, data: bytes) -> None:
        """A part's new content, durably."""
        replace_durably(self._part_path(seq), data)

    def _append_synced(self) -> ActivationInfo | None:
        try:
            with self._locked():
                entries = self._entries()
                active = self._active_version()
                if active is None or self._is_current(entries[-1] if entries else None, active):
                    return None
                entry, part = self._next_entry(entries, active)
                self._write_part(entry.seq, part)  # (1) the part, durable ...
                append_lines(self.entries_path, _encoder.encode(entry) + b"\n")  # (2) ... its entry
                return entry
        except OSError as exc:
            raise StoreUnavailable(f"cannot write the membership journal: {exc}") from exc

    def erase(self, customer_id: str) -> int:
        started = 0
        try:
            with self._locked():  # no sync appends meanwhile
                for entry in self._entries():
                    part = self._parts([entry.seq]).get(entry.seq)
                    if part is None or (rewritten := _without(part, customer_id)) is None:
                        continue
                    self._write_part(entry.seq, rewritten[0])
                    started += rewritten[1]
        except OSError as exc:
            raise StoreUnavailable(f"cannot erase from the membership journal: {exc}") from exc
        return started


# --- Redis -----------------------------------------------------------------------------------------


class RedisMembershipJournal(Journal):
    """`{prefix}:{memberships}:log` and `...:part:<seq>` (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        reachable: Callable[[str], AbstractContextManager[None]],
        active_version: Callable[[], str | None],
        version_path: Callable[[str], Path],
        suppression: Callable[[], Suppression],
    ) -> None:
        super().__init__(active_version, version_path, suppression)
        self._client = client
        self._reachable = reachable
        self.log_key = f"{prefix}:{{memberships}}:log"
        self._part_prefix = f"{prefix}:{{memberships}}:part:"

    def _part_key(self, seq: int) -> str:
        return f"{self._part_prefix}{seq}"

    def _entries(self) -> list[_Entry]:
        with self._reachable("reading the membership journal"):
            raw = self._client.lrange(self.log_key, 0, -1)
        return _decode_entries(as_bytes(item) for item in raw)

    def _last_entry(self) -> _Entry | None:
        with self._reachable("reading the membership journal"):
            raw = self._client.lindex(self.log_key, -1)
        entries = _decode_entries([as_bytes(raw)] if raw is not None else [])
        return entries[-1] if entries else None

    def _parts(self, seqs: Sequence[int]) -> dict[int, bytes]:
        parts = {}
        for start in range(0, len(seqs), 64):
            batch = list(seqs[start : start + 64])
            with self._reachable("reading the membership journal"):
                blobs = self._client.mget([self._part_key(seq) for seq in batch])
            for seq, blob in zip(batch, blobs, strict=True):
                if blob is None:
                    log.warning("membership journal part %d is listed but missing", seq)
                else:
                    parts[seq] = as_bytes(blob)
        return parts

    def _append_synced(self) -> ActivationInfo | None:
        # transaction=True: a cluster client's pipeline is not a transaction unless asked, and
        # only a transaction's pipeline may WATCH (all keys here share the {memberships} tag).
        with (
            self._reachable("writing the membership journal"),
            self._client.pipeline(transaction=True) as pipe,
        ):
            for _ in range(_REDIS_ATTEMPTS):
                try:
                    pipe.watch(self.log_key)  # another sync appending meanwhile fails our EXEC
                    entries = _decode_entries(
                        as_bytes(item) for item in pipe.lrange(self.log_key, 0, -1)
                    )
                    active = self._active_version()
                    if active is None or self._is_current(entries[-1] if entries else None, active):
                        pipe.unwatch()
                        return None
                    entry, part = self._next_entry(entries, active)
                    pipe.multi()
                    pipe.set(self._part_key(entry.seq), part)
                    pipe.rpush(self.log_key, _encoder.encode(entry))
                    pipe.execute()
                    return entry
                except redis.WatchError:
                    continue
        raise StoreUnavailable("the membership journal kept changing while a sync appended to it")

    def erase(self, customer_id: str) -> int:
        started, done = 0, 0
        while True:  # parts appended while we erased are looked at too
            seqs = [e.seq for e in self._entries()][done:]
            if not seqs:
                return started
            for seq in seqs:
                started += self._erase_part(seq, customer_id)
            done += len(seqs)

    def _erase_part(self, seq: int, customer_id: str) -> int:
        key = self._part_key(seq)
        with (
            self._reachable("erasing from the membership journal"),
            self._client.pipeline(transaction=True) as pipe,
        ):
            for _ in range(_REDIS_ATTEMPTS):
                try:
                    pipe.watch(key)  # another erasure rewriting this part meanwhile: again
                    blob = pipe.get(key)
                    rewritten = _without(as_bytes(blob), customer_id) if blob is not None else None
                    if rewritten is None:
                        pipe.unwatch()
                        return 0
                    pipe.multi()
                    pipe.set(key, rewritten[0])
                    pipe.execute()
                    return rewritten[1]
                except redis.WatchError:
                    continue
        raise StoreUnavailable(f"membership journal part {seq} kept changing while erasing")
