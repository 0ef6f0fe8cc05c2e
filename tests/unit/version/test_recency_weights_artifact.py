"""The purchases' recency-weighted frequencies and the products' repeat rates in a version:
written, read back memory-mapped and ranked by; a version written before them loads and ranks by
line counts, as it was served."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsvc.errors import ArtifactError
from recsvc.service.recommend import Query, recommend
from recsvc.version.artifacts import LoadedModel, load_model
from recsvc.version.scoring import BlendParams
from tests.artifact_factory import make_artifact

N_CUSTOMERS, N_ITEMS = 40, 30
# Frequency alone ranks the bought products (weight 1, no timing): the model only orders the rest.
BY_FREQUENCY = BlendParams(weight=1.0, timing=0.0, decay=0.8)


def _bought_first(model: LoadedModel, customer: int) -> list[str]:
    p = model.arrays.purchases
    n = p.row(customer).stop - p.row(customer).start
    page = recommend(model, f"c{customer:03d}", Query(exclude_purchased=False, limit=n))
    return [item.product_id for item in page.items]


def test_a_version_without_weights_loads_and_reads_line_counts_as_frequencies(
    tmp_path: Path,
) -> None:
    old = load_model(make_artifact(tmp_path / "old", "v1", N_CUSTOMERS, N_ITEMS))
    purchases = old.arrays.purchases
    assert "purchases_recency_weighted.npy" not in old.manifest.files
    assert purchases.recency_weighted is None
    assert old.manifest.blend.decay == 1.0  # a manifest written before the fields
    assert old.manifest.blend.repeat == 0.0 and old.item_repeat_rate is None
    span = purchases.row(5)
    assert purchases.frequency(span).tolist() == purchases.counts[span].astype(float).tolist()


def test_weights_round_trip_memory_mapped_and_rank_what_was_bought(tmp_path: Path) -> None:
    layout = load_model(make_artifact(tmp_path / "layout", "v1", N_CUSTOMERS, N_ITEMS)).arrays
    # The factory's purchases (seeded by the version name) with weights that reverse item order.
    n = layout.purchases.items.size
    weights = (100.0 - layout.purchases.items).astype(np.float32) / 7
    model = load_model(
        make_artifact(
            tmp_path / "new",
            "v1",
            N_CUSTOMERS,
            N_ITEMS,
            recency_weighted=weights,
            blend=BY_FREQUENCY,
        ),
        verify_hashes=True,
    )
    stored = model.arrays.purchases.recency_weighted
    assert stored is not None and stored.dtype == np.float32 and stored.shape == (n,)
    assert stored.tolist() == weights.tolist()
    assert not stored.flags.owndata  # a view of the mapped file, not a copy
    assert model.manifest.blend == BY_FREQUENCY
    for customer in range(N_CUSTOMERS):
        bought = layout.purchases.items[layout.purchases.row(customer)]
        if bought.size >= 2:
            # Higher weight first: the larger item index last.
            expected = [f"p{i:03d}" for i in sorted(bought.tolist())]
            assert _bought_first(model, customer) == expected, customer


def test_repeat_rates_round_trip_and_rank_what_was_bought_by_the_blends_power(
    tmp_path: Path,
) -> None:
    layout = load_model(make_artifact(tmp_path / "layout", "v1", N_CUSTOMERS, N_ITEMS)).arrays
    # Every purchase weighs the same: the products' repeat rates (rising with the index) decide.
    rates = np.linspace(0.1, 0.9, N_ITEMS).astype(np.float32)
    model = load_model(
        make_artifact(
            tmp_path / "rated",
            "v1",
            N_CUSTOMERS,
            N_ITEMS,
            recency_weighted=np.ones(layout.purchases.items.size, np.float32),
            repeat_rate=rates,
            blend=BlendParams(weight=1.0, timing=0.0, decay=0.8, repeat=0.5),
        )
    )
    assert model.item_repeat_rate is not None and model.item_repeat_rate.tolist() == rates.tolist()
    for customer in range(N_CUSTOMERS):
        bought = layout.purchases.items[layout.purchases.row(customer)]
        if bought.size >= 2:
            expected = [f"p{i:03d}" for i in sorted(bought.tolist(), reverse=True)]
            assert _bought_first(model, customer) == expected, customer


def test_weights_that_do_not_match_the_purchases_are_refused_naming_the_version(
    tmp_path: Path,
) -> None:
    directory = make_artifact(
        tmp_path / "bad",
        "v1",
        N_CUSTOMERS,
        N_ITEMS,
        candidates=0,
        recency_weighted=np.ones(3, np.float32),
    )
    with pytest.raises(ArtifactError, match="version bad: 3 recency-weighted purchases for"):
        load_model(directory)


def test_repeat_rates_that_do_not_match_the_catalogue_are_refused(tmp_path: Path) -> None:
    directory = make_artifact(
        tmp_path / "short",
        "v1",
        N_CUSTOMERS,
        N_ITEMS,
        candidates=0,
        repeat_rate=np.full(N_ITEMS - 1, 0.5, np.float32),
    )
    with pytest.raises(ArtifactError, match="version short: item_repeat_rate holds 29 of 30 items"):
        load_model(directory)
