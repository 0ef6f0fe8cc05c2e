"""The embedded store: model versions as directories on local disk, live NPS responses in an
append-only file beside them. No server; several worker processes of one machine share it.

Layout under the root:

- `versions/<version>/`: an artifact directory; `ACTIVE`: the active version's name. Publishing
  copies the artifact into `versions/.incoming-<version>`, checks it against its manifest, renames
  it into place, then replaces `ACTIVE` with an fsync'd temporary file renamed over it: readers see
  the old version or the new one, never a half-written one, and a crash at any point leaves the old
  one active. Versions are ordered by name (the training job names them by run time).
- `live/nps_responses.ndjson`: one JSON `LiveResponse` per line. Writers take an exclusive
  `flock` on the file, check that the file they locked is still the one at the path (a
  compaction may have replaced it while they waited), read what other processes appended since
  they last looked, append only response ids not yet stored, and fsync before returning, so
  idempotency is exact across processes. Readers keep an index of the file and read only the
  bytes appended since; an incomplete last line (a write in progress) is left for later, and the
  first occurrence of a response id wins should the file ever hold one twice. A reader takes the
  file for a new one when its inode changed, it shrank, or the last line the reader indexed is no
  longer where it was (a new file may get the inode number of one that was replaced).
- `live/archive.ndjson`: the responses compacted out of the live file, same format, appended only
  (under its own `flock`, fsync'd, starting on a fresh line if a compaction died mid-line) and
  read only by the training run.

Compaction (`compact_live`, called by the training run for the responses the active version
holds) holds the live file's lock throughout, so no answer is appended meanwhile:
(1) the lines of the given response ids are appended to the archive and fsync'd; (2) the rest of
the live file, byte for byte (including any line it cannot read), is written to a temporary file,
fsync'd and renamed over the live file, and the directory is fsync'd. Killed before (2) renames,
the answers are in both files: readers keep the first copy and the next compaction moves them
again; a leftover temporary file is overwritten by the next compaction.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import msgspec

from recsvc.errors import ArtifactError, ConfigError, NotFoundError, StoreUnavailable, shown
from recsvc.store.base import LiveResponse, VersionInfo
from recsvc.store.locks import DEFAULT_LOCK_TTL_SECONDS, FileTrainingLock, TrainingLock
from recsvc.store.runs import RUNS_DIR, FileRunLog, RunLog
from recsvc.version.artifacts import LoadedModel, Manifest, load_model, read_manifest
from recsvc.version.opened import ActiveModel, open_checked

ACTIVE = "ACTIVE"
LOCK_FILE = ".train.lock"
LIVE_RESPONSES = Path("live") / "nps_responses.ndjson"
LIVE_ARCHIVE = Path("live") / "archive.ndjson"

log = logging.getLogger("recsvc.store")

_response_encoder = msgspec.json.Encoder()
_response_decoder = msgspec.json.Decoder(LiveResponse)


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _split_live(data: bytes, wanted: set[str]) -> tuple[list[bytes], bytes, set[str]]:
    """The live file's complete lines of the wanted response ids (every copy, newline included),
    everything else byte for byte (lines it cannot read, a dead writer's unfinished last line),
    and the ids found."""
    moved: list[bytes] = []
    kept = bytearray()
    found: set[str] = set()
    start = 0
    while (end := data.find(b"\n", start)) >= 0:
        line = data[start : end + 1]
        start = end + 1
        try:
            response_id = _response_decoder.decode(line).response_id
        except (msgspec.DecodeError, msgspec.ValidationError):
            response_id = ""  # not a response: stays
        if response_id and response_id in wanted:
            moved.append(line)
            found.add(response_id)
        else:
            kept += line
    kept += data[start:]
    return moved, bytes(kept), found


class _LiveIndex:
    """What this process has read of the live-responses file so far."""

    def __init__(self, inode: int = 0) -> None:
        self.inode = inode
        self.offset = 0  # just past the last complete line read
        self.last_line = b""  # the complete line ending at `offset`, newline included
        self.seen = (-1, -1)  # the file's size and mtime at the last read
        self.ids: set[str] = set()
        self.in_order: list[LiveResponse] = []
        self.by_customer: dict[str, list[LiveResponse]] = {}

    def add(self, response: LiveResponse) -> None:
        if response.response_id in self.ids:
            return  # two processes appended it at once without the lock: first occurrence wins
        self.ids.add(response.response_id)
        self.in_order.append(response)
        self.by_customer.setdefault(response.customer_id, []).append(response)


class FileStore:
    def __init__(self, root: Path, *, url: str | None = None) -> None:
        self.root = root
        self.url = url or f"file://{root}"
        self.versions_dir = root / "versions"
        self.live_path = root / LIVE_RESPONSES
        self.archive_path = root / LIVE_ARCHIVE
        self._lock = threading.Lock()  # guards the index and serialises this process's writers
        self._live = _LiveIndex()
        self._live_dir_synced = False

    @classmethod
    def from_url(cls, url: str) -> FileStore:
        path = url.removeprefix("file://")
        if not path:
            raise ConfigError(f"store URL {url!r} has no path")
        return cls(Path(path), url=url)

    # --- model versions ---------------------------------------------------------------------
    def active_version(self) -> str | None:
        try:
            name = (self.root / ACTIVE).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def version_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith(".") or "\0" in version:
            raise NotFoundError(f"no model version {shown(version)}")
        path = self.versions_dir / version
        if not (path / "manifest.json").is_file():
            raise NotFoundError(f"no model version {shown(version)} in this store")
        return path

    def version_path(self, version: str) -> Path:
        """A stored version's files on local disk."""
        return self.version_dir(version)

    def manifest(self, version: str) -> Manifest:
        return read_manifest(self.version_dir(version))

    def list_versions(self) -> list[VersionInfo]:
        active = self.active_version()
        infos = []
        if self.versions_dir.is_dir():
            for path in sorted(self.versions_dir.iterdir()):
                if path.name.startswith(".") or not (path / "manifest.json").is_file():
                    continue
                try:
                    manifest = read_manifest(path)
                except ArtifactError:
                    continue
                ndcg = manifest.metrics.get("ndcg")
                infos.append(
                    VersionInfo(
                        manifest.version, manifest.created_at, manifest.version == active, ndcg
                    )
                )
        return infos

    def open(self, version: str) -> ActiveModel:
        """The version opened as a worker serves it, every file checked against the manifest."""
        return open_checked(self.version_dir(version))

    def load_active(self) -> LoadedModel | None:
        for _ in range(3):
            version = self.active_version()
            if version is None:
                return None
            try:
                return load_model(self.version_dir(version), verify_hashes=True)
            except (ArtifactError, NotFoundError):
                # A publish switched the pointer and pruned this version while we were loading it.
                if self.active_version() == version:
                    raise
        raise NotFoundError("the active version of this store keeps changing; try again")

    def publish(self, artifact: Path, *, activate: bool = True, keep: int = 3) -> str:
        """Copy an artifact directory in as a new version, then (optionally) activate it."""
        manifest = read_manifest(artifact)
        final = self.versions_dir / manifest.version
        if not final.exists():
            incoming = self._upload(artifact)
            os.replace(incoming, final)
            fsync_dir(self.versions_dir)
        if activate:
            self.activate(manifest.version)
        self.prune(keep)
        return manifest.version

    def _upload(self, artifact: Path) -> Path:
        """The first step of a publish: a checked, fsync'd copy that no reader sees yet."""
        manifest = read_manifest(artifact)
        if "/" in manifest.version or manifest.version.startswith("."):
            raise ArtifactError(
                f"{artifact}: version name {manifest.version!r} is not a plain name"
            )
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        incoming = self.versions_dir / f".incoming-{manifest.version}"
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.copytree(artifact, incoming)
        load_model(incoming, verify_hashes=True)  # a corrupt copy must never become a version
        for path in incoming.iterdir():
            if path.is_file():
                with path.open("rb") as handle:
                    os.fsync(handle.fileno())
        fsync_dir(incoming)
        return incoming

    def activate(self, version: str) -> None:
        # Refuse to point at a version that would not serve: the next worker to start would fail.
        self.open(version)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{ACTIVE}.tmp"
        with tmp.open("w") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / ACTIVE)
        fsync_dir(self.root)

    def prune(self, keep: int) -> list[str]:
        """Remove the oldest versions beyond `keep`, never the active one; also leftover partial copies."""
        if not self.versions_dir.is_dir():
            return []
        for leftover in self.versions_dir.glob(".incoming-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        active = self.active_version()
        versions = sorted(p.name for p in self.versions_dir.iterdir() if not p.name.startswith("."))
        removable = [v for v in versions[: max(len(versions) - keep, 0)] if v != active]
        for version in removable:
            shutil.rmtree(self.versions_dir / version, ignore_errors=True)
        return removable

    # --- live NPS intake --------------------------------------------------------------------
    def add_responses(self, responses: list[LiveResponse]) -> list[bool]:
        if not responses:
            return []
        with self._lock:
            try:
                return self._append(responses)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot store live responses in {self.live_path}: {exc}"
                ) from exc

    def _locked_live_file(self, *, create: bool) -> int | None:
        """The live file opened for appending, its flock held (released by closing the
        descriptor); None when it does not exist and `create` is false. A compaction renames a
        new file over the path while holding the lock: whoever waited for the lock on the old
        file must not write to it, so it opens the path again."""
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
        while True:
            try:
                fd = os.open(self.live_path, flags, 0o644)
            except FileNotFoundError:
                if create:
                    raise
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                locked, current = os.fstat(fd), os.stat(self.live_path)
                if (locked.st_dev, locked.st_ino) == (current.st_dev, current.st_ino):
                    return fd
            except FileNotFoundError:
                pass  # gone from the path: open it again
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _append(self, responses: list[LiveResponse]) -> list[bool]:
        self.live_path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._locked_live_file(create=True)
        assert fd is not None
        try:
            self._refresh()
            is_new: list[bool] = []
            payload = bytearray()
            taken: set[str] = set()
            for response in responses:
                new = (
                    response.response_id not in self._live.ids and response.response_id not in taken
                )
                is_new.append(new)
                if new:
                    taken.add(response.response_id)
                    payload += _response_encoder.encode(response) + b"\n"
            if payload:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # A writer died mid-line (we hold the lock, so nobody is writing): end that line
                    # so ours starts on a fresh one; readers skip the fragment.
                    payload[:0] = b"\n"
                _write_all(fd, bytes(payload))
                os.fsync(fd)
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
            self._live = _LiveIndex()
            return
        end = data.rfind(b"\n")
        if end < 0:
            return  # nothing new, or only an incomplete line still being written
        for line in data[:end].split(b"\n"):
            if not line.strip():
                continue
            try:
                self._live.add(_response_decoder.decode(line))
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

    def live_responses(self, customer_id: str) -> list[LiveResponse]:
        with self._lock:
            self._refresh_or_unavailable()
            return list(self._live.by_customer.get(customer_id, ()))

    def iter_live_responses(self) -> Iterator[LiveResponse]:
        with self._lock:
            self._refresh_or_unavailable()
            return iter(list(self._live.in_order))

    def iter_archived_responses(self) -> Iterator[LiveResponse]:
        """The archive, line by line (it may be large); torn or unreadable lines are skipped."""
        seen: set[str] = set()
        try:
            handle = self.archive_path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the live-response archive: {exc}") from exc
        with handle:
            for line in handle:
                if not line.endswith(b"\n") or not line.strip():
                    continue  # the tail of a compaction that died mid-write
                try:
                    response = _response_decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.warning("skipping an unreadable line in %s: %s", self.archive_path, exc)
                    continue
                if response.response_id not in seen:
                    seen.add(response.response_id)
                    yield response

    def compact_live(self, responses: Sequence[LiveResponse]) -> int:
        wanted = {r.response_id for r in responses}
        if not wanted:
            return 0
        with self._lock:
            try:
                return self._compact(wanted)
            except OSError as exc:
                raise StoreUnavailable(f"cannot compact the live responses: {exc}") from exc

    def _compact(self, wanted: set[str]) -> int:
        fd = self._locked_live_file(create=False)
        if fd is None:
            return 0
        try:  # we hold the live file's lock until the end: no answer is appended meanwhile
            data = _read_all(fd)
            moved, kept, moved_ids = _split_live(data, wanted)
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
        payload = bytearray(b"".join(lines))
        fd = os.open(self.archive_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                payload[:0] = b"\n"  # a compaction died mid-line: readers skip that fragment
            _write_all(fd, bytes(payload))
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.archive_path.parent)

    def _write_live_copy(self, data: bytes) -> Path:
        """The live file's new content in a temporary file beside it, fsync'd; its path."""
        tmp = self.live_path.with_name(f".{self.live_path.name}.compacting")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def _refresh_or_unavailable(self) -> None:
        try:
            self._refresh()
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot read live responses from {self.live_path}: {exc}"
            ) from exc

    # --- training runs -----------------------------------------------------------------------
    @contextmanager
    def training_lock(
        self, ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS
    ) -> Iterator[TrainingLock]:
        """An `flock` on `<root>/.train.lock` (the ttl is for Redis: an flock dies with its process)."""
        lock = FileTrainingLock(self.root / LOCK_FILE)
        lock.acquire()
        try:
            yield lock
        finally:
            lock.release()

    def run_log(self) -> RunLog:
        return FileRunLog(self.root / RUNS_DIR)

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"store directory {self.root} is not usable: {exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"store directory {self.root} is not writable")

    def close(self) -> None:
        """Nothing to release: files are opened per call."""
