"""The running service's view of the store: the active model version, swapped in when it changes.

Each worker polls the store's active pointer every `reload_seconds` (cheap: one small read) and, when
it moved, loads the new version memory-mapped in a thread, then replaces one reference. A request
takes that reference once at its start, so it is answered entirely by the old or the new version,
never a mix, and nothing waits for the load.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from recsvc.artifacts import SEGMENT_RULES_FILE, ArtifactError, LoadedModel
from recsvc.customer_table import COLUMNS
from recsvc.errors import ConfigError, NotFoundError
from recsvc.nps_summary import ResponseTable
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
    # The version's NPS answers for summaries; None for versions trained before they were written.
    responses: ResponseTable | None = None


def open_version(loaded: LoadedModel) -> ActiveModel:
    """Everything the service serves from one version: arrays, profiles, segment rules, answers."""
    profiles = Profiles.open(loaded.directory, loaded.customer_ids)
    extras = [col.name for col in profiles.columns if col.name not in COLUMNS]
    path = loaded.directory / SEGMENT_RULES_FILE
    try:
        rules = parse_segments([(str(path), path.read_text())], extra_columns=extras)
    except (OSError, ConfigError) as exc:
        raise ArtifactError(f"{path}: cannot load the version's segment rules: {exc}") from None
    responses = ResponseTable.open(loaded.directory, int(loaded.customer_ids.size))
    # Built now, in the loader's thread, rather than by the first request after the swap.
    loaded.item_id_list, loaded.item_category_names  # noqa: B018
    return ActiveModel(loaded.manifest.version, loaded, profiles, rules, responses)


class ModelHolder:
    """The worker's active model and what it knows of the store's health (for readiness and
    metrics): the last store error, and counters of store errors, reloads and failed loads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.current: ActiveModel | None = None
        self.store_error: str | None = None
        self.store_errors = 0
        self.reloads = 0
        self.load_failures = 0
        self._refreshing = threading.Lock()  # the watcher and an activation may refresh at once

    def store_unavailable(self, exc: Exception) -> None:
        """Note that a call to the store failed: degraded until the next successful poll."""
        self.store_error = str(exc) or "store unavailable"
        self.store_errors += 1

    def refresh(self) -> bool:
        """Load the store's active version if it is not the one held; True when it swapped.

        A store that cannot be reached keeps the held model serving (degraded, reported by
        readiness and metrics) and is retried on the next poll.
        """
        with self._refreshing:
            return self._refresh()

    def _refresh(self) -> bool:
        try:
            version = self.store.active_version()
            if version is None or (self.current is not None and self.current.version == version):
                self.store_error = None
                return False
            loaded = self.store.load_active()
            if loaded is None:
                return False
            active = open_version(loaded)
        except StoreUnavailable as exc:
            self.store_unavailable(exc)
            return False
        except (ArtifactError, NotFoundError) as exc:
            # A broken version must not take down a serving worker: keep the old one, say why.
            self.store_error = str(exc)
            self.load_failures += 1
            log.error("cannot load the active version: %s", exc)
            return False
        self.store_error = None
        self.current = active
        self.reloads += 1
        log.info("serving model version %s", active.version)
        return True

    async def watch(self, interval: float) -> None:
        """Poll forever (the app cancels this task on shutdown)."""
        while True:
            await asyncio.to_thread(self.refresh)
            await asyncio.sleep(interval)
