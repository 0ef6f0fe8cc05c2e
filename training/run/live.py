"""The live records a run takes in, NPS answers and order lines alike: moved out of live once the
active version holds them (compaction), then read (archive first, then live) and merged into the
run's tables (in memory: the validator's clean files are not rewritten).

- **Merge.** Every run adds all of them, not only those since the last run, since the shop's
  export may never contain them: the archive (`store.answers.iter_archived()`) first, then the live
  ones (`iter_live()`), each key once (first copy wins). The shop's files win: an answer whose
  `response_id` the batch has is dropped; an order line whose `line_id` the batch has, or whose
  `order_id` it has (the export holds that order now, perhaps split into lines otherwise), is
  dropped. Answers of customers the validated customers lack are dropped as the validator would;
  order lines of unknown customers or products are quarantined (`live_quarantine.csv`). Each
  order line counts in its current revision (the one received last: a status update).
- **Compaction.** Before it reads them, a run moves to the archive (`store.answers.compact`,
  `store.orders.compact`) the live records the active version holds (answers by response id, order
  lines by revision, listed in the version's `orders.json`), so live keeps only what no published
  version holds yet: workers index and NPS summaries read only that. Done at the start of the next
  run rather than right after a publish, so the version holding them has been served for a day:
  every worker has loaded it, and since the service skips live records its version holds, it shows
  the same numbers after the move as before. Records the shop's data cannot place (an unknown
  customer or product) stay live (they count in that customer's live state) until a version holds
  them, or until `live_retention_days` (training config, default 90) have passed since they came
  in: then they move too, so an id that never appears cannot pile records up forever; every run
  still merges them from the archive. A failed compaction does not fail the run: the record notes
  the error and the next run moves them. Nothing is deleted: records leave live only once the
  archive copy is durable (see `recsvc.store`).
- **Erased customers.** Before the merge, the records the store's suppression list suppresses
  (`recsvc.domain.privacy`: dated at or before the customer's erasure) leave the run
  (`suppress_live`), by the rule the validator applies to the shop's files. The erasure itself
  removed them from the store; those a run still reads were left behind (an erasure racing a
  compaction), so the run erases them (`sweep_erased`). A failed sweep does not fail the run: the
  record notes the error and the next run suppresses and sweeps them again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain.live import LiveOrderLine, LiveResponse, R, latest_revisions
from recsvc.domain.privacy import Suppression
from recsvc.domain.times import naive_utc
from recsvc.store import Store
from recsvc.store.base import LiveLog
from recsvc.version.opened import ActiveModel
from training.run.records import LiveIntake


class LiveRead(msgspec.Struct, frozen=True, kw_only=True):
    """The live records of one kind one run read from the store."""

    records: list[Any]  # archived ones first, then live; each key once
    live: list[Any]  # those read from live: what the run compacts once it published
    archived: int  # how many of `records` came from the archive

    @property
    def responses(self) -> list[LiveResponse]:
        return self.records


def read_live(log: LiveLog[R]) -> LiveRead:
    """The archive, then the live records; the first copy of a key wins (a compaction killed
    half-way leaves a record in both)."""
    seen: set[str] = set()
    records: list[R] = []
    for record in log.iter_archived():
        if record.key not in seen:
            seen.add(record.key)
            records.append(record)
    archived = len(records)
    live = list(log.iter_live())
    for record in live:
        if record.key not in seen:
            seen.add(record.key)
            records.append(record)
    return LiveRead(records=records, live=live, archived=archived)


def read_live_responses(store: Store) -> LiveRead:
    return read_live(store.answers)


def suppress_live(read: LiveRead, suppression: Suppression) -> tuple[LiveRead, list[Any]]:
    """`read` without the records `suppression` suppresses, and those records. A record is dated
    by `occurred_at` (an answer's `responded_at`, an order line's `ordered_at`), as the validator
    dates the shop's rows (`training.validate.suppression.EVENT_TIMES`)."""
    if not suppression:
        return read, []
    # Hashing each distinct customer once keeps a large archive cheap; the domain's rule decides.
    customers = {r.customer_id for r in read.records}
    erased = {cid for cid in customers if suppression.erased_at(cid) is not None}
    if not erased:
        return read, []

    def suppressed(record: Any) -> bool:
        return record.customer_id in erased and suppression.suppresses(
            record.customer_id, record.occurred_at
        )

    records, dropped, archived = [], [], 0
    for position, record in enumerate(read.records):
        if suppressed(record):
            dropped.append(record)
        else:
            records.append(record)
            archived += position < read.archived
    live = [r for r in read.live if not suppressed(r)]
    return LiveRead(records=records, live=live, archived=archived), dropped


class Sweep(msgspec.Struct, frozen=True):
    """What a run erased from the store of the live records it suppressed."""

    erased: int = 0  # records (keys) removed, live and archived
    error: str | None = None


def sweep_erased(log: LiveLog[R], suppressed: Sequence[R], suppression: Suppression) -> Sweep:
    """Erase from `log` what the erasure should have removed of every customer a suppressed record
    names: their records up to their erasure (`LiveLog.erase` with `until`), left behind by an
    erasure racing a compaction; a returning customer's later records stay. Failing does not fail
    the run: the next run suppresses the same records and sweeps again."""
    erased = 0
    try:
        for customer_id in sorted({r.customer_id for r in suppressed}):
            erased += log.erase(customer_id, until=suppression.erased_at(customer_id))
    except Exception as exc:  # the store went away, say: the records stay until the next run
        return Sweep(erased, f"{type(exc).__name__}: {exc}")
    return Sweep(erased)


class Compaction(msgspec.Struct, frozen=True):
    """What a run moved from live to the archive before it read the live records."""

    moved: int = 0
    error: str | None = None


def compact_held(
    log: LiveLog[R],
    holds: Callable[[list[R]], Sequence[bool]] | None,
    *,
    now: dt.datetime,
    retention_days: float,
) -> Compaction:
    """Move to the archive the live records of one kind the active version holds (`holds`; None:
    there is no active version, nothing moves), and those no version has taken in
    `retention_days` after they came in (their customer or product is not in the shop's data).

    Done at the start of a run, so the version that holds them has been served for a while: every
    worker has loaded it, and the service shows the same numbers after the move as before (it
    skips live records its version holds). Failing does not fail the run: they stay live, the
    record says why and the next run moves them.
    """
    if holds is None:
        return Compaction()
    try:
        live = list(log.iter_live())
        if not live:
            return Compaction()
        stale = now - dt.timedelta(days=retention_days)
        moving = [r for r, h in zip(live, holds(live), strict=True) if h or r.received_at < stale]
        return Compaction(log.compact(moving) if moving else 0)
    except Exception as exc:  # the store went away, say: the records stay live until next time
        return Compaction(error=f"{type(exc).__name__}: {exc}")


def compact_held_responses(
    store: Store, active: ActiveModel | None, *, now: dt.datetime, retention_days: float
) -> Compaction:
    """`compact_held` for the NPS answers: those whose response id the version's answers hold."""

    def holds(live: list[LiveResponse]) -> Sequence[bool]:
        if active is None or active.responses is None:
            return [False] * len(live)
        return active.responses.holds([r.response_id for r in live])

    return compact_held(
        store.answers, holds if active else None, now=now, retention_days=retention_days
    )


def compact_held_orders(
    store: Store, active: ActiveModel | None, *, now: dt.datetime, retention_days: float
) -> Compaction:
    """`compact_held` for the order lines: the revisions the version took in."""

    def holds(live: list[LiveOrderLine]) -> Sequence[bool]:
        if active is None or active.orders is None:
            return [False] * len(live)
        return active.orders.holds_lines([r.key for r in live])

    return compact_held(
        store.orders, holds if active else None, now=now, retention_days=retention_days
    )


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


# --- live order lines ---------------------------------------------------------------------------


class OrderMerge(msgspec.Struct, frozen=True, kw_only=True):
    """The run's orders with the live lines added, and what became of the live lines."""

    orders: pl.LazyFrame  # the batch's lines, then the live ones the batch lacks
    intake: LiveIntake
    held: list[str]  # revision keys of the lines merged or superseded by the batch
    quarantined: pl.DataFrame  # lines of unknown customers or products, with the reason


def _lines_frame(lines: Sequence[LiveOrderLine], schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame(
        {
            c.LINE_ID: [r.line_id for r in lines],
            c.ORDER_ID: [r.order_id for r in lines],
            c.CUSTOMER_ID: [r.customer_id for r in lines],
            c.PRODUCT_ID: [r.product_id for r in lines],
            c.QUANTITY: [r.quantity for r in lines],
            c.UNIT_PRICE: [r.unit_price for r in lines],
            c.ORDERED_AT: [naive_utc(r.ordered_at) for r in lines],
            c.PROMISED_DELIVERY_AT: [
                naive_utc(r.promised_delivery_at) if r.promised_delivery_at else None for r in lines
            ],
            c.DELIVERED_AT: [naive_utc(r.delivered_at) if r.delivered_at else None for r in lines],
            c.STATUS: [r.status for r in lines],
        },
        schema=schema,
    )


def merge_live_orders(
    lines: Sequence[LiveOrderLine],
    orders: pl.LazyFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    *,
    since: dt.datetime | None = None,
) -> OrderMerge:
    """Add the live order lines (`read_live(store.orders)`: every revision) to the run's `orders`.

    Each line counts in its current revision (the one received last). The shop's files win: a
    line whose `line_id` the batch has, or whose `order_id` the batch has, is dropped (the shop's
    export holds that order now, perhaps in another split into lines). A line of a customer or
    product the validated tables lack is quarantined like any orphan row: not merged, and left
    live (not held) until a run knows them or the retention moves it.
    """
    intake = LiveIntake(stored=len(lines))
    schema = orders.collect_schema()
    if not lines:
        return OrderMerge(orders=orders, intake=intake, held=[], quarantined=_quarantine(schema))
    intake.received_until = max(r.received_at for r in lines).isoformat()
    if since is not None:
        intake.new_since_last_run = sum(r.received_at > since for r in lines)
    current = _lines_frame(latest_revisions(lines), schema)
    batch = orders.select(c.LINE_ID, c.ORDER_ID)
    in_batch = (
        current.join(
            batch.select(c.LINE_ID).drop_nulls().unique().collect(), on=c.LINE_ID, how="semi"
        )
        .vstack(
            current.join(batch.select(c.ORDER_ID).unique().collect(), on=c.ORDER_ID, how="semi")
        )[c.LINE_ID]
        .unique()
    )
    fresh = current.filter(~pl.col(c.LINE_ID).is_in(in_batch.implode()))
    reason = (
        pl.when(~pl.col(c.CUSTOMER_ID).is_in(customers[c.CUSTOMER_ID].implode()))
        .then(pl.format("orphan: customer_id '{}' not in customers", pl.col(c.CUSTOMER_ID)))
        .when(~pl.col(c.PRODUCT_ID).is_in(products[c.PRODUCT_ID].implode()))
        .then(pl.format("orphan: product_id '{}' not in products", pl.col(c.PRODUCT_ID)))
    )
    checked = fresh.with_columns(reason.alias(c.REJECT_REASON))
    merged = checked.filter(pl.col(c.REJECT_REASON).is_null()).drop(c.REJECT_REASON)
    orphans = checked.filter(pl.col(c.REJECT_REASON).is_not_null())
    intake.in_batch = in_batch.len()
    intake.unknown_customer = orphans.filter(
        pl.col(c.REJECT_REASON).str.contains("customer_id")
    ).height
    intake.unknown_product = orphans.height - intake.unknown_customer
    intake.merged = merged.height
    taken = set(merged[c.LINE_ID].to_list()) | set(in_batch.to_list())
    held = [r.key for r in lines if r.line_id in taken]
    frames = [orders, merged.lazy()] if merged.height else [orders]
    return OrderMerge(
        orders=pl.concat(frames, how="vertical"),
        intake=intake,
        held=held,
        quarantined=orphans,
    )


def _quarantine(schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame(schema={**schema, c.REJECT_REASON: pl.String})
