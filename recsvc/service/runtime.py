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
import time

import numpy as np

from recsvc.domain.live import LiveActivity, LiveResponse
from recsvc.domain.privacy import Suppression
from recsvc.errors import ArtifactError, NotFoundError, StoreUnavailable
from recsvc.store.base import Store
from recsvc.version.opened import ActiveModel

log = logging.getLogger("recsvc.service.runtime")
# A version that failed to open is tried again after this long (not at every poll: opening checks
# every file's SHA-256, which a 1M-customer version takes a second or more to do).
RETRY_FAILED_SECONDS = 60.0
STORE_UNREACHABLE = "the store cannot be reached; serving the model in memory"


class ModelHolder:
    """The worker's model and what it knows of the store's health (for readiness and metrics).

    `problem` says why the worker is degraded, in words fit for an unauthenticated probe (no paths,
    no URLs: those go to the log): the store cannot be reached, or the active version does not
    open. A worker whose active version does not open keeps the version it serves; one that has
    none yet (just started) serves the newest stored version that opens. It never answers "no
    model" while a good version is stored.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.current: ActiveModel | None = None
        self.store_error: str | None = None  # set while the store cannot be reached
        self.version_error: str | None = None  # set while the active version does not open
        self.store_errors = 0
        self.reloads = 0
        self.load_failures = 0
        self._failed: dict[str, float] = {}  # version -> when to try opening it again
        self._refreshing = threading.Lock()  # the watcher and an activation may refresh at once
        self._suppression = Suppression()  # the last suppression list read

    @property
    def problem(self) -> str | None:
        return self.store_error or self.version_error

    def store_unavailable(self, exc: Exception) -> None:
        """Note that a call to the store failed: degraded until the next successful poll."""
        if self.store_error is None:
            log.warning("store unavailable: %s", exc)
        self.store_error = STORE_UNREACHABLE
        self.store_errors += 1

    def refresh(self, *, force: bool = False) -> bool:
        """Serve the store's active version if it is not the one held; True when it swapped.

        A store that cannot be reached keeps the held model serving (degraded) and is retried on
        the next poll; `force` retries a version that failed to open without waiting.
        """
        with self._refreshing:
            swapped = self._refresh(force)
        if self.current is not None:
            # Match the version against a changed erasure list here, off the request path, so
            # no export or summary pays for it (about a second per million customers).
            self.masked_rows(self.current)
        return swapped

    def _refresh(self, force: bool) -> bool:
        try:
            version = self.store.active_version()
            self.store_error = None
            if version is None:
                return False
            if self.current is not None and self.current.version == version:
                self.version_error = None
                return False
            if not force and time.monotonic() < self._failed.get(version, 0.0):
                return False
            try:
                active = self.store.open(version)
            except (ArtifactError, NotFoundError) as exc:
                self._failed[version] = time.monotonic() + RETRY_FAILED_SECONDS
                self.load_failures += 1
                log.error("cannot open the active version %s: %s", version, exc)
                self.version_error = f"the active version {version} does not open: {exc}"
                return self._fall_back(exclude=version) if self.current is None else False
        except StoreUnavailable as exc:
            self.store_unavailable(exc)
            return False
        self._failed.pop(version, None)
        self.version_error = None
        self._serve(active)
        return True

    def _fall_back(self, exclude: str) -> bool:
        """With nothing to serve: the newest stored version that opens, other than `exclude`."""
        for info in sorted(self.store.list_versions(), key=lambda v: v.version, reverse=True):
            if info.version == exclude:
                continue
            try:
                active = self.store.open(info.version)
            except (ArtifactError, NotFoundError) as exc:
                log.error("cannot open stored version %s either: %s", info.version, exc)
                continue
            self.version_error = f"{self.version_error}; serving version {active.version} instead"
            self._serve(active)
            return True
        return False

    def _serve(self, active: ActiveModel) -> None:
        # Built here, in the loader's thread, rather than by the first cart or product page that
        # needs them (the buyers index: 1.5 s and 30 MiB at a million customers; the bought-alike
        # weights: a pass over the purchases when the version's settings are not the plain ones).
        active.loaded.item_buyers  # noqa: B018
        active.loaded.alike_buyer_weights  # noqa: B018
        active.loaded.alike_lift  # noqa: B018
        self.current = active
        self.reloads += 1
        log.info("serving model version %s", active.version)

    # --- live records, read through the holder so a store outage degrades instead of failing ---

    def live(self, customer_id: str) -> LiveActivity:
        """The customer's live answers and order lines (those dated after their erasure, if they
        were erased); none while the store cannot be read (degraded: the customer is served as
        the version has them, masked when this worker last saw them erased)."""
        try:
            return self.store.live_of(customer_id).after_erasure()
        except StoreUnavailable as exc:
            self.store_unavailable(exc)
            return LiveActivity(erased_at=self._suppression.erased_at(customer_id))

    def suppression(self) -> Suppression:
        """The erasure log's suppression list; the last one read while the store cannot be."""
        try:
            self._suppression = self.store.erasures.suppression()
        except StoreUnavailable as exc:
            self.store_unavailable(exc)
        return self._suppression

    def masked_rows(self, model: ActiveModel) -> np.ndarray:
        """The rows of `model` this worker hides (customers erased after its data)."""
        if model.erased is None:
            return np.zeros(0, dtype=np.int64)
        return model.erased.rows(self.suppression())

    def all_live_answers(self) -> list[LiveResponse] | None:
        """Every live answer (none of an erased customer's from before their erasure), or None
        while the store cannot be read (a summary says so)."""
        try:
            answers = list(self.store.answers.iter_live())
        except StoreUnavailable as exc:
            self.store_unavailable(exc)
            return None
        suppression = self.suppression()
        if not suppression:
            return answers
        return [r for r in answers if not suppression.suppresses(r.customer_id, r.occurred_at)]

    async def watch(self, interval: float) -> None:
        """Poll forever (the app cancels this task on shutdown)."""
        while True:
            await asyncio.to_thread(self.refresh)
            await asyncio.sleep(interval)
