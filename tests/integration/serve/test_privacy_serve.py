"""A customer's erasure along the path a shop takes, through `recsvc serve` with two worker
processes and real training runs, on both stores:

answers and order lines go in over HTTP; the profile, the data export, the segment exports, the
segment list and the NPS summary show the customer; DELETE; then on every worker the customer is
unknown (cold start, no profile), absent from every export, segment count and summary vote; after
a restart still so; a training run on the shop's unchanged files leaves them out and counts the
suppressed rows; `recsvc privacy prune-versions` removes the older version that still holds them;
and a new answer dated after the erasure is taken in as a new relationship, while one dated before
is refused naming the erasure.

Then the erasure is killed (kill -9 of the whole server) while it runs, and repeating the DELETE
completes it.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import fnmatch
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import redis

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.privacy import NOT_PERSONAL, PERSONAL_DATA, Holder, customer_hash
from recsvc.store import FileStore, LiveResponse, RedisStore, Store, open_store
from recsvc.store.redis_live import as_text
from tests.integration.serve.test_orders_serve import line as order_line
from tests.integration.store.test_live_compaction import train as train_small
from tests.serving import Served, serve
from training.run.records import RunRecord
from training.sources.generate import generate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("privacy") / "data"
    generate(data, 600, seed=11, show_progress=False)
    return data


@pytest.fixture
def store_url(empty_store_url: str) -> str:
    return empty_store_url


def train(demo: Path, url: str, runs: Path) -> RunRecord:
    record = train_small(demo, url, runs)
    assert record.published and record.version, record
    return record


def now_iso(offset_seconds: float = 0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def answer(response_id: str, customer: str, score: int, when: str) -> dict[str, Any]:
    return {
        "response_id": response_id,
        "customer_id": customer,
        "score": score,
        "responded_at": when,
        "touchpoint": "post_delivery",
        "comment": "the parcel came late and damaged",
    }


def fresh(served: Served, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request on a new connection, so the workers answer in turn."""
    return httpx.request(method, served.base_url + path, timeout=30, **kwargs)


def members(served: Served, segment: str) -> set[str]:
    reply = fresh(served, "GET", f"/v1/segments/{segment}/members")
    assert reply.status_code == 200, reply.text
    return {row[c.CUSTOMER_ID] for row in csv.DictReader(io.StringIO(reply.text))}


def segment_sizes(served: Served) -> dict[str, int]:
    reply = fresh(served, "GET", "/v1/segments")
    assert reply.status_code == 200, reply.text
    return {s["name"]: s["size"] for s in reply.json()["segments"]}


def summary_n(served: Served) -> int:
    reply = fresh(served, "GET", "/v1/nps/summary")
    assert reply.status_code == 200, reply.text
    n: int = reply.json()["overall"]["n"]
    return n


def assert_unknown_everywhere(served: Served, customer: str, segments: list[str]) -> None:
    for _ in range(6):  # new connections: both workers answer
        profile = fresh(served, "GET", f"/v1/customers/{customer}")
        assert profile.status_code == 404, profile.text
        recs = fresh(served, "GET", f"/v1/customers/{customer}/recommendations")
        assert recs.status_code == 200, recs.text
        assert recs.json()["cold_start"] is True and recs.json()["known_customer"] is False
        offers = fresh(served, "GET", f"/v1/customers/{customer}/offers")
        assert offers.status_code == 200, offers.text
        assert offers.json()["nps_category"] == "unknown"
    for segment in segments:
        assert customer not in members(served, segment)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECSVC_")}
    return subprocess.run(
        [sys.executable, "-m", "recsvc", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def unclaimed(store: Store) -> list[str]:
    """The store's files (file store) or keys (Redis) that neither a personal-data holder nor a
    non-personal entry of the registry claims."""
    patterns = [p for holder in PERSONAL_DATA for p in _where(holder, store)] + [
        p for files, keys in NOT_PERSONAL.values() for p in (files if _is_file(store) else keys)
    ]
    if isinstance(store, FileStore):
        found = [p.relative_to(store.root).as_posix() for p in store.root.rglob("*")]
        return [name for name in found if not any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    assert isinstance(store, RedisStore)
    # The store's own client: on a cluster, it scans every node.
    found_keys = store._client.scan_iter(match=f"{store.prefix}:*", count=1000)
    keys = [as_text(k) for k in found_keys]
    patterns = [p.replace("{prefix}", store.prefix) for p in patterns]
    return [key for key in keys if not any(fnmatch.fnmatchcase(key, p) for p in patterns)]


def _is_file(store: Store) -> bool:
    return isinstance(store, FileStore)


def _where(holder: Holder, store: Store) -> tuple[str, ...]:
    return holder.file_store if _is_file(store) else holder.redis


@pytest.mark.slow
def test_an_erased_customer_is_gone_from_every_worker_restart_and_run(
    demo: Path, store_url: str, tmp_path: Path
) -> None:
    store: Store = open_store(store_url)
    # Another customer's live records, which the first run merges and the second archives: the
    # store then holds every kind of data it can (for the registry check at the end).
    other = pl.read_parquet(demo / "customers.parquet")[c.CUSTOMER_ID][-1]
    late_2025 = dt.datetime(2025, 12, 31, 20, tzinfo=dt.UTC)
    store.answers.add(
        [
            LiveResponse(
                response_id="other-1",
                customer_id=other,
                score=9,
                responded_at=late_2025,
                touchpoint="post_delivery",
                comment="great",
                received_at=late_2025,
            )
        ]
    )
    first = train(demo, store_url, tmp_path / "runs")
    table = store.open(first.version or "").profiles
    customers = pl.read_parquet(demo / "customers.parquet")[c.CUSTOMER_ID].to_list()
    # An answered customer in a segment, and their segments.
    customer, segments = "", []
    for candidate in customers:
        index = table.index_of(candidate)
        if index is None:
            continue
        record = table.record(index)
        if record.get(ct.NPS_RESPONSES) and record.get(ct.SEGMENTS):
            customer, segments = candidate, list(record[ct.SEGMENTS])
            break
    assert customer
    product = pl.read_parquet(demo / "products.parquet")[c.PRODUCT_ID][0]
    env = {"RECSVC_STORE": store_url, "RECSVC_LOG_LEVEL": "warning", "RECSVC_RELOAD_SECONDS": "0.2"}

    with serve(tmp_path, env, workers=2) as served:
        taken = fresh(
            served, "POST", "/v1/nps-responses", json=[answer("p-1", customer, 2, now_iso(-60))]
        )
        assert taken.status_code == 202 and taken.json()["accepted"] == 1, taken.text
        taken = fresh(
            served, "POST", "/v1/orders", json=[order_line("p-l1", customer, product, now_iso(-60))]
        )
        assert taken.status_code == 202 and taken.json()["accepted"] == 1, taken.text
        for route, body in (
            ("sent", {"sends": [{"customer_id": customer, "touchpoint": "relationship"}]}),
            ("declined", {"declines": [{"customer_id": customer, "touchpoint": "relationship"}]}),
        ):
            taken = fresh(served, "POST", f"/v1/surveys/{route}", json=body)
            assert taken.status_code == 200 and taken.json()["recorded"] == 1, taken.text
        assert fresh(served, "GET", f"/v1/customers/{customer}").status_code == 200
        data = fresh(served, "GET", f"/v1/customers/{customer}/data").json()
        assert [a["response_id"] for a in data["nps_answers"]] == ["p-1"]
        assert data["nps_answers"][0]["comment"] == "the parcel came late and damaged"
        assert [x["line_id"] for x in data["order_lines"]] == ["p-l1"]
        assert data["profile"]["customer_id"] == customer
        assert data["version_nps_answers"], "the version's answers of the customer"
        assert [h["version"] for h in data["segment_history"]] == [first.version]
        holders = {h["name"]: h["records"] for h in data["holders"]}
        assert holders["live_answers"] == 1 and holders["live_orders"] == 1
        assert holders["archived_answers"] == 0 and holders["versions"] == 1
        assert holders["webhook_outbox"] == 0  # no destination configured here
        for segment in segments:
            assert customer in members(served, segment)
        sizes_before, n_before = segment_sizes(served), summary_n(served)

        erased = fresh(served, "DELETE", f"/v1/customers/{customer}")
        assert erased.status_code == 202, erased.text
        receipt = erased.json()
        assert receipt["state"] == "completed"
        assert receipt["customer_hash"] == customer_hash(customer)
        # Their spells in the first version's segments leave the membership history.
        assert receipt["removed"] == {
            "answers": 1,
            "order_lines": 1,
            "membership_spells": len(segments),
            "webhook_events": 0,  # no webhook destination here (tests/integration/api: with one)
            "experiment_exposures": 0,
            "survey_contacts": 2,  # the send and the decline
        }
        assert customer not in erased.text.replace(f"/v1/customers/{customer}", "")

        assert_unknown_everywhere(served, customer, segments)
        sizes_after = segment_sizes(served)
        for name, size in sizes_before.items():
            assert sizes_after[name] == size - (name in segments), name
        assert summary_n(served) == n_before - 1  # their vote (the live detractor answer) is gone
        data = fresh(served, "GET", f"/v1/customers/{customer}/data").json()
        assert data["profile"] is None and not data["nps_answers"] and not data["order_lines"]
        assert data["masked_in_versions"] == [first.version]
        log = fresh(served, "GET", "/v1/privacy/erasures").json()
        assert [e["state"] for e in log["entries"]] == ["completed", "started"]
        assert customer not in str(log)
        # Idempotent: again, nothing left to remove.
        again = fresh(served, "DELETE", f"/v1/customers/{customer}")
        assert again.status_code == 202 and again.json()["removed"] == {
            "answers": 0,
            "order_lines": 0,
            "membership_spells": 0,
            "webhook_events": 0,
            "experiment_exposures": 0,
            "survey_contacts": 0,
        }
        # Old data sent again is refused, naming the erasure.
        late = fresh(
            served, "POST", "/v1/nps-responses", json=[answer("p-2", customer, 3, now_iso(-3600))]
        )
        assert late.status_code == 400 and "erased" in late.text, late.text

    with serve(tmp_path, env, workers=2) as served:  # a restart: still gone
        assert_unknown_everywhere(served, customer, segments)
        assert summary_n(served) == n_before - 1
        assert "Traceback" not in served.output(), served.output()

    second = train(demo, store_url, tmp_path / "runs")  # the shop's files still hold them
    assert second.suppressed.get("customers") == 1
    assert second.suppressed.get("nps_responses", 0) >= 1
    assert second.suppressed.get("orders", 0) >= 1
    newest = store.open(second.version or "")
    assert newest.profiles.index_of(customer) is None
    assert newest.loaded.customer_index(customer) is None

    with serve(tmp_path, env, workers=2) as served:
        assert_unknown_everywhere(served, customer, segments)
        data = fresh(served, "GET", f"/v1/customers/{customer}/data").json()
        assert data["masked_in_versions"] == [first.version]
        assert data["segment_history"] == []
        # A returning customer: an answer dated after the erasure is a new relationship.
        back = fresh(
            served, "POST", "/v1/nps-responses", json=[answer("p-3", customer, 10, now_iso())]
        )
        assert back.status_code == 202 and back.json()["accepted"] == 1, back.text
        data = fresh(served, "GET", f"/v1/customers/{customer}/data").json()
        assert [a["response_id"] for a in data["nps_answers"]] == ["p-3"]
        offers = fresh(served, "GET", f"/v1/customers/{customer}/offers").json()
        assert offers["nps_category"] == "promoter"

    pruned = cli("privacy", "prune-versions", env={"RECSVC_STORE": store_url})
    assert pruned.returncode == 0, pruned.stderr
    assert f"{first.version}  1 erased customer(s)  removed" in pruned.stdout
    assert first.version not in {v.version for v in store.list_versions()}
    listed = cli("privacy", "erasures", env={"RECSVC_STORE": store_url})
    assert listed.returncode == 0 and customer_hash(customer)[:16] in listed.stdout
    assert customer not in listed.stdout
    assert [r.response_id for r in store.answers.iter_archived()] == ["other-1"]
    assert unclaimed(store) == []
    store.close()


@pytest.mark.slow
def test_an_erasure_killed_half_way_completes_when_repeated(demo: Path, tmp_path: Path) -> None:
    """File store: the test holds the live order file's lock, so the erasure stops after the
    answers went and before the order lines go; the server is killed there."""
    url = f"file://{tmp_path / 'store'}"
    train(demo, url, tmp_path / "runs")
    store = FileStore(tmp_path / "store")
    product = pl.read_parquet(demo / "products.parquet")[c.PRODUCT_ID][0]
    customer = pl.read_parquet(demo / "customers.parquet")[c.CUSTOMER_ID][3]
    env = {"RECSVC_STORE": url, "RECSVC_LOG_LEVEL": "warning"}
    with serve(tmp_path, env, workers=2) as served:
        body = [answer(f"k-{i}", customer, 4, now_iso(-60)) for i in range(5)]
        assert fresh(served, "POST", "/v1/nps-responses", json=body).status_code == 202
        lines = [order_line(f"k-{i}", customer, product, now_iso(-60)) for i in range(5)]
        assert fresh(served, "POST", "/v1/orders", json=lines).status_code == 202
        fd = os.open(store.orders.live_path, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            reply: list[Any] = []
            thread = threading.Thread(
                target=lambda: reply.append(
                    _swallow(lambda: fresh(served, "DELETE", f"/v1/customers/{customer}"))
                )
            )
            thread.start()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not store.erasures.entries():
                time.sleep(0.02)
            assert [e.state for e in store.erasures.entries()] == ["started"]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and store.answers.of_customer(customer):
                time.sleep(0.02)
            os.killpg(served.process.pid, signal.SIGKILL)
            served.process.wait(timeout=15)
        finally:
            os.close(fd)
        thread.join(timeout=30)
        assert reply and isinstance(reply[0], Exception)  # the client never got its 202
    # Half-way: masked (the started entry), the answers gone, the order lines still stored.
    assert not store.answers.of_customer(customer)
    assert len(store.orders.of_customer(customer)) == 5
    assert store.live_of(customer).erased_at is not None
    spells = len(list(store.memberships.spells(customer_id=customer)))
    with serve(tmp_path, env, workers=2) as served:
        assert fresh(served, "GET", f"/v1/customers/{customer}").status_code == 404
        done = fresh(served, "DELETE", f"/v1/customers/{customer}")
        assert done.status_code == 202, done.text
        assert done.json()["removed"] == {
            "answers": 0,
            "order_lines": 5,
            "membership_spells": spells,
            "webhook_events": 0,
            "experiment_exposures": 0,
            "survey_contacts": 0,
        }
    assert not store.orders.of_customer(customer)
    assert not [x for x in store.orders.iter_live() if x.customer_id == customer]
    assert [e.state for e in store.erasures.entries()] == ["started", "started", "completed"]


def _swallow(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:
        return exc


@pytest.mark.slow
@pytest.mark.redis
def test_a_redis_erasure_killed_half_way_completes_when_repeated(
    demo: Path, tmp_path: Path, redis_server: Any
) -> None:
    """Redis: once the erasure's `started` entry is in the log, the test pauses the (private)
    server's writes, so the erasure stops at its next write (before its `completed` entry, with
    or without the customer's answers removed), and kills the service there."""
    server = redis_server(persistent=False)
    url = f"{server.url}?prefix=privacy-kill&cache_dir={tmp_path / 'cache'}"
    train(demo, url, tmp_path / "runs")
    store = open_store(url)
    assert isinstance(store, RedisStore)
    customer = pl.read_parquet(demo / "customers.parquet")[c.CUSTOMER_ID][3]
    # A large archive of others' answers: the erasure reads all of it before it removes anything.
    for start in range(0, 30_000, 10_000):
        others = [
            LiveResponse(
                response_id=f"other-{k}",
                customer_id=f"OTHER-{k % 997}",
                score=8,
                responded_at=dt.datetime(2025, 12, 1, tzinfo=dt.UTC),
                touchpoint="post_delivery",
                received_at=dt.datetime(2025, 12, 1, tzinfo=dt.UTC),
            )
            for k in range(start, start + 10_000)
        ]
        store.answers.add(others)
        store.answers.compact(others)
    env = {"RECSVC_STORE": url, "RECSVC_LOG_LEVEL": "warning"}
    client = redis.Redis.from_url(server.url)
    with serve(tmp_path, env, workers=1) as served:
        body = [answer(f"r-{i}", customer, 4, now_iso(-60)) for i in range(5)]
        assert fresh(served, "POST", "/v1/nps-responses", json=body).status_code == 202
        reply: list[Any] = []
        thread = threading.Thread(
            target=lambda: reply.append(
                _swallow(lambda: fresh(served, "DELETE", f"/v1/customers/{customer}"))
            )
        )
        thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not client.llen(store.erasures.log_key):
            time.sleep(0.0005)
        client.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
        try:
            time.sleep(0.3)  # the erasure reaches its first write and waits there
            os.killpg(served.process.pid, signal.SIGKILL)
            served.process.wait(timeout=15)
        finally:
            client.execute_command("CLIENT", "UNPAUSE")
        thread.join(timeout=30)
        assert reply and isinstance(reply[0], Exception)  # the client never got its 202
    assert [e.state for e in store.erasures.entries()] == ["started"]
    # Whatever the erasure had not removed yet: the list, the stream entries, the archive.
    left = len(
        {r.key for r in store.answers.of_customer(customer)}
        | {r.key for r in store.answers.iter_live() if r.customer_id == customer}
        | {r.key for r in store.answers.iter_archived() if r.customer_id == customer}
    )
    spells = len(list(store.memberships.spells(customer_id=customer)))
    with serve(tmp_path, env, workers=1) as served:
        assert fresh(served, "GET", f"/v1/customers/{customer}").status_code == 404  # masked
        done = fresh(served, "DELETE", f"/v1/customers/{customer}")
        assert done.status_code == 202, done.text
        assert done.json()["removed"] == {
            "answers": left,
            "order_lines": 0,
            "membership_spells": spells,
            "webhook_events": 0,
            "experiment_exposures": 0,
            "survey_contacts": 0,
        }
    assert not store.answers.of_customer(customer)
    assert not [r for r in store.answers.iter_live() if r.customer_id == customer]
    assert len(list(store.answers.iter_archived())) == 30_000  # nobody else's
    assert [e.state for e in store.erasures.entries()] == ["started", "started", "completed"]
    client.close()
    store.close()
