"""Self-tuning: each run chooses its LightFM settings on a validation split of its own data.

Settings tuned on one shop are a guess about the next (on a public data set, the demo's tuned
hybrid scored 0.89x a plain collaborative fit), so every run searches: the identity weight
(1 = purely collaborative), components, learning rate, loss (WARP, BPR, k-OS WARP), user and item
regularisation, which attribute fields a hybrid fit uses (`FEATURE_FIELDS`, each left out of a
draw with probability `FIELD_OFF_SHARE`), whether interaction weights scale the updates, and the
number of epochs (early stopping). The validation split lies inside the hold-out's training lines
(`holdout.validation_split`), so the hold-out that reports and gates is never seen by the search.

Successive halving (Jamieson and Talwalkar 2016): every trial gets `RUNGS[0]` epochs, the best
third goes on to `RUNGS[1]`, the best third of those trains on, scored every `CHECK_EVERY` epochs
until `PATIENCE` checks bring no gain (or `search_max_epochs`). The plain collaborative fit
(`PLAIN`: WARP, 32 components, learning rate 0.05, no features, unweighted) is exempt from the
cuts and reaches at least `PLAIN_EPOCHS`, so the chosen settings never score below it on
validation. The chosen trial's best arrays then weigh the recent-popularity prior
(`season.PRIOR_WEIGHTS`, 0 included, so the floor holds). Why not Optuna: with a dozen trials its
TPE sampler spends the first ten (`n_startup_trials`) on random draws anyway, which is what this
draws, and the halving schedule is a few lines; a dependency and its storage would buy nothing
here.

Each trial is fitted on the validation customers and, when the training lines are larger than
`search_max_interactions`, a seeded sample of the other customers (every product kept), so the
search costs the same on a million customers as on a hundred thousand.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np
import scipy.sparse as sp

from recsvc.domain.features import ITEM_FIELDS, USER_FIELDS
from recsvc.store.runs import PriorChoice, SearchRecord, SearchTrial
from training.config import TrainingConfig
from training.recommender import ease, season
from training.recommender.dataset import FeatureSpace, interacted
from training.recommender.evaluate import new_items_ndcg_per_user, sample_users
from training.recommender.fit import Trainer, unknown_from_attributes
from training.recommender.holdout import Validation

CHECK_EVERY = 5
RUNGS = (5, 15)  # epochs after which the field is cut to its best third
PATIENCE = 2  # checks without a gain before a trial stops
PLAIN_EPOCHS = 20
# The plain fit the baselines use (bench/bench_baselines.py): what "never worse" is against.
PLAIN = {
    "loss": "warp",
    "components": 32,
    "learning_rate": 0.05,
    "user_identity_weight": 1.0,
    "item_identity_weight": 1.0,
    "user_alpha": 0.0,
    "item_alpha": 0.0,
    "weighted": False,
    "features_off": (),
}

# Where random draws come from.
LOSSES = (
    "warp",
    "warp",
    "bpr",
    "warp-kos",
)  # WARP twice: it ranks best on implicit data most often
COMPONENTS = (16, 32, 48, 64, 96, 128)
IDENTITY_WEIGHTS = (1.0, 1.0, 0.95, 0.9, 0.8, 0.6)
REGULARISATION = (0.0, 0.0, 1e-6, 1e-5, 1e-4)
LEARNING_RATE = (0.01, 0.1)  # log-uniform
FEATURE_FIELDS = USER_FIELDS + ITEM_FIELDS
FIELD_OFF_SHARE = 0.25  # a hybrid draw leaves each field out with this probability


@dataclass
class _Trial:
    name: str
    config: TrainingConfig
    protected: bool = False
    trainer: Trainer | None = None
    curve: list[float] = field(default_factory=list)
    seconds: float = 0.0  # fitting and scoring
    fit_seconds: float = 0.0  # fitting alone, over `fitted_epochs`
    fitted_epochs: int = 0
    ease_seconds: float = 0.0  # one EASE fit (blends)
    epochs_override: int | None = None  # blends: the LightFM trial's
    outcome: str = "finished"
    # The item vectors, item biases and validation customers' vectors at the best score.
    best_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def best(self) -> float:
        return max(self.curve) if self.curve else -math.inf

    @property
    def best_epochs(self) -> int:
        if self.epochs_override is not None:
            return self.epochs_override
        return (int(np.argmax(self.curve)) + 1) * CHECK_EVERY if self.curve else 0


def _settings(config: TrainingConfig) -> tuple[object, ...]:
    return tuple(getattr(config, name) for name in (*PLAIN, "max_sampled"))


class SearchResult(msgspec.Struct, frozen=True):
    config: TrainingConfig  # the run's settings: the configured ones with the chosen trial's
    record: SearchRecord | None  # None: nothing to validate on, the configured settings kept


@dataclass(frozen=True, slots=True)
class _Problem:
    """The validation problem every trial is fitted and scored on."""

    interactions: sp.csr_matrix  # rows: the fitted customers
    users: FeatureSpace  # the fitted customers' features (the hold-out's), rows as `fit_users`
    fit_users: np.ndarray  # sorted indices into the hold-out's customers
    items: FeatureSpace
    item_known: np.ndarray
    rows: np.ndarray  # the validation customers' rows in `interactions`
    bought: list[np.ndarray]
    truth: list[np.ndarray]
    k: int

    def features(self, config: TrainingConfig) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        user_known = np.ones(self.fit_users.size, dtype=bool)
        user_known[np.diff(self.interactions.indptr) == 0] = False
        off = config.features_off
        return (
            self.users.matrix(config.user_identity_weight, user_known, off),
            self.items.matrix(config.item_identity_weight, self.item_known, off),
        )

    def score(self, trial: _Trial) -> float:
        assert trial.trainer is not None
        biases, vectors = trial.trainer.item_representations()
        if trial.config.item_identity_weight == 1.0:
            vectors, biases = unknown_from_attributes(
                vectors,
                biases,
                self.items.collapsed_rows(trial.config.features_off),
                self.item_known,
            )
        return self.scored(trial, vectors, biases, trial.trainer.user_vectors(self.rows))

    def ndcg(self, vectors: np.ndarray, biases: np.ndarray, users: np.ndarray) -> float:
        per_user = new_items_ndcg_per_user(vectors, biases, users, self.bought, self.truth, self.k)
        return float(per_user.mean()) if per_user.size else 0.0

    def scored(
        self, trial: _Trial, vectors: np.ndarray, biases: np.ndarray, users: np.ndarray
    ) -> float:
        """The trial's validation NDCG with these arrays; they are kept when it is the trial's
        best yet (the recent-popularity prior is tuned on the chosen trial's best)."""
        value = self.ndcg(vectors, biases, users)
        if value > trial.best:
            trial.best_arrays = (vectors, biases, users)
        return value


def _problem(
    validation: Validation, users: FeatureSpace, items: FeatureSpace, config: TrainingConfig
) -> _Problem | None:
    validated = sample_users(
        validation.train, validation.test, config.search_validation_users, config.seed
    )
    if not validated.size:
        return None
    interactions = validation.interactions.tocsr()
    fit_users = np.arange(interactions.shape[0])
    if interactions.nnz > config.search_max_interactions:
        per_user = np.diff(interactions.indptr)
        rest = np.setdiff1d(np.flatnonzero(per_user), validated)
        rest = np.random.default_rng(config.seed).permutation(rest)
        room = config.search_max_interactions - int(per_user[validated].sum())
        taken = int(np.searchsorted(np.cumsum(per_user[rest]), max(room, 0), side="right"))
        fit_users = np.sort(np.concatenate([validated, rest[:taken]]))
        interactions = interactions[fit_users]
    _, item_known = interacted(interactions.tocoo())
    return _Problem(
        interactions=interactions,
        users=users.subset(fit_users),
        fit_users=fit_users,
        items=items,
        item_known=item_known,
        rows=np.searchsorted(fit_users, validated),
        bought=[validation.train.items[validation.train.row(int(u))] for u in validated],
        truth=[validation.test.items[validation.test.row(int(u))] for u in validated],
        k=config.k,
    )


def candidates(
    config: TrainingConfig, previous: TrainingConfig | None
) -> list[tuple[str, TrainingConfig, bool]]:
    """The trials, in order: (name, settings, exempt from the cuts). The plain collaborative fit,
    the configured settings, the previous run's choice (warm start), then seeded draws: around the
    previous choice when there is one (fewer of them: `search_warm_share`), from the whole space
    otherwise."""
    out: list[tuple[str, TrainingConfig, bool]] = [
        ("plain collaborative", msgspec.structs.replace(config, **PLAIN), True)
    ]
    seen = {_settings(out[0][1])}

    def add(name: str, candidate: TrainingConfig) -> None:
        if _settings(candidate) not in seen and len(out) < max(config.search_trials, 1):
            seen.add(_settings(candidate))
            out.append((name, candidate, False))

    add("configured", config)
    rng = np.random.default_rng(config.seed)
    if previous is not None:
        add("previous best", _with_settings(config, previous))
        total = min(
            config.search_trials, len(out) + round(config.search_trials * config.search_warm_share)
        )
        draw = lambda: _near(_with_settings(config, previous), rng)  # noqa: E731
    else:
        total = config.search_trials
        draw = lambda: _draw(config, rng)  # noqa: E731
    for attempt in range(20 * max(total, 1)):
        if len(out) >= total:
            break
        add(f"draw {attempt + 1}", draw())
    return out


def _with_settings(config: TrainingConfig, source: TrainingConfig) -> TrainingConfig:
    return msgspec.structs.replace(config, **{name: getattr(source, name) for name in PLAIN})


def _draw(config: TrainingConfig, rng: np.random.Generator) -> TrainingConfig:
    low, high = np.log(LEARNING_RATE[0]), np.log(LEARNING_RATE[1])
    identity = float(rng.choice(IDENTITY_WEIGHTS))
    alpha = float(rng.choice(REGULARISATION))
    drawn = msgspec.structs.replace(
        config,
        loss=str(rng.choice(LOSSES)),
        components=int(rng.choice(COMPONENTS)),
        learning_rate=float(f"{np.exp(rng.uniform(low, high)):.3g}"),
        user_identity_weight=identity,
        item_identity_weight=identity,
        user_alpha=alpha,
        item_alpha=alpha,
        weighted=bool(rng.integers(2)),
        features_off=_fields_off(rng) if identity < 1.0 else (),
    )
    # k-OS WARP takes no sample weights (`fit.Trainer`): say so in the record rather than drop them.
    return msgspec.structs.replace(drawn, weighted=drawn.weighted and drawn.loss != "warp-kos")


def _fields_off(rng: np.random.Generator) -> tuple[str, ...]:
    off = rng.random(len(FEATURE_FIELDS)) < FIELD_OFF_SHARE
    return tuple(name for name, drop in zip(FEATURE_FIELDS, off, strict=True) if drop)


def _near(config: TrainingConfig, rng: np.random.Generator) -> TrainingConfig:
    """A step from `config` in one or two settings: the warm start's local search."""
    other = _draw(config, rng)
    names = ["components", "learning_rate", "identity", "alpha", "loss", "weighted", "features"]
    changed = set(rng.choice(names, size=int(rng.integers(1, 3)), replace=False).tolist())
    updates: dict[str, object] = {}
    if "components" in changed:
        updates["components"] = int(np.clip(config.components * rng.choice([0.5, 2.0]), 8, 256))
    if "learning_rate" in changed:
        updates["learning_rate"] = float(f"{config.learning_rate * rng.choice([0.5, 2.0]):.3g}")
    if "identity" in changed:
        updates["user_identity_weight"] = other.user_identity_weight
        updates["item_identity_weight"] = other.item_identity_weight
        updates["features_off"] = other.features_off
    if "features" in changed and config.user_identity_weight < 1.0:
        # One field switched: left out if it was in, back in if it was out.
        flip = str(rng.choice(FEATURE_FIELDS))
        updates["features_off"] = tuple(
            name for name in FEATURE_FIELDS if (name in config.features_off) != (name == flip)
        )
    if "alpha" in changed:
        updates["user_alpha"] = other.user_alpha
        updates["item_alpha"] = other.item_alpha
    if "loss" in changed:
        updates["loss"] = other.loss
    if "weighted" in changed:
        updates["weighted"] = not config.weighted
    near = msgspec.structs.replace(config, **updates)
    return msgspec.structs.replace(
        near,
        weighted=near.weighted and near.loss != "warp-kos",
        features_off=near.features_off if near.user_identity_weight < 1.0 else (),
    )


def search(
    validation: Validation,
    users: FeatureSpace,
    items: FeatureSpace,
    config: TrainingConfig,
    previous: TrainingConfig | None,
    *,
    full_interactions: int,
    show: bool = True,
) -> SearchResult:
    """Choose the run's settings (see the module's docstring)."""
    started = time.perf_counter()
    problem = _problem(validation, users, items, config) if config.search_trials else None
    if problem is None:
        return SearchResult(config, None)
    budget = None if config.deterministic else config.search_budget_seconds
    trials = [_Trial(name, cfg, protected) for name, cfg, protected in candidates(config, previous)]
    features: dict[tuple[float, float, tuple[str, ...]], tuple[sp.csr_matrix, sp.csr_matrix]] = {}

    def over_budget() -> bool:
        return budget is not None and time.perf_counter() - started > budget

    def train_to(trial: _Trial, epochs: int, *, stop_early: bool) -> None:
        if trial.trainer is None:
            key = (
                trial.config.user_identity_weight,
                trial.config.item_identity_weight,
                trial.config.features_off,
            )
            if key not in features:
                features[key] = problem.features(trial.config)
            user_features, item_features = features[key]
            trial.trainer = Trainer(
                problem.interactions, user_features, item_features, trial.config
            )
        while trial.trainer.epochs < epochs:
            if over_budget() and not (trial.protected and trial.trainer.epochs < PLAIN_EPOCHS):
                trial.outcome = "budget"
                return
            began = time.perf_counter()
            trial.trainer.advance(CHECK_EVERY)
            trial.fit_seconds += sum(trial.trainer.epoch_seconds[-CHECK_EVERY:])
            trial.fitted_epochs += CHECK_EVERY
            trial.curve.append(problem.score(trial))
            trial.seconds += time.perf_counter() - began
            since_best = len(trial.curve) - 1 - int(np.argmax(trial.curve))
            if (
                stop_early
                and since_best >= PATIENCE
                and trial.trainer.epochs >= (PLAIN_EPOCHS if trial.protected else 0)
            ):
                trial.outcome = "early stop"
                return
        trial.outcome = "finished"

    field_ = trials
    for rung, epochs in enumerate(RUNGS):
        for trial in field_:
            train_to(trial, epochs, stop_early=False)
            _log(trial, show)
        ranked = sorted((t for t in field_ if t.outcome != "budget"), key=lambda t: -t.best)
        keep = max(math.ceil(len(ranked) / 3), 2 if rung == 0 else 1)
        survivors = {id(t) for t in ranked[:keep]} | {id(t) for t in field_ if t.protected}
        for trial in field_:
            if id(trial) not in survivors:
                if trial.outcome != "budget":
                    trial.outcome = f"halved at {trial.trainer.epochs if trial.trainer else 0}"
                trial.trainer = None  # its memory back
                trial.best_arrays = None
        field_ = [t for t in field_ if id(t) in survivors]
    for trial in field_:
        train_to(trial, config.search_max_epochs, stop_early=True)
        _log(trial, show)
    # EASE and its blends with the best purely collaborative trial that finished.
    collaborative = [t for t in field_ if t.trainer is not None and _collaborative(t.config)]
    ease_note = ease_check(items.ids.size, config)
    if ease_note.startswith("tried") and collaborative and not over_budget():
        base = max(collaborative, key=lambda t: t.best)
        # A warm start re-checks the previous lambda and its neighbours only.
        lambdas: tuple[float, ...] = EASE_LAMBDAS
        if previous is not None and previous.ranker == "blend":
            lambdas = tuple(previous.ease_lambda * f for f in (0.5, 1.0, 2.0))
        trials += _ease_trials(problem, base, config, lambdas, over_budget, show)
    elif ease_note.startswith("tried"):
        ease_note = "skipped: the search's budget was spent"
    for trial in field_:
        trial.trainer = None

    # The run then fits the choice twice on every line (hold-out, served): settings whose projected
    # cost there exceeds `fit_budget_seconds` are not chosen (the plain fit always may be).
    def projected(trial: _Trial) -> float:
        per_epoch = trial.fit_seconds / max(trial.fitted_epochs, 1)
        lightfm = per_epoch * full_interactions / problem.interactions.nnz * trial.best_epochs
        return (lightfm + trial.ease_seconds) * 2

    for trial in trials:
        if not trial.protected and trial.curve and projected(trial) > config.fit_budget_seconds:
            trial.outcome = f"over fit budget ({projected(trial):.0f}s)"
    eligible = [t for t in trials if t.protected or not t.outcome.startswith("over fit budget")]
    chosen = max(eligible, key=lambda t: t.best)  # ties: the earlier trial (the plain fit first)
    chosen.outcome = "chosen"
    prior = _tune_prior(problem, chosen, validation, config)
    settings = msgspec.structs.replace(
        chosen.config,
        epochs=max(chosen.best_epochs, 1),
        prior_weight=prior.weight if prior else 0.0,
    )
    for trial in trials:
        trial.best_arrays = None
    record = SearchRecord(
        chosen=chosen.name,
        split=validation.kind,
        validation_users=int(problem.rows.size),
        fit_customers=int(problem.fit_users.size),
        interactions=int(problem.interactions.nnz),
        check_every=CHECK_EVERY,
        budget_seconds=budget,
        seconds=round(time.perf_counter() - started, 3),
        warm_start=previous is not None,
        trials=[_record(t) for t in trials],
        ease=ease_note,
        prior=prior,
    )
    if show:
        print(format_search(record), file=sys.stderr, flush=True)
    return SearchResult(settings, record)


# EASE's regularisation: Steck's data sets took 200-3,000; the grid spans shops from sparse to dense.
EASE_LAMBDAS = (50.0, 200.0, 500.0, 1_000.0, 3_000.0)
BLEND_WEIGHTS = (0.25, 0.5, 0.75)  # LightFM's share; 0 (EASE alone) is tried for every lambda


def _collaborative(config: TrainingConfig) -> bool:
    return config.user_identity_weight == 1.0 and config.item_identity_weight == 1.0


def ease_check(n_items: int, config: TrainingConfig) -> str:
    """Whether EASE is tried on this catalogue, and why not when it is not."""
    needed = ease.dense_bytes(n_items)
    if needed > config.ease_max_bytes:
        return (
            f"skipped: {n_items:,} products need {needed / 1e9:.1f} GB of dense matrices "
            f"> ease_max_bytes {config.ease_max_bytes / 1e9:.1f} GB"
        )
    if config.deterministic:
        # The clock is ignored here as everywhere in this mode: a timing probe on a busy machine
        # (415 s projected for Instacart's 14,190 products, 27 s on a quiet one) would change
        # the candidates, and so the choice, from one run to the next.
        return (
            f"tried: {n_items:,} products, {needed / 1e9:.2f} GB (deterministic: time not checked)"
        )
    seconds = ease.inverse_seconds(n_items)
    if seconds > config.ease_max_seconds:
        return (
            f"skipped: {n_items:,} products, one inverse projected at {seconds:.0f}s "
            f"> ease_max_seconds {config.ease_max_seconds:.0f}s"
        )
    return f"tried: {n_items:,} products, {needed / 1e9:.2f} GB, ~{seconds:.1f}s per inverse"


def _ease_trials(
    problem: _Problem,
    base: _Trial,
    config: TrainingConfig,
    lambdas: tuple[float, ...],
    over_budget: Callable[[], bool],
    show: bool,
) -> list[_Trial]:
    """EASE alone for each lambda, then blends of the best lambda with `base` (a purely
    collaborative LightFM trial, as it stopped)."""
    assert base.trainer is not None
    x = ease.binary(problem.interactions)
    g = ease.gram(x)
    rows = x[problem.rows]
    biases, vectors = base.trainer.item_representations()
    lightfm = (base.trainer.user_vectors(problem.rows), vectors, biases)
    spread_l = ease.score_spread(*lightfm, config.seed)
    base_settings = {name: getattr(base.config, name) for name in PLAIN}
    out: list[_Trial] = []
    factors: dict[float, tuple[np.ndarray, np.ndarray, float, float]] = {}

    def scored(trial: _Trial, lam: float, weight: float) -> _Trial:
        users_e, items_e, spread_e, _ = factors[lam]
        users, items, item_biases = ease.blend_vectors(
            lightfm, (users_e, items_e), weight, (spread_l, spread_e)
        )
        items, item_biases = unknown_from_attributes(
            items, item_biases, problem.items.attribute_rows, problem.item_known
        )
        trial.curve = [problem.scored(trial, items, item_biases, users)]
        _log(trial, show)
        return trial

    def blend_trial(name: str, lam: float, weight: float) -> _Trial:
        settings = msgspec.structs.replace(
            config, **base_settings, ranker="blend", ease_lambda=lam, blend_weight=weight
        )
        return _Trial(
            name,
            settings,
            fit_seconds=base.fit_seconds,
            fitted_epochs=base.fitted_epochs,
            ease_seconds=factors[lam][3],
            epochs_override=base.best_epochs,
            seconds=factors[lam][3],
        )

    for lam in lambdas:
        if over_budget():
            break
        began = time.perf_counter()
        left, right = ease.factor(ease.ease_weights(g, lam), config.ease_rank, config.seed)
        users_e = ease.customer_vectors(rows, left)
        spread_e = ease.score_spread(users_e, right, np.zeros(right.shape[0]), config.seed)
        factors[lam] = (users_e, right, spread_e, time.perf_counter() - began)
        out.append(scored(blend_trial(f"EASE lambda {lam:g}", lam, 0.0), lam, 0.0))
    if not out:
        return out
    best = max(out, key=lambda t: t.best).config.ease_lambda
    for weight in BLEND_WEIGHTS:
        if over_budget():
            break
        # Short, a chart label: the trial's LightFM settings are its LightFM half's.
        name = f"blend {weight:g}"
        out.append(scored(blend_trial(name, best, weight), best, weight))
    return out


def _tune_prior(
    problem: _Problem, chosen: _Trial, validation: Validation, config: TrainingConfig
) -> PriorChoice | None:
    """The recent-popularity prior's weight for the chosen settings (`season`): each of
    `season.PRIOR_WEIGHTS` added to the chosen trial's best item biases and scored on validation;
    the best wins, ties to the lighter. None when the trial kept no arrays (nothing was scored)."""
    if chosen.best_arrays is None:
        return None
    vectors, biases, users = chosen.best_arrays
    prior = season.recent_popularity(validation.train, vectors.shape[0])
    spread = ease.score_spread(users, vectors, biases, config.seed)
    ndcg = {
        weight: problem.ndcg(vectors, season.with_prior(biases, prior, weight, spread), users)
        for weight in season.PRIOR_WEIGHTS
    }
    best = max(season.PRIOR_WEIGHTS, key=lambda w: (ndcg[w], -w))
    return PriorChoice(
        weight=best, days=season.PRIOR_DAYS, ndcg={f"{w:g}": round(v, 6) for w, v in ndcg.items()}
    )


def _record(trial: _Trial) -> SearchTrial:
    cfg = trial.config
    return SearchTrial(
        name=trial.name,
        ranker=cfg.ranker,
        blend_weight=cfg.blend_weight if cfg.ranker == "blend" else None,
        ease_lambda=cfg.ease_lambda if cfg.ranker == "blend" else None,
        loss=cfg.loss,
        components=cfg.ease_rank
        if cfg.ranker == "blend" and cfg.blend_weight == 0
        else cfg.components,
        learning_rate=cfg.learning_rate,
        identity_weight=cfg.user_identity_weight,
        regularisation=cfg.user_alpha,
        weighted=cfg.weighted,
        features_off=list(cfg.features_off),
        epochs=trial.best_epochs,
        ndcg=round(trial.best, 6) if trial.curve else 0.0,
        curve=[round(v, 6) for v in trial.curve],
        seconds=round(trial.seconds, 3),
        outcome=trial.outcome,
    )


def _log(trial: _Trial, show: bool) -> None:
    if show and trial.curve:
        epochs = trial.trainer.epochs if trial.trainer else len(trial.curve) * CHECK_EVERY
        print(
            f"[search] {trial.name}: {epochs} epochs, validation NDCG {trial.curve[-1]:.4f} "
            f"(best {trial.best:.4f}), {trial.seconds:.1f}s",
            file=sys.stderr,
            flush=True,
        )


def format_search(record: SearchRecord) -> str:
    """The search table for people (the run's output, `python -m training runs`)."""
    budget = (
        "no time budget (deterministic)"
        if record.budget_seconds is None
        else (f"budget {record.budget_seconds:.0f}s")
    )
    lines = [
        f"search: {len(record.trials)} trials in {record.seconds:.0f}s ({budget}), "
        f"{record.validation_users:,} validation customers ({record.split} split), fitted on "
        f"{record.fit_customers:,} customers / {record.interactions:,} interactions"
        + (", warm start" if record.warm_start else "")
        + (f"; EASE {record.ease}" if record.ease else ""),
        f"  {'trial':<34} {'loss':<8} {'dims':>4} {'lr':>6} {'identity':>8} {'alpha':>7} "
        f"{'weighted':>8} {'epochs':>6} {'ndcg':>7} {'secs':>6}  outcome",
    ]
    for t in sorted(record.trials, key=lambda t: -t.ndcg):
        if t.blend_weight == 0.0:  # EASE alone: no LightFM settings to show
            lines.append(
                f"  {t.name:<34} {'ease':<8} {t.components:>4} {'-':>6} {1:>8.2f} "
                f"{t.ease_lambda or 0:>7g} {'no':>8} {'-':>6} {t.ndcg:>7.4f} {t.seconds:>6.1f}  "
                f"{t.outcome}"
            )
            continue
        lines.append(
            f"  {t.name:<34} {t.loss:<8} {t.components:>4} {t.learning_rate:>6.3g} "
            f"{t.identity_weight:>8.2f} {t.regularisation:>7.0e} {'yes' if t.weighted else 'no':>8} "
            f"{t.epochs:>6} {t.ndcg:>7.4f} {t.seconds:>6.1f}  {t.outcome}"
            + (f"; without {', '.join(t.features_off)}" if t.features_off else "")
        )
    if record.prior is not None:
        lines.append(f"  {describe_prior(record.prior)}")
    return "\n".join(lines)


def describe_prior(prior: PriorChoice) -> str:
    """The recent-popularity prior's choice and its validation NDCG per weight, in a line."""
    tried = ", ".join(f"{w} {v:.4f}" for w, v in prior.ndcg.items())
    return (
        f"recent-popularity prior ({prior.days} days' buyers): weight {prior.weight:g} chosen "
        f"on validation (NDCG by weight: {tried})"
    )


def describe_search(record: SearchRecord) -> str:
    """One line: what the search chose, against the plain collaborative fit, on validation."""
    chosen = next(t for t in record.trials if t.name == record.chosen)
    plain = next((t for t in record.trials if t.name == "plain collaborative"), None)
    against = f" (plain collaborative {plain.ndcg:.4f})" if plain is not None else ""
    features = (
        "no features"
        if chosen.identity_weight == 1.0
        else (f"identity weight {chosen.identity_weight:g}")
    )
    if chosen.features_off and chosen.identity_weight < 1.0:
        features += f" without {', '.join(chosen.features_off)}"
    what = (
        f"{chosen.loss}, {chosen.components} components, learning rate "
        f"{chosen.learning_rate:g}, {features}, {chosen.epochs} epochs"
    )
    if chosen.ranker == "blend":
        what = (
            f"EASE (lambda {chosen.ease_lambda:g}) with LightFM weighing {chosen.blend_weight:g} "
            f"({what})"
        )
    if record.prior is not None and record.prior.weight:
        what += f", recent-popularity prior {record.prior.weight:g}"
    return (
        f"search: chosen {record.chosen}: {what}; validation NDCG {chosen.ndcg:.4f}{against}; "
        f"{len(record.trials)} trials in {record.seconds:.0f}s"
    )
