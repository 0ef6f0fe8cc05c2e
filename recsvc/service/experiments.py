"""Experiments on the request path: which arm a customer is in for each offer they earn (and for
the recommendations, when that experiment is on), and the exposure log's buffer.

The buffer: a request appends its lines to a list in memory (no I/O on the storefront's path); a
daemon thread writes what has gathered to the store every `FLUSH_SECONDS` (one append per flush),
and the app's shutdown writes the rest. A worker killed with SIGKILL loses at most the last 100 ms
of lines. That never biases an analysis: the arm is a hash of the ids, not a stored fact, outcomes
are counted by assigned arm (intent-to-treat), and a customer's next request logs them again, so
only the start of their outcome window can move (later, by the lost interval at most).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence

import msgspec

from recsvc.domain.experiments import RECOMMENDATIONS_EXPERIMENT, Arm, Exposure, assign
from recsvc.domain.offers import Offer, OfferDefinition
from recsvc.errors import StoreUnavailable
from recsvc.store.exposures import ExposureLog

log = logging.getLogger("recsvc.experiments")

FLUSH_SECONDS = 0.1
# Lines kept while the store cannot take them; past this the oldest go (and are counted).
MAX_BUFFERED = 200_000


class ExposureRecorder:
    """One worker's buffer in front of the store's exposure log (see the module docstring)."""

    def __init__(self, log_: ExposureLog, every: float = FLUSH_SECONDS) -> None:
        self._log = log_
        self._every = every
        self._lines: list[Exposure] = []
        self._writing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def record(self, lines: Sequence[Exposure]) -> None:
        # list.extend is atomic under the GIL: no lock on the request path.
        self._lines.extend(lines)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="exposure-log", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.flush()

    def flush(self) -> int:
        """Write what has gathered; how many lines went. A store that cannot take them keeps
        them for the next flush (up to MAX_BUFFERED)."""
        with self._writing:
            lines, self._lines = self._lines, []
            if not lines:
                return 0
            try:
                self._log.append(lines)
            except StoreUnavailable as exc:
                log.warning("exposure log: %d lines wait, store unavailable: %s", len(lines), exc)
                kept = lines + self._lines
                self.dropped += max(0, len(kept) - MAX_BUFFERED)
                self._lines = kept[-MAX_BUFFERED:]
                return 0
            self.written += len(lines)
            return len(lines)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()


class OfferDecision(msgspec.Struct, frozen=True):
    """An earned offer and what its experiment (if any) decided for this customer."""

    offer: Offer
    definition: OfferDefinition
    experiment: str | None
    arm: Arm | None


def decide(
    earned: list[tuple[Offer, OfferDefinition]], customer_id: str, day: dt.date
) -> tuple[list[OfferDecision], list[OfferDecision]]:
    """The offers to show, in order, and those withheld (the customer is in the holdout).

    A withheld offer whose fallback is `next_best` hands its place to the best earned offer that
    is not in a running experiment (a storefront that shows only the first offer then shows that
    one); with `none` its place is simply empty."""
    shown: list[OfferDecision] = []
    withheld: list[OfferDecision] = []
    for offer, definition in earned:
        config = definition.experiment
        if config is None or not config.running(day):
            shown.append(OfferDecision(offer, definition, None, None))
            continue
        experiment = config.id or offer.id
        arm = assign(experiment, offer.id, customer_id, config.holdout_share)
        decision = OfferDecision(offer, definition, experiment, arm)
        (withheld if arm == "holdout" else shown).append(decision)
    for gone in withheld:
        if gone.definition.experiment and gone.definition.experiment.fallback == "next_best":
            shown = _promote_fallback(shown, gone)
    return shown, withheld


def _promote_fallback(shown: list[OfferDecision], gone: OfferDecision) -> list[OfferDecision]:
    outside = [d for d in shown if d.experiment is None]
    if not outside:
        return shown
    best = outside[0]
    rest = [d for d in shown if d is not best]
    # Where the withheld offer would have stood by priority.
    at = sum(
        1 for d in rest if (-d.offer.priority, d.offer.id) < (-gone.offer.priority, gone.offer.id)
    )
    return [*rest[:at], best, *rest[at:]]


def exposure_lines(
    shown: Sequence[OfferDecision],
    withheld: Sequence[OfferDecision],
    customer_id: str,
    version: str,
    at: dt.datetime,
) -> list[Exposure]:
    return [
        Exposure(
            at,
            d.experiment,
            d.offer.id,
            customer_id,
            d.arm,
            version,
            d.offer.segment,
            d.definition.experiment.holdout_share,
        )
        for d in (*shown, *withheld)
        if d.experiment is not None and d.arm is not None and d.definition.experiment is not None
    ]


def recommendations_arm(customer_id: str, holdout_share: float) -> Arm | None:
    """The customer's arm in the personalisation experiment; None while it is off (share 0)."""
    if holdout_share <= 0:
        return None
    return assign(
        RECOMMENDATIONS_EXPERIMENT, RECOMMENDATIONS_EXPERIMENT, customer_id, holdout_share
    )
