"""The store interface: what the training job publishes into and the service reads from.

Two implementations share it and one test suite: the embedded `FileStore` (local disk, no server)
and `RedisStore` (`redis://`, or `redis+cluster://` on a Redis Cluster). A store holds model
versions (published atomically, one active, older ones kept for rollback) and the live records the
service takes in between runs: NPS answers (`answers`) and order lines (`orders`), each kind a
`LiveLog`, a journal of who entered and left each segment at every activation
(`memberships`), and the survey log of sends and declines (`surveys`).

Live records do not pile up: at its start, a training run calls `compact` with the live records
the active version holds, which moves them from the live structures (what every worker indexes and
every NPS summary reads) to an archive that only the training job reads. The move never deletes
first: the archive copy is durable before anything leaves live, so a process killed in between
leaves a record in both places (readers keep the first copy of a key; the next compaction
finishes the move), never in neither. Both stores keep one archive per kind that grows with every
record ever taken in (compressed in Redis); the training run reads it whole, since the shop's
batch files may never hold those records. Once moved, records are served only through a version
that holds them: re-activating an older version serves without them until the next published run
merges them again (see docs/recommender.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import msgspec

from recsvc.domain.live import LiveActivity, LiveOrderLine, LiveResponse, R
from recsvc.domain.privacy import Erasure, Suppression
from recsvc.domain.surveys import Contact, SurveyEvent
from recsvc.store.exposures import ExposureLog
from recsvc.store.locks import DEFAULT_LOCK_TTL_SECONDS, DELIVERY_LOCK_TTL_SECONDS, TrainingLock
from recsvc.store.memberships import Activation, ActivationInfo, Spell
from recsvc.store.outbox import Outbox
from recsvc.store.runs import RunLog
from recsvc.version.artifacts import LoadedModel, Manifest
from recsvc.version.opened import ActiveModel


class VersionInfo(msgspec.Struct, frozen=True):
    version: str
    created_at: str
    active: bool
    ndcg: float | None = None


class LiveLog(Protocol[R]):
    """One kind of live record in a store (`Store.answers`, `Store.orders`)."""

    def add(self, records: list[R]) -> list[bool]:
        """Store records durably before returning; idempotent by `key` (a response id, an order
        line's revision). Returns, per record, True if it was new and False if its key was
        already live."""
        ...

    def of_customer(self, customer_id: str) -> list[R]:
        """A customer's live records, oldest first."""
        ...

    def iter_live(self) -> Iterator[R]:
        """Every live record (the nightly run ingests them), in the order they were stored."""
        ...

    def iter_archived(self) -> Iterator[R]:
        """Every record `compact` moved out of live, oldest compaction first, each key once (the
        first copy). Only the training run reads these."""
        ...

    def compact(self, records: Sequence[R]) -> int:
        """Move these records (matched by key) from live to the archive: first appended to the
        archive durably, then removed from live, so every worker stops seeing them. Keys not live
        (any more) are skipped. Returns how many keys left live.

        Only the training run calls it, holding the training lock, with records it read, once a
        version built from them is published and active. After the move the store no longer
        knows these keys: the intake asks the active version whether it holds one.
        """
        ...

    def erase(self, customer_id: str, until: dt.datetime | None = None) -> int:
        """Remove the customer's records, live and archived (a privacy erasure): every one, or
        those that occurred at or before `until` (a returning customer's later ones stay).
        Idempotent; returns how many records (keys) were removed."""
        ...


class ErasureLog(Protocol):
    """The erasure log (`recsvc.domain.privacy`): customer hashes, times, who asked, what was
    removed; no personal data. It is also the suppression list every worker and the training
    run apply."""

    def append(self, entry: Erasure) -> None:
        """Store an entry durably before returning."""
        ...

    def entries(self) -> list[Erasure]:
        """Every entry, oldest first."""
        ...

    def suppression(self) -> Suppression:
        """The suppression list as of now (each customer's latest erasure); cheap when nothing
        changed since the last call (a stat, or one small read)."""
        ...


class MembershipJournal(Protocol):
    """The membership journal (`recsvc.store.memberships`): per activation of a version, who
    entered and who left each segment; the segment membership history is replayed from it. Every
    read first appends the active version's entry if the journal lacks it (a crash after a pointer
    switch)."""

    def sync(self) -> ActivationInfo | None:
        """Append the active version's entry unless the journal ends with it (the store does after
        every activation); the entry appended, or None."""
        ...

    def latest(self) -> ActivationInfo | None:
        """The last activation, without its changes; None before the first."""
        ...

    def last_seq(self) -> int:
        """The last activation's seq; 0 before the first."""
        ...

    def activations(self, after_seq: int = 0) -> Iterator[Activation]:
        """The activations after `after_seq`, oldest first, each with its changes."""
        ...

    def spells(
        self,
        since: dt.datetime | None = None,
        *,
        customer_id: str | None = None,
        through: int | None = None,
    ) -> Iterator[Spell]:
        """Every membership spell, segment by segment (`since`: those that started or ended at or
        after it; `customer_id`: theirs only; `through`: as of that seq)."""
        ...

    def erase(self, customer_id: str) -> int:
        """Remove the customer from every stored part (a privacy erasure); how many spells went."""
        ...


class SurveyLog(Protocol):
    """Who was sent a survey and who declined one (`recsvc.store.surveys`): the throttle and the
    daily cap of `GET /v1/surveys/due`, shared by every worker, replica and restart."""

    def record(self, events: Sequence[SurveyEvent]) -> list[bool]:
        """Store sends and declines durably before returning; idempotent by `SurveyEvent.key`
        (customer, touchpoint, kind and UTC day). Per event, True if it was new."""
        ...

    def contacts(self) -> dict[str, Contact]:
        """Every customer in the log with their latest send and latest decline (a copy)."""
        ...

    def sent_on(self, day: dt.date) -> int:
        """How many sends are recorded for that UTC day (the daily cap counts them)."""
        ...

    def erase(self, customer_id: str) -> int:
        """Remove the customer's events (a privacy erasure); how many went."""
        ...


class Store(Protocol):
    """What both stores provide. Every method is synchronous and safe to call from threads."""

    url: str

    # --- model versions ---------------------------------------------------------------------
    def active_version(self) -> str | None: ...

    def list_versions(self) -> list[VersionInfo]: ...

    def manifest(self, version: str) -> Manifest: ...

    def version_path(self, version: str) -> Path:
        """A stored version's files on local disk (a Redis store downloads them into its cache);
        NotFoundError when the version is not stored."""
        ...

    def publish(self, artifact: Path, *, activate: bool = True, keep: int = 3) -> str:
        """Store an artifact directory as a new version: every file first, then (if `activate`) one
        pointer switch, so readers never see a half-written version. Returns the version."""
        ...

    def activate(self, version: str) -> None:
        """Make a stored version the active one (rollback), after opening it as a worker would
        (`open`): NotFoundError if it is not stored, ArtifactError naming the file that is wrong
        (the pointer does not move)."""
        ...

    def open(self, version: str) -> ActiveModel:
        """A stored version opened as a worker serves it, every file checked against the
        manifest's SHA-256 (`recsvc.version.opened.open_checked`); NotFoundError, ArtifactError."""
        ...

    def prune(self, keep: int) -> list[str]:
        """Remove the oldest versions beyond `keep`, never the active one; returns the removed."""
        ...

    def remove(self, version: str) -> None:
        """Remove one stored version (a privacy prune); InvalidRequest for the active one,
        NotFoundError when it is not stored."""
        ...

    def load_active(self) -> LoadedModel | None:
        """The active version, memory-mapped from local disk (a Redis store caches its files
        locally first, shared by the workers of one machine). None when nothing is published."""
        ...

    # --- live records (NPS answers, order lines) ---------------------------------------------
    @property
    def answers(self) -> LiveLog[LiveResponse]: ...

    @property
    def orders(self) -> LiveLog[LiveOrderLine]: ...

    def follow_live(self) -> None:
        """Serve `live_of` from this process's memory, kept current as records arrive on any
        worker or machine (the service's workers call it at start; a change is visible within
        milliseconds, the writer's own worker at once)."""
        ...

    def live_of(self, customer_id: str) -> LiveActivity:
        """A customer's live answers and order lines, oldest first, and when they were last
        erased: what a request reads (one round trip on Redis)."""
        ...

    # --- privacy -----------------------------------------------------------------------------
    @property
    def erasures(self) -> ErasureLog: ...

    @property
    def exposures(self) -> ExposureLog:
        """The experiments' exposure log (`recsvc.store.exposures`)."""

    # --- surveys -----------------------------------------------------------------------------
    @property
    def surveys(self) -> SurveyLog:
        """Survey sends and declines (`recsvc.store.surveys`)."""
        ...

    # --- segment membership history ------------------------------------------------------------
    @property
    def memberships(self) -> MembershipJournal: ...

    # --- webhooks ----------------------------------------------------------------------------
    @property
    def outbox(self) -> Outbox:
        """Every webhook destination's waiting events and delivery state (`recsvc.store.outbox`)."""
        ...

    def delivery_lock(self, ttl_seconds: float = DELIVERY_LOCK_TTL_SECONDS) -> TrainingLock:
        """The deliverer's lock, taken (release it when done): one `recsvc deliver` per store.
        LockHeld naming the holder when another deliverer has it."""
        ...

    # --- training runs -----------------------------------------------------------------------
    def training_lock(
        self, ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS
    ) -> AbstractContextManager[TrainingLock]:
        """Hold the store's training lock for the block (see `recsvc.store.locks`); LockHeld
        naming the holder when another run has it."""
        ...

    def run_log(self) -> RunLog:
        """The store's run records (see `recsvc.store.runs`)."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable when the backing server cannot be reached."""
        ...

    def close(self) -> None: ...
