"""The training run's configuration: defaults here, optionally overridden by a TOML file.

Stored with every artifact, so a published version says exactly how it was made.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from recsvc.domain.features import ITEM_FIELDS, USER_FIELDS
from recsvc.errors import ConfigError


class InteractionWeights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The first purchase of a product says the most about taste.
    purchase: Annotated[float, Meta(ge=0)] = 1.0
    # Each further purchase of the same product adds less: it says "consumable" as much as "taste".
    repeat_purchase: Annotated[float, Meta(ge=0)] = 0.5
    # A returned line is subtracted; WARP takes no negative weights, so a pair whose total falls to
    # zero or below is dropped rather than taught as a dislike.
    returned: Annotated[float, Meta(le=0)] = -1.0
    # Older purchases count less: weight halves every this many days before the cut-off.
    recency_half_life_days: Annotated[float, Meta(gt=0)] = 365.0


class TrainingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    loss: Literal["warp", "bpr", "warp-kos", "logistic"] = "warp"
    components: Annotated[int, Meta(ge=2, le=512)] = 48
    epochs: Annotated[int, Meta(ge=1, le=500)] = 25
    learning_rate: Annotated[float, Meta(gt=0)] = 0.03
    item_alpha: Annotated[float, Meta(ge=0)] = 0.0
    user_alpha: Annotated[float, Meta(ge=0)] = 0.0
    # Share of the identity feature in a known customer's (product's) feature row; the attribute
    # features share the rest. LightFM's default (equal shares) drowns personal taste in five
    # population-wide attributes; 0.8 scored best on the demo hold-out (docs/recommender.md). 1 is
    # purely collaborative: attributes then only place new customers and products (as the mean
    # of the known ones that share them). The search (below) tunes it per shop.
    user_identity_weight: Annotated[float, Meta(gt=0, le=1)] = 0.8
    item_identity_weight: Annotated[float, Meta(gt=0, le=1)] = 0.8
    # Attribute fields the fit leaves out (any of `recsvc.domain.features.USER_FIELDS` and
    # `ITEM_FIELDS`): all values of such a field share one embedding, so it places nobody. A field
    # that helps one shop is noise in another; the search turns them on and off per shop.
    features_off: tuple[str, ...] = ()
    # Each pair's update scaled by its interaction weight (`weights` below); False: every bought
    # pair counts alike, as a plain LightFM fit on purchases does.
    weighted: bool = True
    max_sampled: Annotated[int, Meta(ge=1)] = 10
    # What ranks: "lightfm" (the settings above), or "blend": a purely collaborative LightFM fit
    # (identity weights 1) beside EASE, LightFM weighing `blend_weight` (0: EASE alone). The
    # search chooses (docs/recommender.md, "EASE").
    ranker: Literal["lightfm", "blend"] = "lightfm"
    blend_weight: Annotated[float, Meta(ge=0, le=1)] = 0.5
    ease_lambda: Annotated[float, Meta(gt=0)] = 500.0
    # Weight of the recent-popularity prior on the item biases (`training.recommender.season`):
    # 0 is the model alone; the search chooses it per shop on validation.
    prior_weight: Annotated[float, Meta(ge=0)] = 0.0
    ease_rank: Annotated[int, Meta(ge=8, le=1024)] = 256
    # EASE is tried only when its dense matrices fit this memory and one inverse this time (timed
    # here at run time): on a 2-core machine, catalogues up to about 19,000 products.
    ease_max_bytes: Annotated[int, Meta(ge=0)] = 3_000_000_000
    ease_max_seconds: Annotated[float, Meta(ge=0)] = 120.0
    # Reproducible mode: one thread and a fixed seed give identical models run after run.
    deterministic: bool = False
    threads: Annotated[int, Meta(ge=0)] = 0  # 0 = all cores
    seed: int = 42
    weights: InteractionWeights = InteractionWeights()
    # Self-tuning (docs/recommender.md, "Search"): before the hold-out fit, this many LightFM
    # configurations (0: none, fit the settings above as they are) are fitted on the training lines
    # and scored on validation customers (half of those the hold-out could evaluate; the other
    # half reports), by successive halving with early stopping; the best becomes the run's
    # settings. The plain collaborative fit is always one of them and always finishes, so the
    # chosen settings never score below it on validation.
    search_trials: Annotated[int, Meta(ge=0, le=100)] = 12
    # With an active version, its settings start the search and only this share of the trials is
    # drawn afresh: a nightly run re-checks yesterday's choice cheaply.
    search_warm_share: Annotated[float, Meta(ge=0, le=1)] = 0.34
    # Wall-clock budget of the search: no trial starts or continues past it (the plain fit still
    # finishes). Ignored with `deterministic`, where the trials alone bound the search.
    search_budget_seconds: Annotated[float, Meta(gt=0)] = 480.0
    # The search fits on the validation customers and a sample of others up to this many
    # interactions (the hold-out and served fits use every line).
    search_max_interactions: Annotated[int, Meta(ge=1_000)] = 1_000_000
    search_validation_users: Annotated[int, Meta(ge=50)] = 5_000
    search_max_epochs: Annotated[int, Meta(ge=5, le=500)] = 60
    # The hold-out and served fits of the chosen settings, projected from the search's own epochs
    # to every line, may take at most this long together: slower settings are not chosen.
    fit_budget_seconds: Annotated[float, Meta(gt=0)] = 900.0
    # Evaluation: the last `holdout_days` of orders are the test set, for customers seen before...
    holdout_days: Annotated[int, Meta(ge=1)] = 28
    # ... when that holds at least this many customers who bought on both sides of the cut-off (or
    # every customer a last-orders split could hold, when fewer exist). Otherwise each customer's
    # last `holdout_orders` orders are the test set (docs/recommender.md, "Evaluation").
    min_holdout_customers: Annotated[int, Meta(ge=0)] = 500
    holdout_orders: Annotated[int, Meta(ge=1, le=100)] = 1
    k: Annotated[int, Meta(ge=1, le=100)] = 10
    max_eval_users: Annotated[int, Meta(ge=100)] = 20_000
    # After evaluation, fit again on all data (the published model then knows the last weeks too).
    refit_on_all_data: bool = True
    # Quality gate: refuse to publish when NDCG@k drops by more than this (absolute) vs the active model.
    gate_tolerance: Annotated[float, Meta(ge=0)] = 0.01
    keep_versions: Annotated[int, Meta(ge=1)] = 3
    # Best never-bought items stored per customer with the version, so the service answers most
    # requests with a lookup instead of scoring the catalogue (0: none, every request scores).
    # Pages past this many items, and filters that leave too few of them, fall back to scoring.
    serving_candidates: Annotated[int, Meta(ge=0, le=1000)] = 40
    # Neighbours stored per product with the version, so that a product page is a lookup instead of
    # summing the purchases of the product's buyers (0: none, every product page is computed live).
    # Pages whose filters leave fewer of them than asked are computed live.
    similar_list: Annotated[int, Meta(ge=0, le=1000)] = 100
    # Live NPS answers no published version holds (their customer is not in the shop's data) move
    # to the archive after this many days, so they cannot pile up in live for ever.
    live_retention_days: Annotated[float, Meta(gt=0)] = 90.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.features_off) - set(USER_FIELDS) - set(ITEM_FIELDS))
        if unknown:
            raise ValueError(
                f"features_off: unknown field(s) {', '.join(map(repr, unknown))}; fields are "
                f"{', '.join(USER_FIELDS + ITEM_FIELDS)}"
            )
        if self.ranker == "blend" and (self.user_identity_weight, self.item_identity_weight) != (
            1.0,
            1.0,
        ):
            raise ValueError(
                "ranker 'blend' needs user_identity_weight = item_identity_weight = 1 (EASE takes"
                " no features; the blend's LightFM half is purely collaborative)"
            )

    @property
    def num_threads(self) -> int:
        if self.deterministic:
            return 1
        return self.threads or (os.cpu_count() or 1)


def load_config(path: Path | None = None, **overrides: object) -> TrainingConfig:
    """Defaults, then the TOML file (if any), then explicit overrides (None ignored)."""
    raw: dict[str, object] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read training config: {exc}") from None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(raw, TrainingConfig)
    except msgspec.ValidationError as exc:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}invalid training config: {exc}") from None
