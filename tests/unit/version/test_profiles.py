"""Profile and segment files on a five-customer table: what training writes, what the service reads,
and the export logic on top (fields, formats, chunking, the change between two versions)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recsvc.api.customers.services import customer_profile
from recsvc.domain.nps import nps_from_counts
from recsvc.domain.segments.catalog import SegmentRules, parse_segments
from recsvc.errors import ArtifactError, InvalidRequest, NotFoundError
from recsvc.service.exports import plan as exports
from recsvc.service.exports.base import ENTERED, EXITED
from recsvc.service.exports.plan import plan_export, segment_changes
from recsvc.version.profiles import SERVING_FILES, Profiles
from training.customers.segments import assign_segments
from training.publish.profiles import write_serving_tables

RULES_TOML = """
[segments.detractors]
priority = 90
description = "Latest answer 0-6."
expression = "nps_category == 'detractor'"

[segments.big_spenders]
priority = 50
expression = "monetary_value >= 100"

[segments.late_and_unhappy]
expression = "last_delivery_late and nps_category != 'promoter'"
"""


def _rules() -> SegmentRules:
    return parse_segments([("test.toml", RULES_TOML)])


def _table(rows: list[dict[str, object]]) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows,
        schema={
            "customer_id": pl.String,
            "signup_date": pl.Date,
            "nps_category": pl.String,
            "nps_score": pl.Int64,
            "monetary_value": pl.Float64,
            "last_order_at": pl.Datetime("us"),
            "favourite_categories": pl.List(pl.String),
            "last_delivery_late": pl.Boolean,
            "churn_risk": pl.Float64,
        },
    )
    return assign_segments(frame.lazy(), _rules()).collect()


ROWS: list[dict[str, object]] = [
    # Deliberately not in id order: the files follow the artifact's sorted ids.
    {
        "customer_id": "C3",
        "signup_date": dt.date(2024, 1, 3),
        "nps_category": "detractor",
        "nps_score": 3,
        "monetary_value": 250.0,
        "last_order_at": dt.datetime(2025, 5, 1, 12, 30, 5),
        "favourite_categories": ["books", "toys"],
        "last_delivery_late": True,
        "churn_risk": 0.8,
    },
    {
        "customer_id": "C1",
        "signup_date": dt.date(2024, 1, 1),
        "nps_category": "promoter",
        "nps_score": 10,
        "monetary_value": 120.5,
        "last_order_at": dt.datetime(2025, 6, 1, 8, 0, 0),
        "favourite_categories": ["garden"],
        "last_delivery_late": True,
        "churn_risk": 0.1,
    },
    {
        "customer_id": "C2",
        "signup_date": None,
        "nps_category": "unknown",
        "nps_score": None,
        "monetary_value": 0.0,
        "last_order_at": None,
        "favourite_categories": [],
        "last_delivery_late": None,
        "churn_risk": None,
    },
    {
        "customer_id": "C5",
        "signup_date": dt.date(2024, 1, 5),
        "nps_category": "detractor",
        "nps_score": 0,
        "monetary_value": 20.0,
        "last_order_at": dt.datetime(2025, 1, 1),
        "favourite_categories": ['say "hi"\nnewline'],
        "last_delivery_late": False,
        "churn_risk": 0.5,
    },
    {
        "customer_id": "C4",
        "signup_date": dt.date(2024, 1, 4),
        "nps_category": "passive",
        "nps_score": 7,
        "monetary_value": 500.0,
        "last_order_at": dt.datetime(2025, 3, 1),
        "favourite_categories": ["books"],
        "last_delivery_late": True,
        "churn_risk": 0.3,
    },
]


def _version(directory: Path, rows: list[dict[str, object]], ids: list[str]) -> Profiles:
    directory.mkdir(parents=True)
    customer_ids = np.array(sorted(ids))
    np.save(directory / "customer_ids.npy", customer_ids)
    write_serving_tables(_table(rows), customer_ids, _rules(), directory)
    return Profiles.open(directory)


@pytest.fixture
def profiles(tmp_path: Path) -> Profiles:
    return _version(tmp_path / "v1", ROWS, [str(r["customer_id"]) for r in ROWS])


def test_the_writer_puts_exactly_the_serving_files_in_the_version_directory(
    profiles: Profiles, tmp_path: Path
) -> None:
    written = {path.name for path in (tmp_path / "v1").iterdir()}
    assert written == {"customer_ids.npy", *SERVING_FILES}


def test_records_follow_the_sorted_customer_ids_with_iso_dates_lists_and_nulls(
    profiles: Profiles,
) -> None:
    assert [profiles.record(i)["customer_id"] for i in range(len(profiles))] == [
        "C1",
        "C2",
        "C3",
        "C4",
        "C5",
    ]
    c3 = profiles.record(2)
    assert c3["signup_date"] == "2024-01-03"
    assert c3["last_order_at"] == "2025-05-01T12:30:05Z"
    assert c3["favourite_categories"] == ["books", "toys"]
    assert c3["segments"] == ["detractors", "big_spenders", "late_and_unhappy"]
    assert c3["primary_segment"] == "detractors"
    c2 = profiles.record(1)
    assert c2["nps_score"] is None and c2["last_order_at"] is None and c2["segments"] == []
    # A newline and quotes inside a value do not break the one-record-per-line layout.
    assert profiles.record(4)["favourite_categories"] == ['say "hi"\nnewline']
    assert profiles.index_of("C4") == 3 and profiles.index_of("C9") is None


def test_a_record_is_a_fresh_dict_and_typed_gives_what_the_rules_compare(
    profiles: Profiles,
) -> None:
    record = profiles.record(0)
    record["nps_category"] = "detractor"
    assert profiles.record(0)["nps_category"] == "promoter"
    typed = profiles.typed(profiles.record(0))
    assert typed["signup_date"] == dt.date(2024, 1, 1)
    assert typed["last_order_at"] == dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)
    assert _rules().memberships(typed) == ["big_spenders"]


def test_segments_hold_definitions_sizes_members_and_nps(profiles: Profiles) -> None:
    infos = {s.name: s for s in profiles.segments()}
    assert [s.name for s in profiles.segments()] == [
        "detractors",
        "big_spenders",
        "late_and_unhappy",
    ]
    detractors = infos["detractors"]
    assert detractors.expression == "nps_category == 'detractor'"
    assert detractors.description == "Latest answer 0-6."
    assert (detractors.size, detractors.primary_size, detractors.share) == (2, 2, 2 / 5)
    assert detractors.nps == nps_from_counts(0, 0, 2)
    assert profiles.members("detractors").tolist() == [2, 4]  # C3, C5
    assert profiles.members("big_spenders").tolist() == [0, 2, 3]  # C1, C3, C4
    big = infos["big_spenders"]
    assert big.primary_size == 2  # C3's primary is detractors
    assert big.nps == nps_from_counts(1, 1, 1)
    assert big.nps.margin_of_error is not None
    with pytest.raises(NotFoundError):
        profiles.members("../etc")


def test_customers_missing_from_the_table_get_an_empty_record(tmp_path: Path) -> None:
    profiles = _version(tmp_path / "v", ROWS[:2], ["C1", "C3", "C7"])
    assert len(profiles) == 3
    record = profiles.record(2)
    assert record["customer_id"] == "C7"
    assert record["segments"] == [] and record["primary_segment"] is None


def test_the_api_profile_groups_nps_rfm_and_churn(profiles: Profiles) -> None:
    profile = customer_profile(profiles.record(2), "v1")
    assert profile.customer_id == "C3" and profile.model_version == "v1"
    assert profile.primary_segment == "detractors"
    assert profile.nps.latest_score == 3 and profile.nps.latest_category == "detractor"
    assert profile.rfm.last_order_at == "2025-05-01T12:30:05Z"
    assert profile.churn.risk == 0.8
    assert profile.attributes["favourite_categories"] == ["books", "toys"]


def test_fields_and_format_are_checked_and_named_in_errors(profiles: Profiles) -> None:
    with pytest.raises(InvalidRequest, match=r"^format: 'xml'"):
        plan_export(profiles, "v1", "detractors", export_format="xml")
    with pytest.raises(InvalidRequest, match=r"^fields: unknown column\(s\) 'password'"):
        plan_export(profiles, "v1", "detractors", fields="customer_id,password")
    with pytest.raises(InvalidRequest, match=r"^fields: give one"):
        plan_export(profiles, "v1", "detractors", fields=" , ")
    with pytest.raises(InvalidRequest, match=r"^since_version:"):
        plan_export(profiles, "v1", "detractors", since_version="../v0")
    with pytest.raises(NotFoundError):
        plan_export(profiles, "v1", "nobody")
    export = plan_export(profiles, "v1", "detractors", fields="churn_risk,churn_risk")
    assert export.fields == ("customer_id", "churn_risk")


def test_csv_spells_missing_as_empty_yes_no_as_words_and_joins_lists(profiles: Profiles) -> None:
    export = plan_export(
        profiles,
        "v1",
        "big_spenders",
        fields="favourite_categories,last_delivery_late,nps_score,signup_date",
    )
    rows = list(csv.reader(io.StringIO(b"".join(export.chunks()).decode())))
    assert rows == [
        ["customer_id", "favourite_categories", "last_delivery_late", "nps_score", "signup_date"],
        ["C1", "garden", "true", "10", "2024-01-01"],
        ["C3", "books|toys", "true", "3", "2024-01-03"],
        ["C4", "books", "true", "7", "2024-01-04"],
    ]
    assert export.filename == "segment-big_spenders-v1.csv"


def test_exports_are_written_one_chunk_of_rows_at_a_time(
    profiles: Profiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    export = plan_export(profiles, "v1", "big_spenders", export_format="ndjson")
    pieces = list(export.chunks())
    assert [len(p.splitlines()) for p in pieces] == [2, 1]
    lines = [json.loads(line) for p in pieces for line in p.splitlines()]
    assert [line["customer_id"] for line in lines] == ["C1", "C3", "C4"]
    # The default fields this small table has (it has no rfm_segment column).
    assert lines[0] == {
        "customer_id": "C1",
        "primary_segment": "big_spenders",
        "nps_category": "promoter",
        "churn_risk": 0.1,
        "last_order_at": "2025-06-01T08:00:00Z",
    }


def test_parquet_export_has_typed_columns(profiles: Profiles) -> None:
    export = plan_export(
        profiles,
        "v1",
        "big_spenders",
        export_format="parquet",
        fields="signup_date,last_order_at,favourite_categories,last_delivery_late,nps_score",
    )
    frame = pl.read_parquet(io.BytesIO(b"".join(export.chunks())))
    assert frame.schema["signup_date"] == pl.Date
    assert frame.schema["last_order_at"] == pl.Datetime("us", "UTC")  # times are UTC, and say so
    assert frame.schema["favourite_categories"] == pl.List(pl.String)
    assert frame.schema["nps_score"] == pl.Int64
    assert frame["customer_id"].to_list() == ["C1", "C3", "C4"]
    assert frame["last_order_at"][1] == dt.datetime(2025, 5, 1, 12, 30, 5, tzinfo=dt.UTC)


def test_the_change_since_a_version_lists_who_entered_and_who_left(tmp_path: Path) -> None:
    before = _version(tmp_path / "v1", ROWS, [str(r["customer_id"]) for r in ROWS])
    # v2: C1 turns detractor (enters), C3 turns promoter (leaves), C5 is gone (leaves).
    changed = [dict(r) for r in ROWS if r["customer_id"] != "C5"]
    changed[0]["nps_category"] = "promoter"
    changed[1]["nps_category"] = "detractor"
    after = _version(tmp_path / "v2", changed, [str(r["customer_id"]) for r in changed])
    entered, exited_now, exited_gone = segment_changes(after, "detractors", before)
    assert (entered.change, exited_now.change, exited_gone.change) == (ENTERED, EXITED, EXITED)
    assert after.customer_ids[entered.indices].tolist() == ["C1"]
    assert after.customer_ids[exited_now.indices].tolist() == ["C3"]
    assert exited_gone.profiles is before
    assert before.customer_ids[exited_gone.indices].tolist() == ["C5"]

    export = plan_export(
        after,
        "v2",
        "detractors",
        export_format="ndjson",
        fields="nps_category",
        since_version="v1",
        version_path=lambda v: tmp_path / v,
    )
    lines = [json.loads(line) for line in b"".join(export.chunks()).splitlines()]
    assert lines == [
        {"customer_id": "C1", "nps_category": "detractor", "change": "entered"},
        {"customer_id": "C3", "nps_category": "promoter", "change": "exited"},
        {"customer_id": "C5", "nps_category": "detractor", "change": "exited"},
    ]
    assert export.filename == "segment-detractors-v2-since-v1.ndjson"
    same = plan_export(after, "v2", "detractors", since_version="v2")
    assert same.rows == 0


def test_an_empty_change_is_a_valid_file_in_every_format(profiles: Profiles) -> None:
    for fmt in ("csv", "ndjson", "parquet"):
        export = plan_export(profiles, "v1", "detractors", export_format=fmt, since_version="v1")
        data = b"".join(export.chunks())
        if fmt == "csv":
            assert data.decode().splitlines()[0].endswith(",change")
        elif fmt == "parquet":
            frame = pl.read_parquet(io.BytesIO(data))
            assert frame.height == 0 and frame.columns[-1] == "change"
        else:
            assert data == b""


def test_comparing_with_a_version_without_profile_tables_names_since_version(
    profiles: Profiles, tmp_path: Path
) -> None:
    old = tmp_path / "v0"
    old.mkdir()
    np.save(old / "customer_ids.npy", np.array(["C1"]))
    with pytest.raises(ArtifactError, match=r"^since_version: cannot compare"):
        plan_export(profiles, "v1", "detractors", since_version="v0", version_path=lambda v: old)


def test_a_parquet_export_stopped_early_leaves_no_writer_thread(profiles: Profiles) -> None:
    chunks = plan_export(profiles, "v1", "big_spenders", export_format="parquet").chunks()
    assert next(iter(chunks)).startswith(b"PAR1")
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("parquet-export")]
