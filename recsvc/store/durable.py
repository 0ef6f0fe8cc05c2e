"""Durable file operations both stores and the training job's run directories use: an exclusive
lock that dies with its process, syncing a directory so a rename or a new file survives a crash,
and appending complete lines to a shared file (the file store's live logs, archives and erasure
log)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) for the block; other processes
    wait. The lock goes with the process, so a killed holder never leaves it taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_new(path: Path, data: bytes) -> None:
    """Write `path` whole (created or truncated) and fsync it; the caller renames it into place."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` all at once, durably: a temporary file beside it (`.NAME.tmp`),
    fsync'd, renamed over it, the directory synced. Readers see the old content or the new."""
    tmp = path.with_name(f".{path.name}.tmp")
    write_new(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def locked_for_append(path: Path, *, create: bool) -> int | None:
    """`path` opened for appending, its flock held (released by closing the descriptor); None when
    it does not exist and `create` is false. A compaction or an erasure renames a new file over the
    path while holding the lock: whoever waited for the lock on the old file must not write to it,
    so it opens the path again."""
    flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            if create:
                raise
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked, current = os.fstat(fd), os.stat(path)
            if (locked.st_dev, locked.st_ino) == (current.st_dev, current.st_ino):
                return fd
        except FileNotFoundError:
            pass  # gone from the path: open it again
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def write_lines(fd: int, lines: bytes) -> None:
    """Append complete lines to a file whose lock the caller holds, and fsync it. A writer that
    died mid-line left a fragment: it is ended first, so ours start on a fresh line (readers skip
    the fragment)."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        lines = b"\n" + lines
    write_all(fd, lines)
    os.fsync(fd)


def append_lines(path: Path, lines: bytes) -> None:
    """Append complete lines to `path` under its lock, durably (the file and its directory entry)."""
    fd = locked_for_append(path, create=True)
    assert fd is not None
    try:
        write_lines(fd, lines)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


class Recheck:
    """How often a reader looks at a file another process appends to: on every call by default;
    every `seconds` once a serving worker asks for it (`FileStore.follow_live`). The reader's own
    writes call `expire`, so it sees them at once."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._until = 0.0

    def every(self, seconds: float) -> None:
        self.seconds = seconds
        self._until = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._until

    def looked(self) -> None:
        """The file was just looked at: the next look is due `seconds` from now."""
        self._until = time.monotonic() + self.seconds

    def expire(self) -> None:
        self._until = 0.0
