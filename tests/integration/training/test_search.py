"""The recommender's self-tuning on small demo data: real LightFM fits on a validation split inside
the hold-out's training lines, successive halving, the plain collaborative fit as the floor, the
choice carried into the published version and the next run's warm start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsvc.errors import ConfigError
from recsvc.service.recommend import Query, recommend
from recsvc.store import open_store
from recsvc.version.artifacts import load_model
from recsvc.version.carts import cart_vector
from recsvc.version.scoring import score_items
from tests.api_support import auth, client_for
from training.config import TrainingConfig, load_config
from training.recommender import ease, season
from training.recommender.dataset import FeatureSpace
from training.recommender.fit import attributes_from_members, unknown_from_attributes
from training.recommender.holdout import validation_split
from training.recommender.search import (
    BLEND_WEIGHTS,
    EASE_LAMBDAS,
    PLAIN,
    PLAIN_EPOCHS,
    candidates,
    ease_check,
    format_search,
)
from training.run.pipeline import RunRecord, format_record, run_pipeline
from training.sources.generate import generate

SEARCH: dict[str, Any] = {
    "search_trials": 5,
    "search_max_epochs": 25,
    "max_eval_users": 800,
    "deterministic": True,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "data"
    generate(data, 1_500, seed=5, show_progress=False)
    return data


@pytest.fixture(scope="module")
def two_runs(
    demo: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunRecord, RunRecord, str]:
    root = tmp_path_factory.mktemp("search")
    store = f"file://{root / 'store'}"
    first, second = (
        run_pipeline(
            demo,
            store=store,
            config=load_config(**SEARCH),
            runs_dir=root / "runs",
            show_progress=False,
            force=True,
        )
        for _ in range(2)
    )
    return first, second, store


def test_the_search_chooses_no_worse_than_the_plain_collaborative_fit_on_validation(
    two_runs: tuple[RunRecord, RunRecord, str],
) -> None:
    first, _, _ = two_runs
    search = first.search
    assert search is not None and not search.warm_start
    trials = {t.name: t for t in search.trials}
    lightfm = [t for t in search.trials if t.ranker == "lightfm"]
    assert len(lightfm) == SEARCH["search_trials"]
    # Then EASE alone for each lambda and three blends (a small catalogue).
    assert len(trials) == len(lightfm) + len(EASE_LAMBDAS) + len(BLEND_WEIGHTS)
    plain = trials["plain collaborative"]
    assert (plain.loss, plain.components, plain.identity_weight, plain.weighted) == (
        "warp",
        32,
        1.0,
        False,
    )
    # Exempt from the cuts: it reaches the plain fit's epochs whatever the others do.
    assert len(plain.curve) * 5 >= PLAIN_EPOCHS
    chosen = trials[search.chosen]
    assert chosen.outcome == "chosen"
    assert chosen.ndcg == max(t.ndcg for t in search.trials) >= plain.ndcg > 0
    # Successive halving: some trials stopped at the first rung, with one check each.
    assert any(t.outcome == "halved at 5" and len(t.curve) == 1 for t in lightfm)
    assert search.budget_seconds is None  # deterministic: bounded by the trials, not the clock
    assert search.validation_users > 0 and search.fit_customers > 0
    # The recent-popularity prior, tuned on the chosen trial's best arrays: weight 0 is that
    # trial's own validation score, and no weight chosen scores below it.
    prior = search.prior
    assert prior is not None and set(prior.ndcg) == {f"{w:g}" for w in season.PRIOR_WEIGHTS}
    assert prior.ndcg["0"] == pytest.approx(chosen.ndcg, abs=2e-6)
    assert prior.ndcg[f"{prior.weight:g}"] == max(prior.ndcg.values())
    assert "recent-popularity prior" in format_search(search)


def test_the_published_version_carries_the_chosen_settings(
    two_runs: tuple[RunRecord, RunRecord, str],
) -> None:
    first, second, store = two_runs
    assert first.search is not None
    chosen = next(t for t in first.search.trials if t.name == first.search.chosen)
    opened = open_store(store)
    root = Path(store.removeprefix("file://"))
    manifest = load_model(root / "versions" / str(first.version)).manifest
    config = msgspec.convert(manifest.config, TrainingConfig)
    assert (config.ranker, config.loss, config.learning_rate) == (
        chosen.ranker,
        chosen.loss,
        chosen.learning_rate,
    )
    assert config.user_identity_weight == chosen.identity_weight == manifest.identity_weight
    assert config.epochs == chosen.epochs
    assert first.search.prior is not None
    assert config.prior_weight == first.search.prior.weight
    if chosen.ranker == "blend":
        assert (config.ease_lambda, config.blend_weight) == (
            chosen.ease_lambda,
            chosen.blend_weight,
        )
        # The served vectors hold LightFM's components and EASE's beside them.
        assert manifest.components == config.components + min(config.ease_rank, manifest.n_items)
    else:
        assert config.components == chosen.components == manifest.components
    assert opened.active_version() == second.version
    # The run's text and the run record say what was chosen.
    assert f"search: chosen {first.search.chosen}" in format_record(first)
    assert first.search.chosen in format_search(first.search)


def test_the_next_run_starts_from_the_previous_choice(
    two_runs: tuple[RunRecord, RunRecord, str],
) -> None:
    first, second, _ = two_runs
    assert first.search is not None and second.search is not None
    assert second.search.warm_start
    names = [t.name for t in second.search.trials]
    assert names[0] == "plain collaborative"
    chosen = next(t for t in first.search.trials if t.name == first.search.chosen)
    # The previous choice's LightFM settings are tried again (as "previous best", or as the earlier
    # trial that has them), and the EASE lambdas around its lambda.
    settings = (chosen.loss, chosen.learning_rate, chosen.identity_weight, chosen.weighted)
    assert any(
        (t.loss, t.learning_rate, t.identity_weight, t.weighted) == settings
        for t in second.search.trials
        if t.ranker == "lightfm"
    )
    if chosen.ranker == "blend":
        assert chosen.ease_lambda is not None
        lambdas = {t.ease_lambda for t in second.search.trials if t.blend_weight == 0}
        assert lambdas == {chosen.ease_lambda * f for f in (0.5, 1.0, 2.0)}
    # Fewer trials than a cold search: the warm share of fresh draws only.
    assert len(second.search.trials) <= len(first.search.trials)


def test_deterministic_searches_repeat_exactly(demo: Path, tmp_path: Path) -> None:
    records = [
        run_pipeline(
            demo,
            store=f"file://{tmp_path / name}",
            config=load_config(**{**SEARCH, "search_trials": 3}),
            runs_dir=tmp_path / f"runs-{name}",
            show_progress=False,
            publish=False,
        ).search
        for name in ("a", "b")
    ]
    a, b = ([(t.name, t.curve, t.outcome) for t in record.trials] for record in records if record)
    assert a == b


def test_candidates_start_with_the_plain_fit_and_the_configured_settings() -> None:
    config = load_config(search_trials=8)
    cold = candidates(config, None)
    assert [name for name, _, _ in cold[:2]] == ["plain collaborative", "configured"]
    assert [protected for _, _, protected in cold] == [True] + [False] * 7
    assert all(getattr(cold[0][1], k) == v for k, v in PLAIN.items())
    assert cold == candidates(config, None)  # seeded draws
    # k-OS WARP takes no sample weights: the record must not claim them.
    assert all(not c.weighted for _, c, _ in cold if c.loss == "warp-kos")
    # Attribute fields are left out of hybrid draws only (a collaborative fit uses none).
    many = candidates(load_config(search_trials=60), None)
    assert any(c.features_off for _, c, _ in many if c.user_identity_weight < 1.0)
    assert not any(c.features_off for _, c, _ in many if c.user_identity_weight == 1.0)
    previous = msgspec.structs.replace(config, components=96, learning_rate=0.07)
    warm = candidates(config, previous)
    assert [name for name, _, _ in warm[:3]] == [
        "plain collaborative",
        "configured",
        "previous best",
    ]
    assert warm[2][1].components == 96 and len(warm) == 3 + round(8 * config.search_warm_share)
    # The draws of a warm start stay near the previous choice: at most two settings changed.
    for _, drawn, _ in warm[3:]:
        changed = [
            k
            for k in (
                "loss",
                "components",
                "learning_rate",
                "user_identity_weight",
                "user_alpha",
                "weighted",
                "features_off",
            )
            if getattr(drawn, k) != getattr(warm[2][1], k)
        ]
        assert 1 <= len(changed) <= 3  # identity and alpha move as pairs; weighted follows k-OS


def test_a_collaborative_fit_places_new_customers_and_products_by_their_attributes() -> None:
    # Two customers known (identities 0, 1), one not (2); attribute columns 3 and 4.
    vectors = np.array([[1.0, 0.0], [3.0, 2.0], [9.0, 9.0], [7.0, 7.0], [5.0, 5.0]], np.float32)
    biases = np.array([0.5, 1.5, 9.0, 9.0, 9.0], np.float32)
    rows = np.array([[3], [3], [4]], np.int32)
    known = np.array([True, True, False])
    out, out_biases = attributes_from_members(vectors, biases, rows, known)
    assert out[3].tolist() == [2.0, 1.0] and out_biases[3] == 1.0  # the mean of customers 0 and 1
    # Column 4: no known customer has it, so the mean of all known ones.
    assert out[4].tolist() == [2.0, 1.0]
    assert out[:3].tolist() == vectors[:3].tolist()  # identities untouched
    # Items: an unbought product gets the mean over its fields of the bought ones sharing each.
    items = np.array([[1.0, 1.0], [3.0, 5.0], [0.0, 0.0]], np.float32)
    item_rows = np.array([[10, 20], [10, 21], [10, 21]], np.int32)
    placed, placed_biases = unknown_from_attributes(
        items, np.array([1.0, 2.0, 0.0], np.float32), item_rows, np.array([True, True, False])
    )
    assert placed[2].tolist() == [2.5, 4.0]  # mean of (mean of items 0, 1) and (item 1)
    assert placed_biases[2] == pytest.approx(1.75)


def test_the_validation_split_falls_back_to_each_customers_last_purchase_day() -> None:
    lines = pl.DataFrame(
        {
            "u": [0, 0, 0, 1, 1, 2],
            "i": [0, 1, 2, 3, 4, 5],
            "day": [1, 5, 5, 2, 90, 3],
            "returned": [False, False, False, False, True, False],
        },
        schema={"u": pl.Int32, "i": pl.Int32, "day": pl.Int32, "returned": pl.Boolean},
    )
    config = load_config(min_holdout_customers=5)
    split = validation_split(lines, 3, 6, config)
    # The last 28 days hold only a returned line: customer 0's last day (two lines) is held out.
    assert split.kind == "last_orders" and split.customers == 1
    assert split.test.items[split.test.row(0)].tolist() == [1, 2]
    assert split.train.items[split.train.row(0)].tolist() == [0]
    assert split.train.items[split.train.row(1)].tolist() == [3]  # one purchase day: all training


def test_the_search_tries_ease_and_blends_on_a_small_catalogue(
    two_runs: tuple[RunRecord, RunRecord, str],
) -> None:
    first, _, _ = two_runs
    assert first.search is not None and first.search.ease.startswith("tried")
    alone = [t for t in first.search.trials if t.ranker == "blend" and t.blend_weight == 0]
    assert {t.ease_lambda for t in alone} == set(EASE_LAMBDAS)
    blends = [t for t in first.search.trials if t.ranker == "blend" and t.blend_weight]
    assert {t.blend_weight for t in blends} == set(BLEND_WEIGHTS)
    assert all(t.ndcg > 0 for t in alone + blends)
    # A catalogue too large for the memory budget is skipped, saying why.
    assert ease_check(50_000, load_config()).startswith("skipped: 50,000 products need 20.0 GB")
    # The time budget is a clock: a deterministic run does not read it, a run with a clock does.
    assert ease_check(5_000, load_config(deterministic=True, ease_max_seconds=0)).startswith(
        "tried: 5,000 products"
    )
    assert ease_check(5_000, load_config(ease_max_seconds=0)).startswith("skipped: 5,000")


def test_ease_at_full_rank_is_exact_and_the_blend_adds_scaled_scores() -> None:
    rng = np.random.default_rng(3)
    x = sp.csr_matrix((rng.random((60, 25)) < 0.2).astype(np.float64))
    b = ease.ease_weights(ease.gram(x), 10.0)
    assert b.dtype == np.float32 and np.allclose(np.diag(b), 0.0)
    # The paper's formula in double precision with a general inverse: the same B.
    p = np.linalg.inv(x.T @ x + 10.0 * np.eye(25))
    exact = p / -np.diag(p)
    np.fill_diagonal(exact, 0.0)
    assert np.allclose(b, exact, atol=1e-6)
    # The lower triangle mirrored over whatever the upper held, in blocks not dividing the size.
    full = rng.standard_normal((11, 11)).astype(np.float32)
    mirrored = full.copy()
    ease._mirror_lower(mirrored, block=4)
    assert np.array_equal(mirrored, np.tril(full) + np.tril(full, -1).T)
    left, right = ease.factor(b, 25, seed=0)
    assert np.allclose(left @ right.T, b, atol=1e-4)
    users_e = ease.customer_vectors(x, left)
    assert np.allclose(users_e @ right.T, x @ b, atol=1e-4)
    users_l, items_l = rng.standard_normal((60, 4)), rng.standard_normal((25, 4))
    biases_l = rng.standard_normal(25)
    users, items, biases = ease.blend_vectors(
        (users_l, items_l, biases_l), (users_e, right), 0.3, (2.0, 5.0)
    )
    expected = 0.3 / 2.0 * (users_l @ items_l.T + biases_l) + 0.7 / 5.0 * (x @ b)
    assert np.allclose(users @ items.T + biases, expected, atol=1e-4)


def test_a_blend_version_serves_eases_ranking(demo: Path, tmp_path: Path) -> None:
    """EASE alone (blend weight 0) at full rank: the service's lists for known customers are
    EASE's exact ranking of the products they have not bought."""
    config = load_config(
        search_trials=0,
        ranker="blend",
        blend_weight=0.0,
        user_identity_weight=1.0,
        item_identity_weight=1.0,
        ease_rank=1024,
        epochs=2,
        components=8,
        max_eval_users=300,
    )
    record = run_pipeline(
        demo,
        store=f"file://{tmp_path / 'store'}",
        config=config,
        runs_dir=tmp_path / "runs",
        show_progress=False,
        force=True,
    )
    model = load_model(tmp_path / "store" / "versions" / str(record.version))
    arrays = model.arrays
    assert model.manifest.identity_weight == 1.0
    # Similar products are found in the LightFM half of the vectors, whichever model ranks.
    assert model.manifest.lightfm_components == arrays.lightfm_dims == config.components
    assert model.item_unit_vectors.shape == (arrays.n_items, config.components)
    assert msgspec.convert(model.manifest.config, TrainingConfig).ranker == "blend"
    # The served fit's EASE learns from the customers' interactions: purchases not returned.
    p = arrays.purchases
    x = sp.csr_matrix(
        (np.ones(p.items.size), p.items, p.indptr), shape=(arrays.n_customers, arrays.n_items)
    )
    b = ease.ease_weights(ease.gram(x), config.ease_lambda)
    customers = np.flatnonzero(np.diff(p.indptr) > 2)[:40]
    agree = []
    for customer in customers:
        exact = np.asarray(x[customer] @ b).ravel()
        exact[p.items[p.row(int(customer))]] = -np.inf
        expected = set(np.argsort(-exact, kind="stable")[:10].tolist())
        served = recommend(model, str(model.customer_ids[customer]), Query(limit=10))
        got = {int(np.searchsorted(model.item_ids, i.product_id)) for i in served.items}
        agree.append(len(expected & got) / 10)
    # Returned lines make the fit's matrix differ from the purchases for a few customers.
    assert np.mean(agree) >= 0.9, agree
    # An anonymous cart's model half is EASE's answer to the cart itself (the sum of its
    # products' rows); the page then fuses it with the bought-alike products (tested with carts).
    assert arrays.item_input_vectors is not None
    popular = np.argsort(-np.diff(sp.csc_matrix(x).indptr), kind="stable")
    for size in (1, 3):
        cart = np.sort(popular[5 : 5 + size]).astype(np.int32)
        exact = b[cart].sum(axis=0)
        exact[cart] = -np.inf
        vector = cart_vector(arrays, model.item_buyers, cart)
        assert vector is not None
        scores = score_items(arrays, vector)
        scores[cart] = -np.inf
        got = np.argsort(-scores, kind="stable")[:10].tolist()
        # As above, returned lines move a few scores of the fit's B against this one.
        assert len(set(got) & set(np.argsort(-exact, kind="stable")[:10].tolist())) >= 8


def test_a_subset_of_a_feature_space_has_the_members_rows_with_their_own_identities() -> None:
    ids = np.array(["a", "b", "c", "d"])
    space = FeatureSpace(ids, ["f=x", "f=y"], np.array([[4], [5], [4], [5]], np.int32))
    known = np.array([True, False, True, True])
    members = np.array([1, 3])
    sub = space.subset(members).matrix(0.8, known[members]).toarray()
    full = space.matrix(0.8, known).toarray()[members]
    # Identity columns of the members only (b, d), then the same attribute columns.
    assert sub.shape == (2, 4)
    assert np.allclose(sub[:, 2:], full[:, 4:]) and np.allclose(sub[:, :2], full[:, [1, 3]])


def test_a_field_left_out_of_the_fit_places_nobody_through_the_api(
    demo: Path, tmp_path: Path
) -> None:
    """`features_off` from the config file: every country shares one embedding in the published
    version, so a new visitor's suggestions (through the real app) do not move with their country,
    while a field left in (age band) still moves them."""
    (tmp_path / "training.toml").write_text(
        'features_off = ["country", "brand"]\nuser_identity_weight = 0.6\n'
        "item_identity_weight = 0.6\nsearch_trials = 0\nepochs = 3\nmax_eval_users = 300\n"
    )
    config = load_config(tmp_path / "training.toml")
    assert config.features_off == ("country", "brand")
    url = f"file://{tmp_path / 'store'}"
    record = run_pipeline(
        demo, store=url, config=config, runs_dir=tmp_path / "runs", show_progress=False, force=True
    )
    model = load_model(tmp_path / "store" / "versions" / str(record.version))
    n = model.arrays.n_customers
    rows = {
        field: [n + j for j, name in enumerate(model.user_feature_names) if name.startswith(field)]
        for field in ("country=", "age_band=")
    }
    vectors = model.arrays.user_feature_vectors
    assert len(rows["country="]) > 1 and len(rows["age_band="]) > 1
    assert (vectors[rows["country="]] == vectors[rows["country="][0]]).all()
    assert not (vectors[rows["age_band="]] == vectors[rows["age_band="][0]]).all()
    countries = [model.user_feature_names[r - n].partition("=")[2] for r in rows["country="]]
    bands = [model.user_feature_names[r - n].partition("=")[2] for r in rows["age_band="]]
    path = "/v1/customers/NEW-VISITOR/recommendations?limit=20&country={}&age_band={}"
    with client_for(open_store(url)) as client:

        def served(country: str, band: str) -> list[tuple[str, float]]:
            response = client.get(path.format(country, band), headers=auth("recommend"))
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["cold_start"]
            return [(item["product_id"], item["score"]) for item in body["items"]]

        assert served(countries[0], bands[0]) == served(countries[1], bands[0])
        assert served(countries[0], bands[0]) != served(countries[0], bands[1])
    # An unknown field is named in the error.
    (tmp_path / "bad.toml").write_text('features_off = ["colour"]\n')
    with pytest.raises(ConfigError, match=r"bad\.toml.*features_off.*'colour'"):
        load_config(tmp_path / "bad.toml")


def test_the_recent_popularity_prior_lifts_what_sold_lately_through_the_api(
    demo: Path, tmp_path: Path
) -> None:
    """`prior_weight` from the config file: the published version's item biases are the same
    deterministic fit's plus weight x spread x the prior of the data's last 28 days, and a new
    visitor folded in from their country (through the real app) is shown products that sold more
    in those weeks than without it."""
    served: dict[float, list[str]] = {}
    biases: dict[float, np.ndarray] = {}
    for weight in (0.0, 2.0):
        folder = tmp_path / f"w{weight:g}"
        folder.mkdir()
        (folder / "training.toml").write_text(
            f"prior_weight = {weight}\nsearch_trials = 0\nepochs = 3\nmax_eval_users = 300\n"
            "deterministic = true\n"
        )
        config = load_config(folder / "training.toml")
        url = f"file://{folder / 'store'}"
        record = run_pipeline(
            demo,
            store=url,
            config=config,
            runs_dir=folder / "runs",
            show_progress=False,
            force=True,
        )
        model = load_model(folder / "store" / "versions" / str(record.version))
        assert msgspec.convert(model.manifest.config, TrainingConfig).prior_weight == weight
        biases[weight] = model.arrays.item_biases
        # A visitor with attributes is folded in (one without any is shown recent popularity).
        country = next(n for n in model.user_feature_names if n.startswith("country="))
        with client_for(open_store(url)) as client:
            response = client.get(
                f"/v1/customers/NEW-VISITOR/recommendations?limit=10&{country}",
                headers=auth("recommend"),
            )
            assert response.status_code == 200, response.text
            served[weight] = [item["product_id"] for item in response.json()["items"]]
    prior = season.recent_popularity(model.arrays.purchases, model.item_ids.size)
    shift = biases[2.0].astype(np.float64) - biases[0.0]
    # One positive scale (2 x the model's spread) over every product.
    assert np.corrcoef(shift, prior)[0, 1] > 0.999 and shift @ prior > 0
    position = {product: i for i, product in enumerate(model.item_id_list)}

    def lateness(page: list[str]) -> float:
        return float(np.mean([prior[position[product]] for product in page]))

    assert served[2.0] != served[0.0]
    assert lateness(served[2.0]) > lateness(served[0.0])
