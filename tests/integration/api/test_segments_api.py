"""Customer profiles, segment listing, segment exports and the segment membership history over
HTTP, on two versions published by the real training pipeline (demo data; the second run turns
some promoters into detractors and drops a customer, so segment memberships differ between the
versions)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from recsvc.api.app import create_app
from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain import times
from recsvc.domain.nps import nps_from_counts
from recsvc.domain.segments.catalog import load_segments
from recsvc.store import RedisStore, Store
from recsvc.store.files import ACTIVE, FileStore
from recsvc.version.profiles import SERVING_FILES
from tests.api_support import STORE_KINDS, client_for, delete_prefix, settings
from training.config import load_config
from training.run.pipeline import run_pipeline
from training.sources.generate import generate

TURNED = 40  # promoters whose answers the second run rewrites to 2


@dataclass(frozen=True)
class Versions:
    store: FileStore
    old: str
    new: str

    def table(self, version: str) -> pl.DataFrame:
        return pl.read_parquet(self.store.version_dir(version) / "customers.parquet")


def _publish(data: Path, store_dir: Path, runs: Path) -> str:
    record = run_pipeline(
        data,
        store=f"file://{store_dir}",
        config=load_config(search_trials=0, epochs=3, components=8),
        runs_dir=runs,
        show_progress=False,
        force=True,  # the quality gate is not under test here
    )
    assert record.published and record.version is not None
    # The profile and segment files are part of the version: listed and hashed in its manifest.
    manifest = FileStore(store_dir).manifest(record.version)
    assert set(SERVING_FILES) <= set(manifest.files)
    return record.version


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    root = tmp_path_factory.mktemp("segments-api")
    first = root / "data-1"
    generate(first, 3000, seed=5, show_progress=False)
    store_dir = root / "store"
    old = _publish(first, store_dir, root / "runs-1")
    old_table = pl.read_parquet(FileStore(store_dir).version_dir(old) / "customers.parquet")

    second = root / "data-2"
    shutil.copytree(first, second)
    turned = (
        old_table.filter(pl.col(ct.NPS_CATEGORY) == "promoter")
        .sort(c.CUSTOMER_ID)
        .head(TURNED)[c.CUSTOMER_ID]
    )
    responses = pl.read_parquet(first / "nps_responses.parquet")
    responses.with_columns(
        pl.when(pl.col(c.CUSTOMER_ID).is_in(turned.implode()))
        .then(2)
        .otherwise(pl.col(c.SCORE))
        .alias(c.SCORE)
    ).write_parquet(second / "nps_responses.parquet")
    # Drop one customer who never ordered or answered: they leave every segment with the table.
    customers = pl.read_parquet(first / "customers.parquet")
    gone = _silent_customer(old_table)
    customers.filter(pl.col(c.CUSTOMER_ID) != gone).write_parquet(second / "customers.parquet")
    new = _publish(second, store_dir, root / "runs-2")
    assert new != old
    return Versions(FileStore(store_dir), old, new)


def _silent_customer(table: pl.DataFrame) -> str:
    silent = table.filter((pl.col(ct.ORDER_COUNT) == 0) & (pl.col(ct.NPS_RESPONSES) == 0)).sort(
        c.CUSTOMER_ID
    )
    return str(silent[c.CUSTOMER_ID][0])


def _app(versions: Versions, **settings_values: Any) -> Litestar:
    """The real app on the versions' store (the newer version active)."""
    return create_app(settings(versions.store, **settings_values), store=versions.store)


@pytest.fixture(scope="module")
def client(versions: Versions) -> Iterator[TestClient[Litestar]]:
    with TestClient(_app(versions)) as test_client:
        yield test_client


def _members(table: pl.DataFrame, segment: str) -> pl.DataFrame:
    return table.filter(pl.col(ct.SEGMENTS).list.contains(segment)).sort(c.CUSTOMER_ID)


# --- profiles --------------------------------------------------------------------------------------


def test_a_profile_shows_segments_nps_history_rfm_and_churn(
    client: TestClient[Litestar], versions: Versions
) -> None:
    table = versions.table(versions.new)
    row = table.filter(pl.col(ct.ORDER_COUNT) > 2, pl.col(ct.NPS_RESPONSES) > 1).row(0, named=True)
    response = client.get(f"/v1/customers/{row[c.CUSTOMER_ID]}")
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == versions.new
    assert body["primary_segment"] == row[ct.PRIMARY_SEGMENT]
    assert body["segments"] == row[ct.SEGMENTS]
    assert body["nps"]["responses"] == row[ct.NPS_RESPONSES]
    assert body["nps"]["latest_score"] == row[ct.NPS_SCORE]
    assert body["nps"]["latest_category"] == row[ct.NPS_CATEGORY]
    assert body["rfm"]["segment"] == row[ct.RFM_SEGMENT]
    assert body["rfm"]["last_order_at"] == times.iso(row[ct.LAST_ORDER_AT])  # UTC, with a Z
    assert body["churn"]["risk"] == pytest.approx(row[ct.CHURN_RISK])
    assert body["churn"]["level"] == row[ct.CHURN_RISK_LEVEL]
    attributes = body["attributes"]
    assert set(attributes) == set(table.columns)
    assert attributes[c.SIGNUP_DATE] == row[c.SIGNUP_DATE].isoformat()
    assert attributes[ct.FAVOURITE_CATEGORIES] == row[ct.FAVOURITE_CATEGORIES]


def test_an_unknown_customer_is_a_json_404(client: TestClient[Litestar]) -> None:
    response = client.get("/v1/customers/NOBODY")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "NOBODY" in response.json()["detail"]


def test_a_live_answer_changes_the_profile_before_the_nightly_run(
    versions: Versions, tmp_path: Path
) -> None:
    """The intake's answer, stored, read back by the profile route: the customer is a detractor
    now, in a detractor segment, before any training run."""
    store = FileStore(tmp_path / "store")
    shutil.copytree(versions.store.root, store.root)
    table = versions.table(versions.new)
    customer = str(table.filter(pl.col(ct.NPS_CATEGORY) == "promoter")[c.CUSTOMER_ID][0])
    answer = {
        "response_id": "live-profile-1",
        "customer_id": customer,
        "score": 2,
        "responded_at": times.iso(times.now()),
        "touchpoint": "post_delivery",
    }
    with TestClient(create_app(settings(store), store=store)) as test_client:
        assert test_client.post("/v1/nps-responses", json=answer).status_code == 202
        body = test_client.get(f"/v1/customers/{customer}").json()
    assert body["nps"]["latest_score"] == 2 and body["nps"]["latest_category"] == "detractor"
    assert body["primary_segment"] in body["segments"]
    assert "detractor" in body["primary_segment"]


# --- segments --------------------------------------------------------------------------------------


def test_segments_list_definitions_sizes_and_nps_with_margin(
    client: TestClient[Litestar], versions: Versions
) -> None:
    table = versions.table(versions.new)
    body = client.get("/v1/segments").json()
    assert body["model_version"] == versions.new and body["customers"] == table.height
    rules = load_segments(extra_columns=["loyalty_member", "acquisition_channel"])
    assert [s["name"] for s in body["segments"]] == list(rules.names)
    for segment in body["segments"]:
        members = _members(table, segment["name"])
        assert segment["size"] == members.height
        assert segment["expression"] == rules.get(segment["name"]).expression
        counts = members[ct.NPS_CATEGORY].value_counts()
        count = dict(zip(counts[ct.NPS_CATEGORY], counts["count"], strict=True))
        expected = nps_from_counts(
            count.get("promoter", 0), count.get("passive", 0), count.get("detractor", 0)
        )
        assert segment["nps"]["n"] == expected.n
        assert segment["nps"]["margin_of_error"] == pytest.approx(expected.margin_of_error)


def test_a_csv_export_streams_every_member_with_the_default_columns(
    client: TestClient[Litestar], versions: Versions
) -> None:
    members = _members(versions.table(versions.new), "detractors")
    response = client.get("/v1/segments/detractors/members")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="segment-detractors-{versions.new}.csv"'
    )
    assert response.headers["x-row-count"] == str(members.height)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == [
        "customer_id",
        "primary_segment",
        "nps_category",
        "rfm_segment",
        "churn_risk",
        "last_order_at",
    ]
    assert [r["customer_id"] for r in rows] == members[c.CUSTOMER_ID].to_list()
    assert {r["nps_category"] for r in rows} == {"detractor"}
    first = members.row(0, named=True)
    assert rows[0]["rfm_segment"] == (first[ct.RFM_SEGMENT] or "")


def test_ndjson_and_parquet_exports_carry_the_asked_for_fields(
    client: TestClient[Litestar], versions: Versions
) -> None:
    members = _members(versions.table(versions.new), "champions")
    fields = "country,favourite_categories,last_delivery_late,monetary_value,signup_date"
    ndjson = client.get(f"/v1/segments/champions/members?format=ndjson&fields={fields}")
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in ndjson.text.splitlines()]
    assert len(lines) == members.height
    assert list(lines[0]) == ["customer_id", *fields.split(",")]
    expected = members.row(0, named=True)
    assert lines[0]["favourite_categories"] == expected[ct.FAVOURITE_CATEGORIES]
    assert lines[0]["monetary_value"] == pytest.approx(expected[ct.MONETARY_VALUE])

    parquet = client.get(f"/v1/segments/champions/members?format=parquet&fields={fields}")
    assert parquet.headers["content-disposition"].endswith(f'{versions.new}.parquet"')
    frame = pl.read_parquet(io.BytesIO(parquet.content))
    columns = ["customer_id", *fields.split(",")]
    assert frame.equals(members.select(columns))


def test_the_change_since_an_earlier_version_lists_who_entered_and_who_left(
    client: TestClient[Litestar], versions: Versions
) -> None:
    old_ids = set(_members(versions.table(versions.old), "detractors")[c.CUSTOMER_ID])
    new_ids = set(_members(versions.table(versions.new), "detractors")[c.CUSTOMER_ID])
    assert len(new_ids - old_ids) >= TURNED // 2  # the rewritten promoters are detractors now
    response = client.get(f"/v1/segments/detractors/members?since_version={versions.old}")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        f'attachment; filename="segment-detractors-{versions.new}-since-{versions.old}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["customer_id"] for r in rows if r["change"] == "entered"} == new_ids - old_ids
    assert {r["customer_id"] for r in rows if r["change"] == "exited"} == old_ids - new_ids
    assert len(rows) == int(response.headers["x-row-count"])


def test_a_customer_gone_from_the_new_version_exits_with_their_last_known_row(
    client: TestClient[Litestar], versions: Versions
) -> None:
    gone = _silent_customer(versions.table(versions.old))
    response = client.get(
        f"/v1/segments/never_purchased/members?format=ndjson&since_version={versions.old}"
    )
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert {"customer_id": gone, "change": "exited"}.items() <= next(
        line for line in lines if line["customer_id"] == gone
    ).items()
    assert (
        next(line for line in lines if line["customer_id"] == gone)[ct.PRIMARY_SEGMENT]
        == "never_purchased"
    )


@pytest.mark.parametrize(
    ("url", "status", "names"),
    [
        ("/v1/segments/nobody/members", 404, "nobody"),
        ("/v1/segments/detractors/members?format=xml", 400, "format"),
        ("/v1/segments/detractors/members?fields=customer_id,secret", 400, "fields"),
        ("/v1/segments/detractors/members?since_version=../../etc", 400, "since_version"),
        ("/v1/segments/detractors/members?since_version=.hidden", 400, "since_version"),
        ("/v1/segments/detractors/members?since_version=20200101T000000Z-0000", 404, "version"),
        ("/v1/segments/..%2F..%2Fetc/members", 404, ""),
        ("/v1/segments/%2e%2e/members", 404, ""),
        ("/v1/customers/..%2Fmanifest.json", 404, ""),
    ],
)
def test_bad_requests_are_json_errors_naming_the_problem(
    client: TestClient[Litestar], url: str, status: int, names: str
) -> None:
    response = client.get(url)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert names in body["detail"]


def test_segment_routes_need_the_export_scope_when_keys_are_configured(
    versions: Versions,
) -> None:
    shop, crm = "shop-key-0123456789", "crm-key-0123456789"
    app = _app(versions, api_keys={shop: ["recommend"], crm: ["export"]})
    with TestClient(app) as test_client:
        assert test_client.get("/v1/segments").status_code == 401
        denied = test_client.get("/v1/segments", headers={"X-API-Key": shop})
        assert denied.status_code == 403
        allowed = test_client.get("/v1/segments/detractors/members", headers={"X-API-Key": crm})
        assert allowed.status_code == 200


# --- the membership history ----------------------------------------------------------------------

Spell = tuple[str, str, dt.datetime, dt.datetime | None, str, str | None]


@pytest.fixture(params=STORE_KINDS)
def history_store(
    request: pytest.FixtureRequest, versions: Versions, tmp_path: Path
) -> Iterator[Store]:
    """Both versions in a store of each kind, the newer one active: a copy of the training runs'
    own file store (its membership journal written by their publishes), or a Redis store given
    the two versions by publishes."""
    if request.param == "file":
        shutil.copytree(versions.store.root, tmp_path / "store")
        yield FileStore(tmp_path / "store")
        return
    redis_url = request.getfixturevalue("redis_url")
    prefix = f"recsvc-test-{uuid.uuid4().hex[:12]}"
    store = RedisStore(redis_url, prefix=prefix, cache_dir=tmp_path / "cache")
    try:
        for version in (versions.old, versions.new):
            store.publish(versions.store.version_dir(version))
        yield store
    finally:
        store.close()
        delete_prefix(redis_url, prefix)


def _history(client: TestClient[Litestar], fmt: str = "csv", **params: str) -> list[Spell]:
    reply = client.get("/v1/segments/memberships", params={"format": fmt, **params})
    assert reply.status_code == 200, reply.text
    if fmt == "parquet":
        rows = pl.read_parquet(io.BytesIO(reply.content)).to_dicts()
    elif fmt == "ndjson":
        rows = [json.loads(line) for line in reply.text.splitlines()]
    else:
        rows = [
            {k: v or None for k, v in r.items()} for r in csv.DictReader(io.StringIO(reply.text))
        ]

    def moment(value: Any) -> dt.datetime | None:
        return times.parse_iso(value) if isinstance(value, str) else value

    return [
        (
            r["segment"],
            r["customer_id"],
            moment(r["entered_at"]) or times.EPOCH,
            moment(r["exited_at"]),
            r["entered_version"],
            r["exited_version"],
        )
        for r in rows
    ]


def _open(spells: list[Spell]) -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for segment, customer, _, exited_at, _, _ in spells:
        if exited_at is None:
            members.setdefault(segment, set()).add(customer)
    return members


def _by_key(spells: list[Spell]) -> dict[tuple[str, str], list[Spell]]:
    """Each (segment, customer)'s spells, in the history's order."""
    keyed: dict[tuple[str, str], list[Spell]] = {}
    for spell in spells:
        keyed.setdefault((spell[0], spell[1]), []).append(spell)
    return keyed


def _memberships(table: pl.DataFrame) -> dict[str, set[str]]:
    members: dict[str, set[str]] = {}
    for customer, segments in zip(table[c.CUSTOMER_ID], table[ct.SEGMENTS], strict=True):
        for segment in segments:
            members.setdefault(segment, set()).add(customer)
    return members


def test_the_membership_history_follows_publishes_a_rollback_and_an_erasure(
    history_store: Store, versions: Versions
) -> None:
    old, new = (
        _memberships(versions.table(versions.old)),
        _memberships(versions.table(versions.new)),
    )
    with client_for(history_store) as client:
        published = _history(client)
        assert _open(published) == new  # the open spells are the active version's members
        assert {s[4] for s in published} == {versions.old, versions.new}

        rolled = client.post(f"/v1/models/{versions.old}/activate")
        assert rolled.status_code == 200, rolled.text
        reply = client.get("/v1/segments/memberships")
        assert reply.headers["x-model-version"] == versions.old
        assert reply.headers["x-membership-seq"] == "3"
        assert reply.headers["content-disposition"] == (
            f'attachment; filename="memberships-{versions.old}.csv"'
        )
        history = _history(client)
        assert _history(client, "ndjson") == history == _history(client, "parquet")
        assert _open(history) == old
        rollback_at = max(s[3] or s[2] for s in history)
        now, then = _by_key(history), _by_key(published)
        for segment in old.keys() | new.keys():
            for customer in old.get(segment, set()) & new.get(segment, set()):
                # A member in both versions: the same one spell, nothing new.
                mine = now[segment, customer]
                assert mine == then[segment, customer] and len(mine) == 1 and mine[0][3] is None
            for customer in old.get(segment, set()) - new.get(segment, set()):
                # Left with the newer version, back with the rollback: a second spell.
                mine = now[segment, customer]
                assert [(s[3] is None, s[4], s[5]) for s in mine] == [
                    (False, versions.old, versions.new),
                    (True, versions.old, None),
                ]
                assert mine[1][2] == rollback_at
            for customer in new.get(segment, set()) - old.get(segment, set()):
                assert [(s[3], s[4], s[5]) for s in now[segment, customer]] == [
                    (rollback_at, versions.new, versions.old)
                ]
        since = _history(client, since=times.iso_micros(rollback_at))
        assert since and since == [s for s in history if rollback_at in (s[2], s[3])]
        assert _history(client, since=times.iso(times.now() + dt.timedelta(days=1))) == []

        # A pointer switch the journal never recorded (a crash): the next read records it.
        if isinstance(history_store, FileStore):
            (history_store.root / ACTIVE).write_text(versions.new + "\n")
        else:
            assert isinstance(history_store, RedisStore)
            history_store._client.set(f"{history_store.prefix}:active", versions.new)
        repaired = client.get("/v1/segments/memberships")
        assert repaired.headers["x-membership-seq"] == "4"
        assert _open(_history(client)) == new

        # An erased customer is gone, once their data export has shown their spells.
        customer = sorted(new["detractors"] - old["detractors"])[0]
        data = client.get(f"/v1/customers/{customer}/data").json()
        spells = [s for s in _history(client) if s[1] == customer]
        assert len(data["membership_history"]) == len(spells) >= 2
        holders = {h["name"]: h["records"] for h in data["holders"]}
        assert holders["membership_history"] == len(spells)
        erased = client.delete(f"/v1/customers/{customer}")
        assert erased.status_code == 202, erased.text
        assert erased.json()["removed"]["membership_spells"] == len(spells)
        assert customer not in {s[1] for s in _history(client)}
        assert client.get(f"/v1/customers/{customer}/data").json()["membership_history"] == []


@pytest.mark.parametrize(
    "since",
    [
        "2025-12-30T00:00:00",
        "2025-12-30",
        "yesterday",
        "2025-12-30T00:00:00 01:00",
        "9999-12-31T23:59:59-23:00",
    ],
)
def test_since_is_a_timestamp_with_a_time_zone(client: TestClient[Litestar], since: str) -> None:
    reply = client.get("/v1/segments/memberships", params={"since": since})
    assert reply.status_code == 400, reply.text
    assert reply.json()["detail"].startswith("since:")
