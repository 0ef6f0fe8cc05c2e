"""The live NPS answers a run takes in: moved out of live once the active version holds them
(compaction), then read (archive first, then live) and merged into the run's NPS answers (in
memory: the validator's clean files are not rewritten).

- **Merge.** The NPS responses the service took in are added to the validated `nps_responses`
  table of every run, all of them and not only those since the last run, since the shop's export
  may never contain them: the archive (`Store.iter_archived_responses`) first, then the live ones
  (`Store.iter_live_responses`), each response id once (first copy wins). A response whose
  `response_id` is also in the batch file is dropped (the shop's file is the record), and one
  whose customer is not in the validated customers is dropped as the validator would.
- **Compaction.** Before it reads them, a run moves to the archive (`Store.compact_live`) the live
  responses the active version holds, so live keeps only what no published version holds yet:
  workers index and NPS summaries read only that. Done at the start of the next run rather than
  right after a publish, so the version holding them has been served for a day: every worker has
  loaded it, and since the service skips live answers its version holds, it shows the same
  numbers after the move as before. Answers of a customer the shop's data lacks stay live (they
  count in live summaries and that customer's live state) until a version holds them, or until
  `live_retention_days` (training config, default 90) have passed since they came in: then they
  move too, so a customer id that never appears cannot pile answers up forever; every run still
  merges them from the archive. A failed compaction does not fail the run: the record notes the
  error and the next run moves them. Nothing is deleted: answers leave live only once the archive
  copy is durable (see `recsvc.store`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.live import LiveResponse
from recsvc.domain.times import naive_utc
from recsvc.store import Store
from recsvc.version.opened import ActiveModel
from recsvc.version.responses import response_key
from training.run.records import LiveIntake


class LiveRead(msgspec.Struct, frozen=True):
    """The live NPS responses one run read from the store."""

    responses: list[LiveResponse]  # archived ones first, then live; each response id once
    live: list[LiveResponse]  # those read from live: what the run compacts once it published
    archived: int  # how many of `responses` came from the archive


def read_live_responses(store: Store) -> LiveRead:
    """The archive, then the live responses; the first copy of a response id wins (a compaction
    killed half-way leaves a response in both)."""
    seen: set[str] = set()
    responses: list[LiveResponse] = []
    for response in store.answers.iter_archived():
        if response.response_id not in seen:
            seen.add(response.response_id)
            responses.append(response)
    archived = len(responses)
    live = list(store.answers.iter_live())
    for response in live:
        if response.response_id not in seen:
            seen.add(response.response_id)
            responses.append(response)
    return LiveRead(responses, live, archived)


class Compaction(msgspec.Struct, frozen=True):
    """What a run moved from live to the archive before it read the live answers."""

    moved: int = 0
    error: str | None = None


def compact_held_responses(
    store: Store, active: ActiveModel | None, *, now: dt.datetime, retention_days: float
) -> Compaction:
    """Move to the archive the live responses the active version holds, and those no version
    has taken in `retention_days` (their customer is not in the shop's data).

    Done at the start of a run, so the version that holds them has been served for a while: every
    worker has loaded it, and the service shows the same numbers after the move as before (it
    skips live answers its version holds). Failing does not fail the run: they stay live, the
    record says why and the next run moves them.
    """
    if active is None:
        return Compaction()
    try:
        live = list(store.answers.iter_live())
        if not live:
            return Compaction()
        keys = np.fromiter((response_key(r.response_id) for r in live), np.uint64, len(live))
        held = active.responses.holds(keys) if active.responses is not None else np.zeros(len(live))
        stale = now - dt.timedelta(days=retention_days)
        moving = [r for r, h in zip(live, held.tolist(), strict=True) if h or r.received_at < stale]
        return Compaction(store.answers.compact(moving) if moving else 0)
    except Exception as exc:  # the store went away, say: the answers stay live until next time
        return Compaction(error=f"{type(exc).__name__}: {exc}")


class LiveMerge(msgspec.Struct, frozen=True):
    """The run's NPS answers with the live ones added, and what became of the live ones."""

    nps_responses: pl.DataFrame  # the batch's answers first, in file order, then the live ones
    intake: LiveIntake


def merge_live_responses(
    responses: Sequence[LiveResponse],
    nps_responses: pl.DataFrame,
    customers: pl.DataFrame,
    *,
    since: dt.datetime | None = None,
) -> LiveMerge:
    """Add live NPS responses (`read_live_responses`) to the validated `nps_responses`.

    The batch wins on a shared response_id; responses of customers missing from the validated
    `customers` are dropped. `since` (the last successful run's `received_until`) only counts how
    many arrived after that run read them. The frames are the run's, in memory: the validator's
    clean files stay as it wrote them.
    """
    intake = LiveIntake(stored=len(responses))
    if not responses:
        return LiveMerge(nps_responses, intake)
    intake.received_until = max(r.received_at for r in responses).isoformat()
    if since is not None:
        intake.new_since_last_run = sum(r.received_at > since for r in responses)
    live = pl.DataFrame(
        {
            c.RESPONSE_ID: [r.response_id for r in responses],
            c.CUSTOMER_ID: [r.customer_id for r in responses],
            c.SCORE: [r.score for r in responses],
            c.RESPONDED_AT: [naive_utc(r.responded_at) for r in responses],
            c.TOUCHPOINT: [r.touchpoint for r in responses],
            c.ORDER_ID: [r.order_id for r in responses],
            c.COMMENT: [r.comment for r in responses],
        },
        schema=nps_responses.schema,
    )
    known = live.join(customers.select(c.CUSTOMER_ID), on=c.CUSTOMER_ID, how="semi")
    fresh = known.join(nps_responses.select(c.RESPONSE_ID), on=c.RESPONSE_ID, how="anti")
    intake.unknown_customer = live.height - known.height
    intake.in_batch = known.height - fresh.height
    intake.merged = fresh.height
    if not fresh.height:
        return LiveMerge(nps_responses, intake)
    return LiveMerge(pl.concat([nps_responses, fresh]), intake)
