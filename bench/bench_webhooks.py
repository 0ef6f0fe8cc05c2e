"""Webhook delivery: throughput to a local receiver, the outbox's cost on a 1M-customer publish,
and what Redis' `appendfsync always` costs the outbox against `everysec`.

    uv run python bench/bench_webhooks.py                       # 1,000,000 customers
    uv run python bench/bench_webhooks.py --customers 100000 --events 2000

1. Throughput: `--events` detractor events queued in one destination's outbox (file store, and a
   private redis-server with AOF everysec, as docker-compose runs it), sent by the deliverer
   (`Deliverer.send_due`: head read, signed POST, head removal, in order) to a local HTTP/1.1
   keep-alive receiver that answers 204. Baseline in the same run: the same bodies POSTed in a bare
   loop by the same HTTP client to the same receiver (no store, no signature): the ceiling a
   sender in Python reaches there.
2. A publish at `--customers` (the artifact of bench_publish.py, cached under var/bench/publish/):
   `publish` into a fresh store (it appends the membership journal entry), then the deliverer's
   `fill` for one new destination taking every segment: each membership becomes an event, in
   batches of 500 ids (a first publish or a new destination; a nightly delta is the changed
   memberships only, a fraction of it). Events, seconds, outbox bytes.
3. `appendfsync always` against `everysec`: intake-sized appends (one detractor event each) to the
   outbox on two private redis-servers, alternating, medians of 3 rounds.
4. What queueing adds to the intake: `take_in` (check, store, queue) of one request holding one
   detractor answer, with one destination taking `nps.response.detractor` against none, on the
   file store and on Redis (everysec), alternating, medians of 3 rounds of `--appends` requests.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import msgspec
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_publish import artifact_for, redis_server  # noqa: E402

from recsvc.domain.webhooks import (  # noqa: E402
    DETRACTOR,
    DetractorResponse,
    OutboxEvent,
    event_id,
    new_event,
)
from recsvc.service.webhooks.delivery import Deliverer  # noqa: E402
from recsvc.service.webhooks.destinations import Destination, load_destinations  # noqa: E402
from recsvc.store import FileStore, RedisStore  # noqa: E402
from recsvc.store.base import Store  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-webhooks-secret-0123456789").decode()


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver behind a proxy

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


def destination(work: Path, url: str) -> Destination:
    os.environ["BENCH_WEBHOOK_SECRET"] = SECRET
    path = work / "webhooks.toml"
    path.write_text(
        f'[destinations.crm]\nurl = "{url}"\nsecret_env = "BENCH_WEBHOOK_SECRET"\n'
        "batch_size = 500\n"
    )
    (only,) = load_destinations(path)
    return only


def detractor_events(count: int, prefix: str) -> list[OutboxEvent]:
    now = "2026-12-01T10:00:00Z"
    return [
        new_event(
            DETRACTOR,
            DetractorResponse(
                response_id=f"{prefix}-{n}",
                customer_id=f"C{n % 5000:08d}",
                score=n % 7,
                responded_at=now,
                touchpoint="post_delivery",
                comment="the parcel came two days late and the box was torn",
            ),
            id=event_id("crm", prefix, n),
            created_at=now,
            customers=[f"C{n % 5000:08d}"],
        )
        for n in range(count)
    ]


def throughput(store: Store, target: Destination, events: int) -> float:
    """Events per second the deliverer sends from this store's outbox."""
    store.outbox.append("crm", detractor_events(events, f"t{time.monotonic_ns()}"))
    deliverer = Deliverer(store, [target])
    started = time.perf_counter()
    sent = 0
    while sent < events:
        sent += deliverer.send_due(target, limit=events)
    return events / (time.perf_counter() - started)


def bare_loop(url: str, events: int) -> float:
    bodies = [e.body.encode() for e in detractor_events(events, "bare")]
    with httpx.Client() as client:
        started = time.perf_counter()
        for body in bodies:
            client.post(url, content=body, headers={"content-type": "application/json"})
        return events / (time.perf_counter() - started)


def bench_throughput(work: Path, events: int) -> None:
    print(f"\n1. delivery throughput, {events:,} events to a local receiver (events/s)")
    with receiver() as url:
        target = destination(work, url)
        rows = []
        bare = bare_loop(url, events)
        file_rate = throughput(FileStore(work / "throughput-file"), target, events)
        with redis_server(work, "everysec") as redis_url:
            redis_store = RedisStore(redis_url, cache_dir=work / "cache")
            redis_rate = throughput(redis_store, target, events)
            redis_store.close()
        rows = [
            ("bare loop (same client and receiver, no store)", bare),
            ("deliverer, file store", file_rate),
            ("deliverer, Redis (AOF everysec)", redis_rate),
        ]
        for label, rate in rows:
            print(f"   {label:<48} {rate:>8,.0f}   {rate / bare:>5.0%} of bare")


def bench_publish(work: Path, customers: int) -> None:
    print(f"\n2. a publish at {customers:,} customers, then a new destination's events")
    artifact = artifact_for(customers)
    with receiver() as url:
        target = destination(work, url)
        for label, make in (
            ("file store", lambda: FileStore(work / "publish-file")),
            ("Redis (AOF everysec)", None),
        ):
            if make is None:
                with redis_server(work, "everysec") as redis_url:
                    store: Store = RedisStore(redis_url, cache_dir=work / "cache-publish")
                    _publish_and_fill(label, store, target, artifact)
                    used = redis.Redis.from_url(redis_url).info("memory")["used_memory"]
                    print(f"   {'':<22} Redis memory after: {used / 2**20:,.0f} MiB")
                    store.close()
            else:
                _publish_and_fill(label, make(), target, artifact)


def _publish_and_fill(label: str, store: Store, target: Destination, artifact: Path) -> None:
    started = time.perf_counter()
    store.publish(artifact)
    published = time.perf_counter() - started
    deliverer = Deliverer(store, [target])
    started = time.perf_counter()
    queued = deliverer.fill()
    filled = time.perf_counter() - started
    size = ""
    if isinstance(store, FileStore):
        outbox = store.root / "outbox" / "crm"
        total = sum(p.stat().st_size for p in outbox.glob("events-*.ndjson"))
        size = f", outbox {total / 2**20:,.0f} MiB"
    print(
        f"   {label:<22} publish (with the journal entry) {published:6.1f} s; "
        f"fill: {queued:,} events in {filled:5.1f} s{size}"
    )


def bench_fsync(work: Path, appends: int, rounds: int) -> None:
    print(f"\n3. Redis AOF: {appends:,} single-event outbox appends (appends/s), {rounds} rounds")
    with redis_server(work, "everysec") as everysec, redis_server(work, "always") as always:
        stores = {
            "everysec": RedisStore(everysec, cache_dir=work / "c1"),
            "always": RedisStore(always, cache_dir=work / "c2"),
        }
        rates: dict[str, list[float]] = {name: [] for name in stores}
        for round_ in range(rounds):
            for name, store in stores.items():
                events = detractor_events(appends, f"f{name}{round_}")
                started = time.perf_counter()
                for event in events:
                    store.outbox.append("crm", [event])
                rates[name].append(appends / (time.perf_counter() - started))
        for store in stores.values():
            store.close()
    every, always_rate = statistics.median(rates["everysec"]), statistics.median(rates["always"])
    print(
        f"   appendfsync everysec {every:>8,.0f}/s (rounds: {', '.join(f'{r:,.0f}' for r in rates['everysec'])})"
    )
    print(
        f"   appendfsync always   {always_rate:>8,.0f}/s (rounds: {', '.join(f'{r:,.0f}' for r in rates['always'])})"
    )
    print(f"   always / everysec    {always_rate / every:>8.0%}")


def bench_intake(work: Path, requests: int, rounds: int) -> None:
    from recsvc.api.intake.services import take_in
    from recsvc.domain import times

    print(f"\n4. intake of one detractor answer per request, {requests:,} requests (ms each)")
    with receiver() as url, redis_server(work, "everysec") as redis_url:
        target = destination(work, url)
        stores: dict[str, Store] = {
            "file store": FileStore(work / "intake-file"),
            "Redis (AOF everysec)": RedisStore(redis_url, cache_dir=work / "c3"),
        }
        for label, store in stores.items():
            timings: dict[str, list[float]] = {"no destination": [], "one destination": []}
            for round_ in range(rounds):
                for case, targets in (("no destination", []), ("one destination", [target])):
                    bodies = [
                        msgspec.json.encode(
                            {
                                "response_id": f"{case[:2]}-{round_}-{n}",
                                "customer_id": f"C{n:08d}",
                                "score": 3,
                                "responded_at": "2026-12-01T10:00:00Z",
                                "touchpoint": "post_delivery",
                            }
                        )
                        for n in range(requests)
                    ]
                    started = time.perf_counter()
                    for body in bodies:
                        take_in(body, store, times.now(), None, targets)
                    timings[case].append((time.perf_counter() - started) / requests * 1000)
            bare, queued = (statistics.median(timings[k]) for k in timings)
            print(
                f"   {label:<22} no destination {bare:6.3f} ms, one destination {queued:6.3f} ms "
                f"(+{queued - bare:.3f} ms, {queued / bare:.2f}x)"
            )
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--appends", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-publish", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as tmp:
        work = Path(tmp)
        bench_throughput(work, args.events)
        bench_fsync(work, args.appends, args.rounds)
        bench_intake(work, args.appends // 3, args.rounds)
        if not args.skip_publish:
            bench_publish(work, args.customers)
    print(f"\n(at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
