"""The embedded store: model versions as directories on local disk, live records (NPS answers,
order lines) in append-only files beside them. No server; several worker processes of one machine
share it.

Layout under the root:

- `versions/<version>/`: an artifact directory; `ACTIVE`: the active version's name. Publishing
  copies the artifact into `versions/.incoming-<version>`, checks it against its manifest, renames
  it into place, then replaces `ACTIVE` with an fsync'd temporary file renamed over it: readers see
  the old version or the new one, never a half-written one, and a crash at any point leaves the old
  one active. Versions are ordered by name (the training job names them by run time).
- `live/nps_responses.ndjson` (answers) and `live/orders.ndjson` (order lines): one JSON record
  (`LiveResponse`, `LiveOrderLine`) per line. Writers take an exclusive `flock` on the file, check
  that the file they locked is still the one at the path (a compaction may have replaced it while
  they waited), read what other processes appended since they last looked, append only keys not
  yet stored, and fsync before returning, so idempotency is exact across processes. Readers keep
  an index of the file and read only the bytes appended since; an incomplete last line (a write
  in progress) is left for later, and the first occurrence of a key wins should the file ever
  hold one twice. A reader takes the file for a new one when its inode changed, it shrank, or the
  last line the reader indexed is no longer where it was (a new file may get the inode number of
  one that was replaced).
- `live/archive.ndjson` and `live/orders_archive.ndjson`: the records compacted out of each live
  file, same format, appended only (under their own `flock`, fsync'd, starting on a fresh line if
  a compaction died mid-line) and read only by the training run.

Compaction (`compact`, called by the training run for the records the active version holds) holds
the live file's lock throughout, so nothing is appended meanwhile: (1) the lines of the given keys
are appended to the archive and fsync'd; (2) the rest of the live file, byte for byte (including
any line it cannot read), is written to a temporary file, fsync'd and renamed over the live file,
and the directory is fsync'd. Killed before (2) renames, the records are in both files: readers
keep the first copy and the next compaction moves them again; a leftover temporary file is
overwritten by the next compaction.

Erasure (`erase`, a privacy request) rewrites the live file and the archive without the
customer's lines the same way: under the file's lock, into a temporary file, fsync'd and renamed
over. Appenders to either file check, once they hold the lock, that it is still the file at the
path. `privacy/erasures.ndjson` is the erasure log (`recsvc.store.erasures`); `memberships/` the
membership journal (`recsvc.store.memberships`), appended right after every switch of `ACTIVE`;
`surveys/log.ndjson` the survey log of sends and declines (`recsvc.store.surveys`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recsvc.domain.live import ANSWERS, ORDER_LINES, LiveActivity, LiveOrderLine, LiveResponse
from recsvc.errors import (
    ArtifactError,
    ConfigError,
    InvalidRequest,
    NotFoundError,
    StoreUnavailable,
    shown,
)
from recsvc.store.base import VersionInfo
from recsvc.store.durable import fsync_dir
from recsvc.store.erasures import ERASURE_LOG, FileErasureLog
from recsvc.store.exposures import FileExposureLog
from recsvc.store.files_live import FileLiveLog
from recsvc.store.locks import (
    DEFAULT_LOCK_TTL_SECONDS,
    DELIVERY_LOCK_TTL_SECONDS,
    FileTrainingLock,
    TrainingLock,
)
from recsvc.store.memberships import MEMBERSHIPS_DIR, FileMembershipJournal
from recsvc.store.outbox import FileOutbox
from recsvc.store.runs import RUNS_DIR, FileRunLog, RunLog
from recsvc.store.surveys import SURVEY_LOG, FileSurveyLog
from recsvc.version.artifacts import LoadedModel, Manifest, load_model, read_manifest
from recsvc.version.opened import ActiveModel, open_checked

ACTIVE = "ACTIVE"
LOCK_FILE = ".train.lock"
DELIVERY_LOCK_FILE = ".deliver.lock"
LIVE_RESPONSES = Path("live") / "nps_responses.ndjson"
LIVE_ARCHIVE = Path("live") / "archive.ndjson"
LIVE_ORDERS = Path("live") / "orders.ndjson"
LIVE_ORDERS_ARCHIVE = Path("live") / "orders_archive.ndjson"
# How stale a serving worker's view of other processes' live records may be (`follow_live`).
LIVE_RECHECK_SECONDS = 0.005

log = logging.getLogger("recsvc.store")


class FileStore:
    def __init__(self, root: Path, *, url: str | None = None) -> None:
        self.root = root
        self.url = url or f"file://{root}"
        self.versions_dir = root / "versions"
        self.answers: FileLiveLog[LiveResponse] = FileLiveLog(
            ANSWERS, root / LIVE_RESPONSES, root / LIVE_ARCHIVE
        )
        self.orders: FileLiveLog[LiveOrderLine] = FileLiveLog(
            ORDER_LINES, root / LIVE_ORDERS, root / LIVE_ORDERS_ARCHIVE
        )
        self._erasures = FileErasureLog(root / ERASURE_LOG)
        self._memberships = FileMembershipJournal(
            root / MEMBERSHIPS_DIR,
            self.active_version,
            self.version_path,
            self._erasures.suppression,
        )
        self._outbox = FileOutbox(root)
        self.exposures = FileExposureLog(root)
        self._surveys = FileSurveyLog(root / SURVEY_LOG)

    @property
    def surveys(self) -> FileSurveyLog:
        return self._surveys

    @property
    def erasures(self) -> FileErasureLog:
        return self._erasures

    @property
    def memberships(self) -> FileMembershipJournal:
        return self._memberships

    def follow_live(self) -> None:
        """A request's read looks at the live files and the erasure log (a stat each, reading only
        what was appended) at most every LIVE_RECHECK_SECONDS; this process's own writes show at
        once."""
        for log_ in (self.answers, self.orders, self._erasures, self._surveys):
            log_.recheck.every(LIVE_RECHECK_SECONDS)

    def live_of(self, customer_id: str) -> LiveActivity:
        return LiveActivity(
            self.answers.of_customer(customer_id),
            self.orders.of_customer(customer_id),
            erased_at=self._erasures.suppression().erased_at(customer_id),
        )

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
        self._memberships.reconcile()  # a switch a crash left out of the journal, first
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{ACTIVE}.tmp"
        with tmp.open("w") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / ACTIVE)
        fsync_dir(self.root)
        self._memberships.reconcile()  # who entered and left each segment (a crash: next read)

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

    def remove(self, version: str) -> None:
        if version == self.active_version():
            raise InvalidRequest(f"version {shown(version)} is active: activate another first")
        self.version_dir(version)  # NotFoundError when not stored
        shutil.rmtree(self.versions_dir / version, ignore_errors=True)

    # --- webhooks ----------------------------------------------------------------------------
    @property
    def outbox(self) -> FileOutbox:
        return self._outbox

    def delivery_lock(self, ttl_seconds: float = DELIVERY_LOCK_TTL_SECONDS) -> TrainingLock:
        # An flock dies with its process: the ttl is for Redis.
        lock = FileTrainingLock(self.root / DELIVERY_LOCK_FILE, holder="deliverer")
        lock.acquire()
        return lock

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
        """Files are opened per call; a following worker's reads go back to looking every time
        (a handle kept after a service stops sees other processes' writes at once again)."""
        for log_ in (self.answers, self.orders, self._erasures, self._surveys):
            log_.recheck.every(0.0)
