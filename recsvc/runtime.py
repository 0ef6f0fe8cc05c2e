"""The running service's view of the store: the active model version, swapped in when it changes.

Each worker polls the store's active pointer every `reload_seconds` (cheap: one small read) and, when
it moved, loads the new version memory-mapped in a thread, then replaces one reference. A request
takes that reference once at its start, so it is answered entirely by the old or the new version,
never a mix, and nothing waits for the load.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from recsvc.artifacts import SEGMENT_RULES_FILE, ArtifactError, LoadedModel
from recsvc.customer_table import COLUMNS
from recsvc.errors import ConfigError
from recsvc.profiles import Profiles
from recsvc.segment_rules import SegmentRules, parse_segments
from recsvc.store.base import Store, StoreUnavailable

log = logging.getLogger("recsvc.runtime")


@dataclass(frozen=True, slots=True)
class ActiveModel:
    version: str
    loaded: LoadedModel
    profiles: Profiles
    rules: SegmentRules


def open_version(loaded: LoadedModel) -> ActiveModel:
    """Everything the service serves from one version: arrays, profiles, segment rules."""
    profiles = Profiles.open(loaded.directory, loaded.customer_ids)
    extras = [col.name for col in profiles.columns if col.name not in COLUMNS]
    path = loaded.directory / SEGMENT_RULES_FILE
    try:
        rules = parse_segments([(str(path), path.read_text())], extra_columns=extras)
    except (OSError, ConfigError) as exc:
        raise ArtifactError(f"{path}: cannot load the version's segment rules: {exc}") from None
    return ActiveModel(loaded.manifest.version, loaded, profiles, rules)


class ModelHolder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.current: ActiveModel | None = None
        self.store_error: str | None = None
        self.reloads = 0

    def refresh(self) -> bool:
        """Load the store's active version if it is not the one held; True when it swapped.

        A store that cannot be reached keeps the held model serving (degraded, reported by
        readiness and metrics) and is retried on the next poll.
        """
        try:
            version = self.store.active_version()
            if version is None or (self.current is not None and self.current.version == version):
                self.store_error = None
                return False
            loaded = self.store.load_active()
        except StoreUnavailable as exc:
            self.store_error = str(exc) or "store unavailable"
            return False
        except ArtifactError as exc:
            # A broken version must not take down a serving worker: keep the old one, say why.
            self.store_error = str(exc)
            log.error("cannot load the active version: %s", exc)
            return False
        if loaded is None:
            return False
        try:
            active = open_version(loaded)
        except ArtifactError as exc:
            self.store_error = str(exc)
            log.error("cannot load the active version: %s", exc)
            return False
        self.store_error = None
        self.current = active
        self.reloads += 1
        log.info("serving model version %s", loaded.manifest.version)
        return True

    async def watch(self, interval: float) -> None:
        """Poll forever (the app cancels this task on shutdown)."""
        while True:
            await asyncio.to_thread(self.refresh)
            await asyncio.sleep(interval)
