"""Privacy requests: a customer's erasure, the suppression list it leaves behind, and the registry
of every place the product holds personal data.

An erasure is known everywhere only by the customer's *hash* (`customer_hash`): the erasure log and
the suppression list hold no customer id. The hash is a pseudonym, not anonymisation: whoever
guesses an id can confirm it, which is exactly what the training run's validator and every worker
must do to keep an erased customer out. It is the same in every process and on every machine.

The suppression rule, one for the batch validator, the live intake and every worker: a record of
an erased customer dated at or before their (latest) erasure is suppressed; one dated after it is
a returning customer's new relationship and is kept (`Suppression.suppresses`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from recsvc.domain.times import utc

_HASH_DOMAIN = b"recsvc/customer/v1\x00"


def customer_digest(customer_id: str) -> bytes:
    """SHA-256 of a fixed domain and the id: the customer's pseudonym (`customer_hash`) as bytes."""
    return hashlib.sha256(_HASH_DOMAIN + customer_id.encode()).digest()


def customer_hash(customer_id: str) -> str:
    """The customer's pseudonym in erasure records (hex)."""
    return customer_digest(customer_id).hex()


def hash_key(digest: str) -> int:
    """The first 64 bits of a customer hash, big-endian, as an unsigned integer: what a worker
    matches a version's customers by (`recsvc.version.erased`)."""
    return int(digest[:16], 16)


def key_fingerprint(api_key: str | None) -> str:
    """Which key asked, without the key: the first 12 hex digits of its SHA-256 (`dev` when the
    service runs without keys)."""
    if not api_key:
        return "dev"
    return "key:" + hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).hexdigest()[:12]


ErasureState = Literal["started", "completed"]


class Erasure(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the erasure log. A request writes `started` (durable before anything is
    removed: from then on every worker masks the customer) and, once every holder is swept,
    `completed` with what was removed; a request killed in between leaves `started` alone, and
    repeating it completes the erasure."""

    erasure_id: str
    customer_hash: str
    erased_at: dt.datetime  # aware UTC; records dated up to here are suppressed
    requested_by: str  # `key_fingerprint` of the key that asked, or a command's name
    state: ErasureState
    # Records removed, live and archived together: answers, order lines (completed entries).
    removed: dict[str, int] = {}

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "erased_at", utc(self.erased_at))


class Suppression:
    """The suppression list: customer hash -> their latest erasure."""

    def __init__(self, erased: Mapping[str, dt.datetime] | None = None) -> None:
        self.erased: dict[str, dt.datetime] = dict(erased or {})

    @classmethod
    def of(cls, entries: Iterable[Erasure]) -> Suppression:
        latest: dict[str, dt.datetime] = {}
        for entry in entries:
            held = latest.get(entry.customer_hash)
            if held is None or entry.erased_at > held:
                latest[entry.customer_hash] = entry.erased_at
        return cls(latest)

    def __len__(self) -> int:
        return len(self.erased)

    def __bool__(self) -> bool:
        return bool(self.erased)

    def erased_at(self, customer_id: str) -> dt.datetime | None:
        if not self.erased:
            return None
        return self.erased.get(customer_hash(customer_id))

    def suppresses(self, customer_id: str, when: dt.datetime | None) -> bool:
        """Whether a record of this customer dated `when` is suppressed (None: undated, e.g. a
        customer's attributes: suppressed whenever the customer was erased)."""
        at = self.erased_at(customer_id)
        return at is not None and (when is None or utc(when) <= at)

    def after(self, as_of: dt.datetime | None) -> Suppression:
        """The erasures a version whose data was suppressed as of `as_of` (None: before erasures
        existed) must mask (`masks`)."""
        if as_of is None:
            return self
        return Suppression({h: at for h, at in self.erased.items() if masks(at, as_of)})


# An erasure is stamped by the worker that takes it, then written to the log; a training run notes
# the time, then reads the log. An erasure stamped just before a run's note but written just after
# its read (or stamped by a clock running behind) is in neither the version's data suppression nor
# a later erasure by the stamps: masking reaches this far back to cover it.
CLOCK_MARGIN = dt.timedelta(minutes=5)


def masks(erased_at: dt.datetime | None, version_as_of: dt.datetime | None) -> bool:
    """Whether a version must hide a customer erased at `erased_at`: it was built from data
    suppressed as of `version_as_of` (None: before erasures existed), so it may still hold what
    the customer had before an erasure that came later (or within `CLOCK_MARGIN` before)."""
    return erased_at is not None and (
        version_as_of is None or erased_at > version_as_of - CLOCK_MARGIN
    )


# --- where the product holds personal data --------------------------------------------------------

HolderKind = Literal["store", "version", "worker", "training"]


class Holder(msgspec.Struct, frozen=True, kw_only=True):
    """One place personal data lives. `file_store` and `redis` are the glob patterns of its files
    under a file store's root and of its keys (`{prefix}` is the key prefix) in a Redis store: the
    registry test checks that every file and key a working store holds is some holder's (or one of
    the `NOT_PERSONAL` places), so a new store of personal data that is not registered fails."""

    name: str
    kind: HolderKind
    holds: str
    file_store: tuple[str, ...] = ()
    redis: tuple[str, ...] = ()
    erased: str
    retention: str


PERSONAL_DATA: tuple[Holder, ...] = (
    Holder(
        name="live_answers",
        kind="store",
        holds="NPS answers taken in over HTTP: customer id, score, time, touchpoint, order id, comment",
        file_store=("live/nps_responses.ndjson", "live/.nps_responses.ndjson.*"),
        redis=(
            "{prefix}:{c:*}:nps",
            "{prefix}:{c:*}:nps_ids",
            "{prefix}:live:customers",
            "{prefix}:live:stream",
        ),
        erased="removed by the DELETE (the customer's lines, list, id set and stream entries)",
        retention="until the next training run that publishes a version holding them",
    ),
    Holder(
        name="archived_answers",
        kind="store",
        holds="live NPS answers moved out of live by a training run (same fields)",
        file_store=("live/archive.ndjson", "live/.archive.ndjson.*"),
        redis=("{prefix}:{live}:archive", "{prefix}:{live}:archive:*"),
        erased="removed by the DELETE (the archive rewritten without the customer's records)",
        retention="kept: the training run merges them into every run",
    ),
    Holder(
        name="live_orders",
        kind="store",
        holds="order lines taken in over HTTP: customer id, products, prices, times, status",
        file_store=("live/orders.ndjson", "live/.orders.ndjson.*"),
        redis=(
            "{prefix}:{c:*}:orders",
            "{prefix}:{c:*}:orders_ids",
            "{prefix}:live:orders:customers",
            "{prefix}:live:orders:stream",
        ),
        erased="removed by the DELETE (the customer's lines, list, id set and stream entries)",
        retention="until the next training run that publishes a version holding them",
    ),
    Holder(
        name="archived_orders",
        kind="store",
        holds="live order lines moved out of live by a training run (same fields)",
        file_store=("live/orders_archive.ndjson", "live/.orders_archive.ndjson.*"),
        redis=("{prefix}:{live}:orders:archive", "{prefix}:{live}:orders:archive:*"),
        erased="removed by the DELETE (the archive rewritten without the customer's records)",
        retention="kept: the training run merges them into every run",
    ),
    Holder(
        name="exposure_log",
        kind="store",
        holds="offer experiments' exposure log: customer id, offer, arm, time, the model version "
        "and the segment that earned the offer, for every offer shown or withheld",
        file_store=(
            "live/exposures.ndjson",
            "live/.exposures.ndjson.*",
            "live/exposures_compacted.json",
            "live/.exposures_compacted.json.*",
        ),
        redis=("{prefix}:{live}:exposures", "{prefix}:{live}:exposures:compacted"),
        erased="removed by the DELETE (the log rewritten without the customer's lines, their "
        "compacted assignments dropped)",
        retention="kept: each training run folds the lines older than an hour into per-customer "
        "assignments (first time, arm, exposures), which it keeps",
    ),
    Holder(
        name="survey_log",
        kind="store",
        holds="survey sends and declines: customer id, touchpoint, time",
        file_store=("surveys", "surveys/log.ndjson", "surveys/.log.ndjson.tmp"),
        redis=("{prefix}:{surveys}:asked", "{prefix}:{surveys}:declined"),
        erased="removed by the DELETE (the log rewritten without the customer's lines; their "
        "fields of the latest-send and latest-decline hashes deleted)",
        retention="kept: the survey throttle reads every customer's latest send and decline",
    ),
    Holder(
        name="membership_history",
        kind="store",
        holds="the membership journal: per activation of a version, the customer ids that "
        "entered and left each segment (the segment membership history is replayed from it)",
        file_store=("memberships", "memberships/*"),
        redis=("{prefix}:{memberships}:*",),
        erased="removed by the DELETE (every part rewritten without the customer; versions that "
        "mask them add no spell of theirs)",
        retention="kept: the history of every activation",
    ),
    Holder(
        name="versions",
        kind="version",
        holds="each stored model version: customer ids, profiles (NPS, RFM, churn, segments, "
        "attributes), NPS answers (scores, times, comments and their themes: "
        "`nps_responses_comment*`, `nps_responses_themes.npy`), order history, recent orders "
        "(customer and order ids, placing and delivery times: `recent_orders.json`), the "
        "model's customer vectors",
        file_store=("versions/*",),
        redis=("{prefix}:model:{v:*}:*", "{prefix}:versions"),
        erased="masked at once by every worker (suppression list: whole-version reads such as "
        "summaries, comment themes, exports and the survey due lists leave their rows out); gone from the next published "
        "version; older versions kept for rollback still hold it until pruned "
        "(`recsvc privacy prune-versions`) or rotated out",
        retention="the last `keep_versions` runs (default 3)",
    ),
    Holder(
        name="version_cache",
        kind="worker",
        holds="a Redis store's versions, downloaded to each machine's cache directory",
        erased="masked like the versions; a version removed from Redis leaves the cache at the "
        "next version a worker loads",
        retention="each stored version the machine has loaded, until it leaves the store",
    ),
    Holder(
        name="webhook_outbox",
        kind="store",
        holds="webhook events waiting for delivery per destination: detractor answers (customer "
        "id, score, comment), segment members entered or exited (customer ids)",
        file_store=("outbox/*/events-*.ndjson",),
        redis=("{prefix}:{outbox}:*:events",),
        erased="removed by the DELETE (an answer's event dropped, a batch rewritten without them); "
        "a `customer.erased` notice naming them then waits for each destination that takes it, "
        "so receivers erase what earlier events gave them (GDPR art. 19)",
        retention="until delivered, or given up on after about three days",
    ),
    Holder(
        name="training_runs",
        kind="training",
        holds="the training machine's run directories: validated tables, quarantined rows, the "
        "NPS report (with comments), the artifact before it is published",
        erased="suppressed by every later run's validator; the directories of runs before the "
        "erasure rotate out (each run keeps the newest few) or are deleted by hand",
        retention="the newest `KEEP_RUN_DIRS` finished runs (training/run/workdirs.py)",
    ),
    Holder(
        name="shop_files",
        kind="training",
        holds="the shop's own exports the training job reads (customers, orders, NPS answers)",
        erased="not ours to delete: the shop removes the customer from its exports; until it does, "
        "every run suppresses their rows and counts them",
        retention="the shop's",
    ),
)

# What else a store holds, none of it personal data: the registry test accepts these too.
NOT_PERSONAL: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "active pointer": (("ACTIVE", ".ACTIVE.*"), ("{prefix}:active",)),
    "training lock": ((".train.lock",), ("{prefix}:train-lock",)),
    "delivery lock": ((".deliver.lock",), ("{prefix}:deliver-lock",)),
    "webhook delivery state (counters, times, statuses)": (
        ("outbox", "outbox/*", "outbox/*/state.json", "outbox/*/.lock", "outbox/*/.state.json.tmp"),
        ("{prefix}:{outbox}:destinations", "{prefix}:{outbox}:*:state"),
    ),
    "survey counts and idempotency digests (no ids)": (
        (),
        (
            "{prefix}:{surveys}:sent_per_day",
            "{prefix}:{surveys}:revision",
            "{prefix}:{surveys}:day:*",
        ),
    ),
    "run log (counts, times, metrics)": (("runs", "runs/*"), ("{prefix}:runs", "{prefix}:runs:*")),
    "erasure log (customer hashes, times, key fingerprints)": (
        ("privacy", "privacy/*"),
        ("{prefix}:{privacy}:*",),
    ),
    "live folder": (("live",), ()),
    "versions folder": (("versions",), ()),
}
