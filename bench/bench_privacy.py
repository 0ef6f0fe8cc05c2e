"""What privacy requests cost: the storefront's read of a customer's live state (which now also says
whether they were erased), a worker matching a version's customers against the erasure list, and
one erasure against a store holding many archived records.

    uv run python bench/bench_privacy.py
    uv run python bench/bench_privacy.py --customers 1000000 --archived 200000

1. `live_of` (what every recommendation reads) on both stores, against the same read without the
   erasure lookup (the two live logs' own reads: `answers.of_customer` + `orders.of_customer` on
   the file store, one pipeline of the two LRANGEs on Redis), measured in the same run,
   alternating, medians of 5 rounds. The store holds one erasure, so the lookup is live.
2. `ErasedRows.rows`: the first match of a version's N customers against the erasure list (once
   per version and worker, on the watcher's thread), and a repeat (cached).
3. One erasure (`erase_customer`) of a customer with 10 live and 10 archived answers, in a store
   whose archive holds `--archived` answers of other customers: its time is the archive scan.
4. The training run's validator on a generated shop of `--shop` customers, with an empty
   suppression list and with 100 erased customers (alternating, 3 rounds, medians): what the
   suppression adds to a run.

Stores live under var/bench/privacy/ and in Redis under a prefix of their own (deleted after).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recsvc.domain.live import LiveActivity, LiveResponse  # noqa: E402
from recsvc.domain.privacy import Erasure, Suppression, customer_hash  # noqa: E402
from recsvc.service.privacy import erase_customer  # noqa: E402
from recsvc.store import FileStore, RedisStore, Store  # noqa: E402
from recsvc.version.erased import ErasedRows  # noqa: E402

WORK = ROOT / "var" / "bench" / "privacy"
T0 = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def answers(customer: str, n: int, prefix: str) -> list[LiveResponse]:
    return [
        LiveResponse(
            response_id=f"{prefix}-{customer}-{k}",
            customer_id=customer,
            score=k % 11,
            responded_at=T0 + dt.timedelta(minutes=k),
            touchpoint="post_delivery",
            comment="fine" if k % 3 else None,
            received_at=T0 + dt.timedelta(minutes=k),
        )
        for k in range(n)
    ]


def per_call_us(call: Callable[[], object], seconds: float = 0.5) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            call()
        calls += 200
    return elapsed / calls * 1e6


def bare_read(store: Store, customer: str) -> Callable[[], object]:
    """`live_of` as it was before erasures existed (c25dea8), line for line: the two live logs'
    reads, without the erasure lookup."""
    if isinstance(store, RedisStore):

        def read() -> object:
            with store._reachable("reading live records"):
                pipe = store._client.pipeline(transaction=False)
                pipe.lrange(store.answers.keys.of_customer(customer)[0], 0, -1)
                pipe.lrange(store.orders.keys.of_customer(customer)[0], 0, -1)
                answers_raw, orders_raw = pipe.execute()
            return LiveActivity(
                store.answers.decode_all(answers_raw), store.orders.decode_all(orders_raw)
            )

        return read
    return lambda: LiveActivity(
        store.answers.of_customer(customer), store.orders.of_customer(customer)
    )


def live_read(store: Store, name: str) -> None:
    customer = "C0000042"
    store.answers.add(answers(customer, 3, "live"))
    store.erasures.append(
        Erasure(
            erasure_id="bench",
            customer_hash=customer_hash("someone-else"),
            erased_at=T0,
            requested_by="bench",
            state="started",
        )
    )
    with_lookup, without = [], []
    for _ in range(9):
        without.append(per_call_us(bare_read(store, customer)))
        with_lookup.append(per_call_us(lambda: store.live_of(customer)))
    a, b = statistics.median(with_lookup), statistics.median(without)
    print(
        f"  {name:<6} live_of {a:7.1f} us/call   without the erasure lookup {b:7.1f} us/call   "
        f"added {a - b:+6.1f} us ({(a / b - 1) * 100:+.1f}%)"
    )


def matching(customers: int) -> None:
    ids = np.array(sorted(f"C{i:08d}" for i in range(customers)))
    erased = {customer_hash(f"C{i:08d}"): T0 for i in range(0, customers, max(customers // 100, 1))}
    rows = ErasedRows(ids, as_of=None)
    suppression = Suppression(erased)
    start = time.perf_counter()
    found = rows.rows(suppression)
    first = time.perf_counter() - start
    start = time.perf_counter()
    rows.rows(suppression)
    again = time.perf_counter() - start
    print(
        f"  {customers:,} customers, {len(erased)} erasures: first match {first:.2f} s "
        f"({len(found)} rows), cached {again * 1e6:.1f} us"
    )


def erasure(store: Store, name: str, archived: int) -> None:
    target = "C-ERASED"
    batch: list[LiveResponse] = []
    for k in range(archived):
        batch.append(answers(f"C{k % 50_000:08d}", 1, f"a{k}")[0])
        if len(batch) == 20_000:
            store.answers.add(batch)
            store.answers.compact(batch)
            batch = []
    if batch:
        store.answers.add(batch)
        store.answers.compact(batch)
    mine = answers(target, 10, "old")
    store.answers.add(mine)
    store.answers.compact(mine)
    store.answers.add(answers(target, 10, "new"))
    start = time.perf_counter()
    done = erase_customer(store, target, requested_by="bench", now=dt.datetime.now(dt.UTC))
    took = time.perf_counter() - start
    assert done.removed["answers"] == 20, done.removed
    print(f"  {name:<6} erasure with {archived:,} archived answers: {took:.2f} s")


def validation(customers: int) -> None:
    from training.sources.generate import generate
    from training.validate.dataset import validate_dataset

    data = WORK / "shop"
    generate(data, customers, seed=3, show_progress=False)
    erased = Suppression(
        {
            customer_hash(f"C{i:08d}"): dt.datetime.now(dt.UTC)
            for i in range(1, customers, customers // 100)
        }
    )
    timings: dict[str, list[float]] = {"empty list": [], "100 erased": []}
    suppressed = 0
    for _ in range(3):
        for name, suppression in (("empty list", Suppression()), ("100 erased", erased)):
            start = time.perf_counter()
            result = validate_dataset(
                data, WORK / "validation", show_progress=False, suppression=suppression
            )
            timings[name].append(time.perf_counter() - start)
            if suppression:
                suppressed = sum(t.suppressed for t in result.report.tables)
    empty, some = (statistics.median(v) for v in timings.values())
    print(
        f"  {customers:,} customers: empty list {empty:.2f} s, 100 erased {some:.2f} s "
        f"({suppressed:,} rows suppressed), added {some - empty:+.2f} s ({(some / empty - 1) * 100:+.0f}%)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--archived", type=int, default=200_000)
    parser.add_argument("--shop", type=int, default=100_000, help="customers of the shop validated")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    prefix = f"bench-privacy-{uuid.uuid4().hex[:8]}"
    stores: list[tuple[str, Store]] = [("file", FileStore(WORK / "store"))]
    try:
        redis.Redis.from_url(args.redis).ping()
        stores.append(("redis", RedisStore(args.redis, prefix=prefix, cache_dir=WORK / "cache")))
    except redis.RedisError as exc:
        print(f"(no Redis at {args.redis}: {exc}; the file store only)")
    try:
        print("1. the storefront's live read, with and without the erasure lookup:")
        for name, store in stores:
            live_read(store, name)
        print("2. a worker matching a version's customers against the erasure list:")
        matching(args.customers)
        print("3. one erasure, against a large archive:")
        for name, store in stores:
            erasure(store, name, args.archived)
        print("4. the training run's validator, with and without erased customers:")
        validation(args.shop)
    finally:
        for _, store in stores:
            store.close()
        client = redis.Redis.from_url(args.redis)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        except redis.RedisError:
            pass
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
