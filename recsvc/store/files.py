"""The embedded store: versions as directories on local disk, the active one named by a pointer file.

Layout under the root: `versions/<version>/` (an artifact directory) and `ACTIVE` (the active
version's name). Publishing copies the artifact into `versions/.incoming-<version>`, renames it into
place, then replaces `ACTIVE` with an fsync'd temporary file renamed over it: readers see the old
version or the new one, never a half-written one, and a crash at any point leaves the old one active.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import msgspec

from recsvc.artifacts import ArtifactError, LoadedModel, Manifest, load_model, read_manifest
from recsvc.errors import ConfigError, NotFoundError

ACTIVE = "ACTIVE"


class VersionInfo(msgspec.Struct, frozen=True):
    version: str
    created_at: str
    active: bool
    ndcg: float | None = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions_dir = root / "versions"

    @classmethod
    def from_url(cls, url: str) -> FileStore:
        path = url.removeprefix("file://")
        if not path:
            raise ConfigError(f"store URL {url!r} has no path")
        return cls(Path(path))

    def active_version(self) -> str | None:
        try:
            name = (self.root / ACTIVE).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def version_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise NotFoundError(f"no model version {version!r}")
        path = self.versions_dir / version
        if not (path / "manifest.json").is_file():
            raise NotFoundError(f"no model version {version!r} in {self.root}")
        return path

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

    def load_active(self) -> LoadedModel | None:
        version = self.active_version()
        return None if version is None else load_model(self.version_dir(version))

    def publish(self, artifact: Path, *, activate: bool = True, keep: int = 3) -> str:
        """Copy an artifact directory in as a new version, then (optionally) activate it."""
        manifest = read_manifest(artifact)
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        final = self.versions_dir / manifest.version
        if not final.exists():
            incoming = self.versions_dir / f".incoming-{manifest.version}"
            shutil.rmtree(incoming, ignore_errors=True)
            shutil.copytree(artifact, incoming)
            for path in incoming.iterdir():
                with path.open("rb") as handle:
                    os.fsync(handle.fileno())
            _fsync_dir(incoming)
            os.replace(incoming, final)
            _fsync_dir(self.versions_dir)
        if activate:
            self.activate(manifest.version)
        self.prune(keep)
        return manifest.version

    def activate(self, version: str) -> None:
        load_model(self.version_dir(version))  # refuse to point at a version that does not load
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{ACTIVE}.tmp"
        with tmp.open("w") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / ACTIVE)
        _fsync_dir(self.root)

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
