"""Rankings served from a version's stored candidate lists are the rankings full scoring gives:
same items, same order, on every page, with every filter; and whatever the lists cannot answer
(live features, buy-again, long pages, narrow filters) falls back to scoring without a seam."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from recsvc.service import recommend as recommend_module
from recsvc.service.recommend import Query, recommend
from recsvc.version.artifacts import (
    MANIFEST,
    ArtifactError,
    LoadedModel,
    file_entries,
    load_model,
    read_manifest,
)
from recsvc.version.scoring import Candidates, top_rows
from tests.artifact_factory import make_artifact

QUERIES = [
    Query(),
    Query(limit=5, offset=5),
    Query(limit=7, offset=14),  # crosses the end of a 20-item list
    Query(limit=30, offset=60),  # entirely past it
    Query(categories=["garden"]),
    Query(in_stock=True, limit=12),
    Query(price_bands=["low", "high"], limit=8),
    Query(exclude=["p001", "p002", "p003", "p010", "nope"], limit=15),
    Query(exclude_purchased=False, limit=10),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, LoadedModel]:
    root = tmp_path_factory.mktemp("recommend")
    listed = load_model(make_artifact(root / "a", "v1", 60, 400, candidates=20))
    plain = load_model(make_artifact(root / "b", "v1", 60, 400, candidates=0))
    return listed, plain


def ids(model: LoadedModel, customer: str, query: Query, **attributes: object) -> list[str]:
    return [r.product_id for r in recommend(model, customer, query, attributes).items]


def test_the_factory_built_lists_and_a_version_without_them_loads(
    models: tuple[LoadedModel, LoadedModel],
) -> None:
    listed, plain = models
    assert listed.candidates is not None and listed.candidates.items.shape == (60, 20)
    assert plain.candidates is None


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_lists_and_full_scoring_rank_identically(
    models: tuple[LoadedModel, LoadedModel], query: Query
) -> None:
    listed, plain = models
    for n in range(60):
        customer = f"c{n:03d}"
        assert ids(listed, customer, query) == ids(plain, customer, query), customer


def test_consecutive_pages_neither_repeat_nor_skip(models: tuple[LoadedModel, LoadedModel]) -> None:
    listed, plain = models
    whole = ids(plain, "c007", Query(limit=100))
    pages = [ids(listed, "c007", Query(limit=6, offset=o)) for o in range(0, 60, 6)]
    assert [item for page in pages for item in page] == whole[:60]


def test_live_features_bypass_the_stored_list(models: tuple[LoadedModel, LoadedModel]) -> None:
    """A live answer changed the customer's NPS category: the stored list no longer applies."""
    listed, plain = models
    live = {"nps_category": "b"}  # the factory's customers with an even index have "a"
    assert ids(listed, "c004", Query(), **live) == ids(plain, "c004", Query(), **live)
    assert ids(listed, "c004", Query(), **live) != ids(listed, "c004", Query())


def test_scores_in_the_list_are_the_full_scores(models: tuple[LoadedModel, LoadedModel]) -> None:
    listed, plain = models
    fast = recommend(listed, "c010", Query(limit=20)).items
    slow = recommend(plain, "c010", Query(limit=20)).items
    assert [r.score for r in fast] == pytest.approx([r.score for r in slow], abs=1e-5)


def test_a_short_list_is_complete_when_it_holds_every_remaining_item(tmp_path: Path) -> None:
    """4 items, 1-2 bought, lists of 3: a padded list is the whole answer, a full one is not."""
    model = load_model(make_artifact(tmp_path / "a", "v2", 6, 4, candidates=3))
    plain = msgspec.structs.replace(model, candidates=None)
    for n in range(6):
        for query in (Query(), Query(limit=1, offset=2), Query(categories=["books"])):
            assert ids(model, f"c{n:03d}", query) == ids(plain, f"c{n:03d}", query)


@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_top_rows_is_an_exact_ordered_top_k(k: int) -> None:
    rng = np.random.default_rng(k)
    scores = rng.normal(size=(8, 1_000)).astype(np.float32)
    scores[:, ::7] = scores[:, 1:2]  # ties: broken by the lower item index
    scores[3, 5:] = -np.inf  # a row with fewer finite scores than k
    items, best = top_rows(scores, k)
    for row in range(8):
        order = np.lexsort((np.arange(1_000), -scores[row]))
        finite = order[np.isfinite(scores[row][order])][:k]
        assert items[row][: finite.size].tolist() == finite.tolist()
        assert (items[row][finite.size :] == -1).all()
        assert best[row][: finite.size].tolist() == scores[row][finite].tolist()


def test_a_plain_request_is_served_from_the_stored_list(
    models: tuple[LoadedModel, LoadedModel],
) -> None:
    """Swap in a reversed list: a request the list can answer comes back reversed (no scoring)."""
    listed, _ = models
    assert listed.candidates is not None
    reversed_lists = Candidates(
        items=listed.candidates.items[:, ::-1].copy(),
        scores=listed.candidates.scores[:, ::-1].copy(),
    )
    swapped = msgspec.structs.replace(listed, candidates=reversed_lists)
    assert ids(swapped, "c003", Query(limit=20)) == ids(listed, "c003", Query(limit=20))[::-1]


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_scoring_only_the_filtered_items_ranks_like_scoring_all(
    models: tuple[LoadedModel, LoadedModel], query: Query, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Narrow filters score just the kept items; the ranking must not depend on that choice."""
    _, plain = models
    customers = [f"c{n:03d}" for n in range(0, 60, 3)] + ["stranger"]
    monkeypatch.setattr(recommend_module, "_SUBSET_SHARE", 0.0)
    everything = [ids(plain, customer, query) for customer in customers]
    monkeypatch.setattr(recommend_module, "_SUBSET_SHARE", 1.0)
    assert [ids(plain, customer, query) for customer in customers] == everything


def test_candidate_lists_that_do_not_fit_the_version_are_a_clear_error(tmp_path: Path) -> None:
    directory = make_artifact(tmp_path / "a", "v3", 6, 40, candidates=5)
    np.save(directory / "candidate_scores.npy", np.zeros((5, 5), dtype=np.float32))
    manifest = read_manifest(directory)
    manifest = msgspec.structs.replace(manifest, files=file_entries(directory))
    (directory / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    with pytest.raises(ArtifactError, match="candidate lists of shape"):
        load_model(directory)
