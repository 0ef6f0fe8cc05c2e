"""Which of a version's customers a worker must hide: those erased after the version's data was
suppressed (`recsvc.domain.privacy.masks`).

Erasures are known only by customer hash, so a worker matches them against the hashes of the
version's customer ids. Those are computed once per version and worker, the first time an erasure
applies to it (about a second per million customers), never on the storefront's path: a request
for one customer checks that customer's own erasure (`LiveActivity.erased_at`).
"""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np

from recsvc.domain.privacy import Suppression, customer_digest, customer_hash, hash_key
from recsvc.domain.times import iso_micros, parse_iso

_NONE = np.zeros(0, dtype=np.int64)


# The manifest's note of when the training run read the store's suppression list: the version holds
# no row an erasure up to then suppresses, so a worker masks only later erasures.
ERASURES_AS_OF = "erasures_as_of"


def erasures_note(moment: dt.datetime) -> dict[str, str]:
    """The manifest note for a run that read the suppression list at `moment` (microseconds: an
    erasure logged within the same second as the read is told apart)."""
    return {ERASURES_AS_OF: iso_micros(moment)}


def erasures_as_of(notes: dict[str, str]) -> dt.datetime | None:
    """When the training run that wrote a version read the suppression list (its manifest's
    notes); None for versions written before erasures existed."""
    value = notes.get(ERASURES_AS_OF)
    return parse_iso(value) if value else None


class ErasedRows:
    """A version's masked customer rows for the current suppression list, cached per list."""

    def __init__(self, customer_ids: np.ndarray, as_of: dt.datetime | None) -> None:
        self._ids = customer_ids
        self.as_of = as_of
        self._lock = threading.Lock()
        self._order: np.ndarray | None = None  # argsort of the hash keys
        self._keys: np.ndarray | None = None  # sorted hash keys
        self._cached: tuple[Suppression, np.ndarray] | None = None

    def rows(self, suppression: Suppression) -> np.ndarray:
        """The version's row indices of customers to hide, ascending (empty when none)."""
        cached = self._cached
        if cached is not None and cached[0] is suppression:
            return cached[1]
        with self._lock:
            applying = suppression.after(self.as_of)
            rows = self._match(applying) if applying else _NONE
            self._cached = (suppression, rows)
            return rows

    def _match(self, applying: Suppression) -> np.ndarray:
        if self._keys is None:
            digests = b"".join(customer_digest(cid)[:8] for cid in self._ids.tolist())
            keys = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
            self._order = np.argsort(keys, kind="stable")
            self._keys = keys[self._order]
        assert self._order is not None
        wanted = np.fromiter((hash_key(h) for h in applying.erased), dtype=np.uint64)
        positions = np.searchsorted(self._keys, wanted)
        found = positions < self._keys.size
        found[found] = self._keys[positions[found]] == wanted[found]
        rows = self._order[positions[found]]
        # 64 bits of the hash: confirm each match on the full one (a collision is not an erasure).
        confirmed = [
            int(r) for r in rows.tolist() if customer_hash(str(self._ids[r])) in applying.erased
        ]
        return np.asarray(sorted(confirmed), dtype=np.int64)


def without(indices: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """`indices` without the masked rows (order kept)."""
    if masked.size == 0 or indices.size == 0:
        return indices
    return indices[~np.isin(indices, masked)]
