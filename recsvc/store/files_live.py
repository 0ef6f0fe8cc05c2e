"""The file store's live records (NPS answers, order lines): per kind, the append-only live file,
the archive and compaction (see the layout and the rules in `recsvc.store.files`)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Generic

import msgspec

from recsvc.domain.live import LiveKind, R, customer_mention, erased_records
from recsvc.errors import StoreUnavailable
from recsvc.store.durable import (
    Recheck,
    append_lines,
    fsync_dir,
    locked_for_append,
    write_lines,
    write_new,
)

log = logging.getLogger("recsvc.store")

_encoder = msgspec.json.Encoder()


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _split_lines(
    data: bytes, take: Callable[[R], bool], decoder: msgspec.json.Decoder[R]
) -> tuple[list[bytes], bytes, set[str]]:
    """A live file's complete lines of the records `take` wants (every copy, newline included),
    everything else byte for byte (lines it cannot read, a dead writer's unfinished last line),
    and the keys found."""
    moved: list[bytes] = []
    kept = bytearray()
    found: set[str] = set()
    start = 0
    while (end := data.find(b"\n", start)) >= 0:
        line = data[start : end + 1]
        start = end + 1
        try:
            record: R | None = decoder.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            record = None  # not a record: stays
        if record is not None and take(record):
            moved.append(line)
            found.add(record.key)
        else:
            kept += line
    kept += data[start:]
    return moved, bytes(kept), found


class _LiveIndex(Generic[R]):
    """What this process has read of a live file so far."""

    def __init__(self, inode: int = 0) -> None:
        self.inode = inode
        self.offset = 0  # just past the last complete line read
        self.last_line = b""  # the complete line ending at `offset`, newline included
        self.seen = (-1, -1)  # the file's size and mtime at the last read
        self.keys: set[str] = set()
        self.in_order: list[R] = []
        self.by_customer: dict[str, list[R]] = {}

    def add(self, record: R) -> None:
        key = record.key
        if key in self.keys:
            return  # two processes appended it at once without the lock: first occurrence wins
        self.keys.add(key)
        self.in_order.append(record)
        self.by_customer.setdefault(record.customer_id, []).append(record)


class FileLiveLog(Generic[R]):
    """One kind of live record in files beside the versions: `FileStore.answers`, `.orders`."""

    def __init__(self, kind: LiveKind[R], live_path: Path, archive_path: Path) -> None:
        self.kind: LiveKind[R] = kind
        self.live_path = live_path
        self.archive_path = archive_path
        self._decoder: msgspec.json.Decoder[R] = msgspec.json.Decoder(kind.type)
        self._lock = threading.Lock()  # guards the index and serialises this process's writers
        self._live: _LiveIndex[R] = _LiveIndex()
        self._live_dir_synced = False
        # How often `of_customer` looks at the file: writers in this process update the index
        # themselves, others' records show within `recheck.seconds`.
        self.recheck = Recheck()

    def add(self, records: list[R]) -> list[bool]:
        """Store records durably before returning; idempotent by key. Per record: True if it was
        new, False if its key was already live."""
        if not records:
            return []
        with self._lock:
            try:
                return self._append(records)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot store live {self.kind.noun}s in {self.live_path}: {exc}"
                ) from exc

    def _locked_live_file(self, *, create: bool) -> int | None:
        return locked_for_append(self.live_path, create=create)

    def _append(self, records: list[R]) -> list[bool]:
        self.live_path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._locked_live_file(create=True)
        assert fd is not None
        try:
            self._refresh()
            is_new: list[bool] = []
            payload = bytearray()
            taken: set[str] = set()
            for record in records:
                key = record.key
                new = key not in self._live.keys and key not in taken
                is_new.append(new)
                if new:
                    taken.add(key)
                    payload += _encoder.encode(record) + b"\n"
            if payload:
                write_lines(fd, bytes(payload))
                if not self._live_dir_synced:  # make the file's directory entry durable too
                    fsync_dir(self.live_path.parent)
                    self._live_dir_synced = True
                self._refresh()
            return is_new
        finally:
            os.close(fd)

    def _refresh(self) -> None:
        """Read the lines appended since the last look (by any process). Caller holds `_lock`."""
        try:
            # One stat per look (every request reads live answers); open and read only on change.
            stat = os.stat(self.live_path)
            if stat.st_ino == self._live.inode and (stat.st_size, stat.st_mtime_ns) == (
                self._live.seen
            ):
                return
            with self.live_path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                if not self._same_file(handle.fileno(), stat):
                    self._live = _LiveIndex(stat.st_ino)  # first look, or the file was replaced
                handle.seek(self._live.offset)
                data = handle.read()
                self._live.seen = (stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            # Nothing live (yet, or any more); an index already empty is kept, not rebuilt on
            # every request of a store that never took a record of this kind.
            if self._live.inode or self._live.in_order:
                self._live = _LiveIndex()
            return
        end = data.rfind(b"\n")
        if end < 0:
            return  # nothing new, or only an incomplete line still being written
        for line in data[:end].split(b"\n"):
            if not line.strip():
                continue
            try:
                self._live.add(self._decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("skipping an unreadable line in %s: %s", self.live_path, exc)
        self._live.offset += end + 1
        self._live.last_line = data[data.rfind(b"\n", 0, end) + 1 : end + 1]

    def _same_file(self, fd: int, stat: os.stat_result) -> bool:
        """Whether the open live file is the one the index was read from: same inode, not shorter,
        and the last line read still ends where the index stopped (a compaction's new file can
        get the inode number of the file it replaced some time before)."""
        index = self._live
        if stat.st_ino != index.inode or stat.st_size < index.offset:
            return False
        size = len(index.last_line)
        return os.pread(fd, size, index.offset - size) == index.last_line

    def of_customer(self, customer_id: str) -> list[R]:
        """A customer's live records, oldest first."""
        with self._lock:
            if self.recheck.due():
                self._refresh_or_unavailable()
                self.recheck.looked()
            return list(self._live.by_customer.get(customer_id, ()))

    def iter_live(self) -> Iterator[R]:
        """Every live record, in the order they were stored."""
        with self._lock:
            self._refresh_or_unavailable()
            return iter(list(self._live.in_order))

    def iter_archived(self) -> Iterator[R]:
        """The archive, line by line (it may be large), each key once (the first copy); torn or
        unreadable lines are skipped."""
        seen: set[str] = set()
        try:
            handle = self.archive_path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the {self.kind.noun} archive: {exc}") from exc
        with handle:
            for line in handle:
                if not line.endswith(b"\n") or not line.strip():
                    continue  # the tail of a compaction that died mid-write
                try:
                    record = self._decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.warning("skipping an unreadable line in %s: %s", self.archive_path, exc)
                    continue
                if record.key not in seen:
                    seen.add(record.key)
                    yield record

    def compact(self, records: Sequence[R]) -> int:
        """Move these records (by key) from live to the archive: durable in the archive first,
        then out of live. Keys not live (any more) are skipped. Returns how many keys left live."""
        wanted = {r.key for r in records}
        if not wanted:
            return 0
        with self._lock:
            try:
                return self._compact(wanted)
            except OSError as exc:
                raise StoreUnavailable(f"cannot compact the live {self.kind.noun}s: {exc}") from exc

    def _compact(self, wanted: set[str]) -> int:
        fd = self._locked_live_file(create=False)
        if fd is None:
            return 0
        try:  # we hold the live file's lock until the end: no answer is appended meanwhile
            data = _read_all(fd)
            moved, kept, moved_ids = _split_lines(data, lambda r: r.key in wanted, self._decoder)
            if not moved:
                return 0
            self._append_archive(moved)  # (1) durable in the archive ...
            os.replace(self._write_live_copy(kept), self.live_path)  # (2) ... then out of live
            fsync_dir(self.live_path.parent)
        finally:
            os.close(fd)
        self._refresh()
        return len(moved_ids)

    def _append_archive(self, lines: list[bytes]) -> None:
        """Append complete lines to the archive and fsync it (its own lock, a fresh line)."""
        append_lines(self.archive_path, b"".join(lines))

    def _write_live_copy(self, data: bytes) -> Path:
        """The live file's new content in a temporary file beside it, fsync'd; its path."""
        tmp = self.live_path.with_name(f".{self.live_path.name}.compacting")
        write_new(tmp, data)
        return tmp

    def erase(self, customer_id: str, until: dt.datetime | None = None) -> int:
        """Remove the customer's records (those that occurred up to `until`, if given) from the
        live file and the archive, each rewritten without their lines under its lock, fsync'd and
        renamed over; how many keys went."""
        take = erased_records(customer_id, until)
        with self._lock:
            try:
                removed = self._erase_live(customer_id, take)
                removed |= self._erase_archive(customer_id, take)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot erase live {self.kind.noun}s of a customer: {exc}"
                ) from exc
        return len(removed)

    def _erase_live(self, customer_id: str, take: Callable[[R], bool]) -> set[str]:
        fd = self._locked_live_file(create=False)
        if fd is None:
            return set()
        try:
            data = _read_all(fd)
            if customer_mention(customer_id) not in data:
                return set()
            moved, kept, keys = _split_lines(data, take, self._decoder)
            if moved:
                os.replace(self._write_live_copy(kept), self.live_path)
                fsync_dir(self.live_path.parent)
        finally:
            os.close(fd)
        self._refresh()
        return keys

    def _erase_archive(self, customer_id: str, take: Callable[[R], bool]) -> set[str]:
        """The archive may be large: streamed line by line into a copy, renamed over only when it
        held the customer."""
        fd = locked_for_append(self.archive_path, create=False)
        if fd is None:
            return set()
        keys: set[str] = set()
        tmp = self.archive_path.with_name(f".{self.archive_path.name}.erasing")
        try:
            mention = customer_mention(customer_id)
            with open(self.archive_path, "rb") as source, open(tmp, "wb") as copy:
                for line in source:
                    if mention in line:
                        try:
                            record = self._decoder.decode(line)
                        except (msgspec.DecodeError, msgspec.ValidationError):
                            record = None
                        if record is not None and take(record):
                            keys.add(record.key)
                            continue
                    copy.write(line)
                copy.flush()
                os.fsync(copy.fileno())
            if keys:
                os.replace(tmp, self.archive_path)
                fsync_dir(self.archive_path.parent)
        finally:
            tmp.unlink(missing_ok=True)
            os.close(fd)
        return keys

    def _refresh_or_unavailable(self) -> None:
        try:
            self._refresh()
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot read live {self.kind.noun}s from {self.live_path}: {exc}"
            ) from exc
