"""The training run end to end on small demo data: real validation, segments, LightFM fits, the
quality gate, artifacts in the embedded store, and cold start through the stored feature embeddings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest

from recsvc.domain.features import user_feature_names
from recsvc.errors import ArtifactError
from recsvc.service.recommend import Query, recommend
from recsvc.store import open_store
from recsvc.version.artifacts import load_model
from recsvc.version.scoring import (
    known_customer_vectors,
    score_block,
    score_items,
    top_k,
    user_vector,
)
from training.config import load_config
from training.recommender.evaluate import BLEND_DECAYS
from training.run.pipeline import RunRecord, format_record, run_pipeline
from training.sources.generate import generate

SMALL = {
    "search_trials": 0,
    "epochs": 20,
    "components": 32,
    "max_eval_users": 1_500,
    "deterministic": True,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "data"
    generate(data, 4_000, seed=11, show_progress=False)
    return data


@pytest.fixture(scope="module")
def published(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecord, Path]:
    root = tmp_path_factory.mktemp("run")
    record = run_pipeline(
        demo,
        store=f"file://{root / 'store'}",
        config=load_config(**SMALL),
        runs_dir=root / "runs",
        show_progress=False,
    )
    return record, root


def test_a_run_publishes_a_version_that_beats_popularity(published: tuple[RunRecord, Path]) -> None:
    record, root = published
    assert record.status == "published" and record.published
    store = open_store(f"file://{root / 'store'}")
    assert store.active_version() == record.version
    metrics = record.metrics["new_items"]
    assert metrics["model"]["ndcg"] > metrics["popularity"]["ndcg"]
    assert set(record.metrics["by_nps_category"]) >= {"promoter", "detractor"}
    assert (
        record.metrics["buy_again"]["blend"]["ndcg"] >= record.metrics["buy_again"]["model"]["ndcg"]
    )


def test_every_step_of_a_run_records_its_seconds_and_rows(
    published: tuple[RunRecord, Path],
) -> None:
    """Each step's output says how many rows it holds; the record keeps them beside the seconds,
    and the customer table and NPS answers are the ones the run read and merged (not re-read)."""
    record, _ = published
    assert (
        list(record.step_rows)
        == list(record.steps)
        == [
            "validate",
            "live responses",
            "live orders",
            "segments",
            "experiments",
            "report",
            "features",
            "order history",
            "recent orders",
            "search",
            "fit (hold-out)",
            "evaluate",
            "gate",
            "fit (all data)",
            "candidates",
            "similar lists",
            "write artifact",
            "publish",
        ]
    )
    rows = record.step_rows
    assert rows["segments"] == rows["candidates"] == rows["publish"] == record.rows["customers"]
    assert rows["similar lists"] > 0  # one list per product
    assert rows["live responses"] == rows["report"] > 0  # no live answers: the batch's answers
    assert rows["live orders"] == 0  # no live order lines merged
    assert 0 < rows["order history"] <= record.rows["order_lines"]  # counted orders
    assert 0 < rows["recent orders"] < rows["order history"]  # the last 45 days' orders
    assert 0 < rows["features"] <= record.rows["order_lines"] < rows["validate"]
    assert rows["gate"] == 0  # no active version to compare with
    assert rows["search"] == 0 and record.search is None  # search_trials 0: the settings as given
    assert all(rows[name] > 0 for name in ("fit (hold-out)", "evaluate", "fit (all data)"))
    assert f"validate {record.steps['validate']:.1f}s ({rows['validate']:,} rows)" in format_record(
        record
    )


def test_the_artifact_round_trips_and_describes_itself(published: tuple[RunRecord, Path]) -> None:
    record, root = published
    assert record.version is not None
    directory = root / "store" / "versions" / record.version
    model = load_model(directory, verify_hashes=True)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["version"] == record.version
    assert manifest["config"]["epochs"] == SMALL["epochs"]
    assert len(manifest["data_fingerprint"]) == 64
    for name in ("customers.parquet", "nps_report.json", "nps_report.html", "evaluation.json"):
        assert (directory / name).is_file(), name
    customers = pl.read_parquet(directory / "customers.parquet")
    assert model.arrays.n_customers == customers.height
    some_id = str(customers["customer_id"][0])
    assert model.customer_index(some_id) is not None
    assert model.customer_index("no-such-customer") is None


def test_the_version_weighs_each_purchase_by_orders_back_at_the_tuned_decay(
    published: tuple[RunRecord, Path], demo: Path
) -> None:
    """The decay the hold-out chose for the blend is the one the version's weights use: the
    customer with the most orders, their weights worked out by hand from the shop's order file
    (orders with a line bought, latest first, each weighing decay ** orders back)."""
    record, root = published
    assert record.version is not None
    model = load_model(root / "store" / "versions" / record.version, verify_hashes=True)
    assert "purchases_recency_weighted.npy" in model.manifest.files
    decay = model.manifest.blend.decay
    assert decay in BLEND_DECAYS
    lines = pl.read_parquet(demo / "orders.parquet").filter(pl.col("status") != "cancelled")
    customer = (
        lines.group_by("customer_id")
        .agg(pl.col("order_id").n_unique())
        .sort("order_id", "customer_id", descending=[True, False])["customer_id"][0]
    )
    mine = lines.filter(pl.col("customer_id") == customer)
    placed = mine.group_by("order_id").agg(pl.col("ordered_at").min())
    bought = mine.filter(pl.col("status") != "returned").select("order_id", "product_id").unique()
    counted = sorted(
        placed.filter(pl.col("order_id").is_in(bought["order_id"].implode())).iter_rows(),
        key=lambda row: (row[1], row[0]),
        reverse=True,
    )
    back = {order_id: n for n, (order_id, _) in enumerate(counted)}
    expected: dict[str, float] = {}
    for order_id, product in bought.iter_rows():
        expected[product] = expected.get(product, 0.0) + decay ** back[order_id]
    index = model.customer_index(customer)
    assert index is not None
    p = model.arrays.purchases
    assert p.recency_weighted is not None
    span = p.row(index)
    stored = dict(
        zip(model.item_ids[p.items[span]].tolist(), p.recency_weighted[span].tolist(), strict=True)
    )
    assert stored == pytest.approx(expected, rel=1e-6)
    # The products' repeat rates: (buyers with two orders or more + 1) / (buyers + 2).
    rates = model.item_repeat_rate
    assert rates is not None and rates.shape == (model.item_ids.size,)
    assert model.manifest.blend.repeat in (0.0, 0.5)
    kept = lines.filter(pl.col("status") != "returned")
    orders = kept.group_by("product_id", "customer_id").agg(pl.col("order_id").n_unique())
    per_product = orders.group_by("product_id").agg(
        pl.len().alias("buyers"), (pl.col("order_id") >= 2).sum().alias("repeaters")
    )
    for product, buyers, repeaters in per_product.head(50).iter_rows():
        index = model.item_index(product)
        assert index is not None
        assert rates[index] == pytest.approx((repeaters + 1) / (buyers + 2), rel=1e-6), product


def test_buy_again_is_reported_against_both_own_history_lists(
    published: tuple[RunRecord, Path],
) -> None:
    record, _ = published
    buy_again = record.metrics["buy_again"]
    for method in ("own_most_frequent", "recency_weighted_own_frequency", "blend"):
        m = buy_again[method]
        assert m["ndcg_low"] <= m["ndcg"] <= m["ndcg_high"], method
    lift = record.metrics["blend_lift"]
    own = lift["baseline"]
    assert own in ("own_most_frequent", "recency_weighted_own_frequency")
    assert buy_again[own]["ndcg"] == max(
        buy_again["own_most_frequent"]["ndcg"], buy_again["recency_weighted_own_frequency"]["ndcg"]
    )
    assert lift["ratio"] == pytest.approx(buy_again["blend"]["ndcg"] / buy_again[own]["ndcg"])
    assert lift["low"] <= lift["ratio"] <= lift["high"]


def test_a_corrupted_artifact_is_a_clear_error(
    published: tuple[RunRecord, Path], tmp_path: Path
) -> None:
    record, root = published
    assert record.version is not None
    copy = tmp_path / "copy"
    shutil.copytree(root / "store" / "versions" / record.version, copy)
    vectors = copy / "item_vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:-64])
    with pytest.raises(ArtifactError, match=r"item_vectors\.npy"):
        load_model(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format 99 is not supported"):
        load_model(copy)


def test_a_new_customer_is_scored_from_their_features(published: tuple[RunRecord, Path]) -> None:
    """No history, only attributes (or only an NPS category): a list from the feature embeddings."""
    _, root = published
    model = open_store(f"file://{root / 'store'}").load_active()
    assert model is not None

    def cold_scores(attributes: dict[str, str]) -> np.ndarray:
        names = user_feature_names(attributes)
        rows = [model.user_feature_index[n] for n in names if n in model.user_feature_index]
        assert rows, "the model knows these attribute values"
        vector, _ = user_vector(model.arrays, None, rows)
        return score_items(model.arrays, vector)

    detractor = cold_scores({"nps_category": "detractor"})
    champion = cold_scores(
        {"nps_category": "promoter", "rfm_segment": "champions", "country": "DE"}
    )
    assert top_k(detractor, 10).size == 10
    assert not np.allclose(detractor, champion)


def test_a_product_nobody_bought_is_scored_from_its_features(
    published: tuple[RunRecord, Path],
) -> None:
    """A product without sales (new to the catalogue) ranks higher for customers whose favourite
    category it belongs to than for everyone else: its score comes from category, brand and price."""
    record, root = published
    assert record.version is not None
    directory = root / "store" / "versions" / record.version
    model = load_model(directory)
    arrays = model.arrays
    sold = np.bincount(arrays.purchases.items, minlength=arrays.n_items)
    unsold = np.flatnonzero(sold == 0)
    assert unsold.size > 0, "the demo catalogue has products nobody bought"
    favourite = (
        pl.read_parquet(directory / "customers.parquet")
        .sort("customer_id")["favourite_categories"]
        .list.first()
        .to_numpy()
    )
    buyers = np.flatnonzero(arrays.has_identity)
    scores = score_block(arrays, known_customer_vectors(arrays, buyers))
    categories = np.array(model.categories)[model.item_category]
    fan_percentiles, other_percentiles = [], []
    for item in unsold:
        fans = favourite[buyers] == categories[item]
        if fans.sum() < 10 or (~fans).sum() < 10:
            continue
        percentile = (scores < scores[:, [item]]).mean(axis=1)
        fan_percentiles.append(percentile[fans].mean())
        other_percentiles.append(percentile[~fans].mean())
    assert fan_percentiles
    assert np.mean(fan_percentiles) > 1.5 * np.mean(other_percentiles)


def test_the_gate_refuses_a_worse_model_and_force_overrides_it(
    demo: Path, tmp_path: Path, published: tuple[RunRecord, Path]
) -> None:
    _, root = published
    store_dir = tmp_path / "store"
    shutil.copytree(root / "store", store_dir)
    store = open_store(f"file://{store_dir}")
    active = store.active_version()
    weak = load_config(**{**SMALL, "epochs": 1, "learning_rate": 0.001, "gate_tolerance": 0.0})
    refused = run_pipeline(
        demo,
        store=f"file://{store_dir}",
        config=weak,
        runs_dir=tmp_path / "runs",
        show_progress=False,
    )
    assert refused.status == "not_published"
    assert refused.gate is not None and refused.gate.reason.startswith("refused")
    assert refused.gate.active_ndcg is not None and refused.gate.new_ndcg < refused.gate.active_ndcg
    assert store.active_version() == active
    forced = run_pipeline(
        demo,
        store=f"file://{store_dir}",
        config=weak,
        runs_dir=tmp_path / "runs2",
        force=True,
        show_progress=False,
    )
    assert forced.published and store.active_version() == forced.version != active


def test_the_gate_compares_both_models_on_days_neither_has_seen(demo: Path, tmp_path: Path) -> None:
    """Yesterday's model (fitted on data up to a cut) against today's on the days after the cut."""
    early = tmp_path / "early"
    early.mkdir()
    for path in demo.glob("*.parquet"):
        shutil.copy(path, early / path.name)
    orders = pl.read_parquet(demo / "orders.parquet")
    cut = orders["ordered_at"].max() - pl.duration(days=14)  # type: ignore[operator]
    orders.filter(pl.col("ordered_at") < cut).write_parquet(early / "orders.parquet")
    store = f"file://{tmp_path / 'store'}"
    config = load_config(**SMALL)
    first = run_pipeline(
        early, store=store, config=config, runs_dir=tmp_path / "r1", show_progress=False
    )
    assert first.published
    second = run_pipeline(
        demo, store=store, config=config, runs_dir=tmp_path / "r2", show_progress=False
    )
    assert second.gate is not None
    assert second.gate.comparison == "same split"
    assert second.gate.active_version == first.version
    # The paired interval of the difference brackets the difference it was drawn around.
    gate = second.gate
    assert gate.difference_low is not None and gate.difference_high is not None
    assert gate.active_ndcg is not None
    assert gate.difference_low <= gate.new_ndcg - gate.active_ndcg <= gate.difference_high
    assert "95% interval" in gate.reason


def test_deterministic_mode_gives_identical_models(demo: Path, tmp_path: Path) -> None:
    config = load_config(**{**SMALL, "refit_on_all_data": False})
    vectors = []
    for name in ("a", "b"):
        record = run_pipeline(
            demo,
            store=f"file://{tmp_path / name}",
            config=config,
            runs_dir=tmp_path / f"runs-{name}",
            show_progress=False,
        )
        assert record.version is not None
        vectors.append(np.load(tmp_path / name / "versions" / record.version / "item_vectors.npy"))
    assert np.array_equal(vectors[0], vectors[1])


def test_the_published_candidate_lists_rank_like_scoring_the_catalogue(
    published: tuple[RunRecord, Path],
) -> None:
    """The run stores each customer's best never-bought items with the version; serving from them
    gives the ranking scoring the whole catalogue gives, on a real LightFM model."""
    record, root = published
    assert record.version is not None
    assert "candidates" in record.steps
    model = load_model(root / "store" / "versions" / record.version)
    assert model.candidates is not None
    assert model.candidates.items.shape == (model.arrays.n_customers, 40)
    plain = msgspec.structs.replace(model, candidates=None)
    categories = model.categories[:2]
    queries = [
        Query(),
        Query(limit=6, offset=37),  # crosses the end of the 40-item lists
        Query(categories=categories),
        Query(in_stock=True),
    ]
    for customer in model.customer_ids[:: max(1, model.customer_ids.size // 150)].tolist():
        for query in queries:
            served = [r.product_id for r in recommend(model, customer, query).items]
            scored = [r.product_id for r in recommend(plain, customer, query).items]
            assert served == scored, (customer, query)


def test_a_hold_out_too_small_switches_to_each_customers_last_order(
    published: tuple[RunRecord, Path], demo: Path, tmp_path: Path
) -> None:
    """The last 28 days hold fewer customers than `min_holdout_customers`: each customer's last
    order is held out instead. The record names the split and its customers, and the gate, with
    the active version measured on the time split and no purchases it has not seen, does not
    compare the two splits' numbers."""
    first, root = published
    assert first.metrics["split"]["kind"] == "time"
    time_customers = first.metrics["split"]["customers"]
    assert 0 < time_customers == first.metrics["split"]["time_customers"]
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)  # the module's store stays as the other tests left it
    record = run_pipeline(
        demo,
        store=f"file://{store}",
        config=load_config(**{**SMALL, "min_holdout_customers": 1_000_000}),
        runs_dir=tmp_path / "runs",
        show_progress=False,
    )
    split = record.metrics["split"]
    assert split["kind"] == "last_orders" and split["orders"] == 1
    assert split["time_customers"] == time_customers < split["customers"]
    assert record.metrics["eval_users"] == min(split["customers"], SMALL["max_eval_users"])
    model = record.metrics["new_items"]["model"]
    assert model["ndcg_low"] <= model["ndcg"] <= model["ndcg_high"]
    assert (
        f"evaluation: each customer's last order held out ({split['customers']:,} customers; "
        f"the last 28 days held {time_customers:,}, fewer than min_holdout_customers 1,000,000)"
    ) in format_record(record)
    gate = record.gate
    assert gate is not None and (gate.split, gate.active_split) == ("last_orders", "time")
    assert gate.comparison == "not comparable" and record.published
    manifest = json.loads((store / "versions" / str(record.version) / "manifest.json").read_text())
    assert manifest["metrics"]["split"] == "last_orders"
