"""The offer catalog (a TOML file marketers edit): its offers, the experiment each runs, and which
offers a customer's segments earn, in priority order. Shared by the service (which shows offers)
and the training run (which analyses their experiments); `recsvc.service.offers` attaches products.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from recsvc.domain.experiments import RECOMMENDATIONS_EXPERIMENT, ExperimentConfig
from recsvc.errors import ConfigError

DEFAULT_OFFERS_PATH = Path(__file__).parents[1] / "defaults" / "offers.toml"
OfferKind = Literal[
    "reward",
    "referral",
    "engagement",
    "feedback_request",
    "recovery",
    "service_follow_up",
    "win_back",
    "welcome",
]


class OfferDefinition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: OfferKind
    title: Annotated[str, Meta(min_length=1, max_length=200)]
    text: Annotated[str, Meta(max_length=2000)] = ""
    segments: Annotated[list[str], Meta(min_length=1)]
    priority: int = 0
    discount_percent: Annotated[float, Meta(ge=0, le=100)] = 0.0
    validity_days: Annotated[int, Meta(ge=1, le=3650)] = 30
    products: Annotated[int, Meta(ge=0, le=20)] = 0
    # Run as an experiment: a holdout share of the customers who earn it do not get it.
    experiment: ExperimentConfig | None = None

    def experiment_id(self, offer_id: str) -> str | None:
        if self.experiment is None:
            return None
        return self.experiment.id or offer_id


class _CatalogFile(msgspec.Struct, forbid_unknown_fields=True):
    offers: dict[str, OfferDefinition]


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    title: str
    text: str
    priority: int
    discount_percent: float
    valid_until: dt.date
    segment: str  # the customer's segment that earned it


class OfferCatalog(msgspec.Struct, frozen=True):
    offers: dict[str, OfferDefinition]

    def for_segments(
        self, segments: list[str], today: dt.date
    ) -> list[tuple[Offer, OfferDefinition]]:
        """Offers earned by any of the segments, highest priority first (ties by id)."""
        chosen = []
        for offer_id, offer in self.offers.items():
            earned_by = next((s for s in segments if s in offer.segments), None)
            if earned_by is None:
                continue
            chosen.append(
                (
                    Offer(
                        id=offer_id,
                        kind=offer.kind,
                        title=offer.title,
                        text=offer.text,
                        priority=offer.priority,
                        discount_percent=offer.discount_percent,
                        valid_until=today + dt.timedelta(days=offer.validity_days),
                        segment=earned_by,
                    ),
                    offer,
                )
            )
        chosen.sort(key=lambda pair: (-pair[0].priority, pair[0].id))
        return chosen


def load_offers(path: Path | None = None, known_segments: set[str] | None = None) -> OfferCatalog:
    """Read and check a catalog; a ConfigError names the file, the offer and the problem."""
    path = path or DEFAULT_OFFERS_PATH
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the offer catalog: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown_keys = sorted(set(raw) - {"offers"})
    if unknown_keys or not isinstance(raw.get("offers"), dict):
        raise ConfigError(
            f"{path}: expected only [offers.<id>] tables, found {', '.join(unknown_keys) or 'none'}"
        )
    offers: dict[str, OfferDefinition] = {}
    # Offer by offer, so an error names the offer (msgspec does not name dict keys).
    for offer_id, table in raw["offers"].items():
        try:
            offers[offer_id] = msgspec.convert(table, OfferDefinition)
        except msgspec.ValidationError as exc:
            problem, _, where = str(exc).partition(" - at ")
            field = where.strip("`").removeprefix("$.") or "the table"
            raise ConfigError(f"{path}: offer {offer_id!r}: {problem} (at {field})") from None
    catalog = _CatalogFile(offers)
    if known_segments is not None:
        for offer_id, definition in catalog.offers.items():
            unknown = sorted(set(definition.segments) - known_segments)
            if unknown:
                raise ConfigError(
                    f"{path}: offer {offer_id!r}: unknown segment(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(known_segments))}"
                )
    _check_experiment_ids(path, catalog.offers)
    return OfferCatalog(catalog.offers)


def _check_experiment_ids(path: Path, offers: dict[str, OfferDefinition]) -> None:
    """One experiment per id: two offers sharing one would mix their customers in one analysis,
    and `recommendations` is the personalisation experiment's."""
    owner: dict[str, str] = {}
    for offer_id, definition in offers.items():
        experiment = definition.experiment_id(offer_id)
        if experiment is None:
            continue
        if experiment == RECOMMENDATIONS_EXPERIMENT:
            raise ConfigError(
                f"{path}: offer {offer_id!r}: experiment id {experiment!r} is reserved for the "
                "personalisation experiment (at experiment.id)"
            )
        if experiment in owner:
            raise ConfigError(
                f"{path}: offer {offer_id!r}: experiment id {experiment!r} is already offer "
                f"{owner[experiment]!r}'s (at experiment.id)"
            )
        owner[experiment] = offer_id
