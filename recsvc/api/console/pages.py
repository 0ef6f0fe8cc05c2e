"""What each console page shows, gathered from the same services the API answers from: the page and
the endpoint named beside each function never disagree. Plain data for the templates; the charts
are `recsvc.charts`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recsvc import charts
from recsvc.api.customers.schemas import CustomerProfile
from recsvc.api.customers.services import profile_of
from recsvc.api.nps.services import nps_summary, nps_themes
from recsvc.api.segments.services import segment_list
from recsvc.api.storefront.schemas import OffersResponse, RecommendationResponse
from recsvc.api.storefront.services import offers_for, recommendations_for
from recsvc.api.versions.schemas import ModelList
from recsvc.api.versions.services import list_models
from recsvc.domain.experiments import ExperimentResult, Outcome, OutcomeResult
from recsvc.domain.nps import NpsResult, ZTest, two_sample_z
from recsvc.domain.offers import OfferCatalog
from recsvc.service.experiment_results import experiment_results, find_experiment
from recsvc.service.nps_history import CustomerNpsAnswers, customer_answers
from recsvc.service.nps_summary import NpsSummary
from recsvc.service.nps_themes import ThemeSummary
from recsvc.service.runtime import ModelHolder
from recsvc.store.base import Store
from recsvc.store.runs import RunRecord, read_records
from recsvc.version.opened import ActiveModel
from recsvc.version.profiles import SegmentInfo

PRE, POST = "pre_delivery", "post_delivery"


# --- overview: GET /v1/nps/summary (overall, by month, by touchpoint), the run log ---------------


@dataclass(frozen=True, slots=True)
class DeliveryGap:
    pre: NpsResult
    post: NpsResult
    test: ZTest | None  # post minus pre


@dataclass(frozen=True, slots=True)
class Overview:
    summary: NpsSummary
    months: NpsSummary
    touchpoints: NpsSummary
    trend_svg: str
    touchpoint_svg: str
    gap: DeliveryGap | None
    last_run: RunRecord | None
    last_gate_run: RunRecord | None  # the latest run that reached the gate


def overview(model: ActiveModel, holder: ModelHolder, store: Store) -> Overview:
    # The overall figures come with any grouping: the month grouping's are the overview's.
    months = nps_summary(model, holder, by="month", since=None, until=None)
    touchpoints = nps_summary(model, holder, by="touchpoint", since=None, until=None)
    points = [
        charts.TrendPoint(
            group.label,
            group.nps,
            group.test.difference if group.significant and group.test is not None else None,
        )
        for group in months.groups
    ]
    by_touchpoint = {group.label: group.nps for group in touchpoints.groups}
    gap = None
    if PRE in by_touchpoint and POST in by_touchpoint:
        pre, post = by_touchpoint[PRE], by_touchpoint[POST]
        gap = DeliveryGap(pre=pre, post=post, test=two_sample_z(post, pre))
    runs = read_records(store.run_log())
    return Overview(
        summary=months,
        months=months,
        touchpoints=touchpoints,
        trend_svg=charts.trend_chart(points),
        touchpoint_svg=charts.nps_bars(
            [
                charts.BarRow(
                    group.label.replace("_", " "),
                    group.nps,
                    group.test.difference if group.test is not None else None,
                    group.significant,
                )
                for group in touchpoints.groups
            ],
            "NPS by touchpoint",
        ),
        gap=gap,
        last_run=runs[0] if runs else None,
        last_gate_run=next((run for run in runs if run.gate is not None), None),
    )


# --- segments: GET /v1/segments, the membership journal's last activation -------------------------


@dataclass(frozen=True, slots=True)
class SegmentRow:
    info: SegmentInfo
    entered: int | None  # since the previous version (None: no previous version to compare)
    exited: int | None


@dataclass(frozen=True, slots=True)
class SegmentsPage:
    customers: int
    rows: list[SegmentRow]
    previous: str | None  # the version the changes are counted from
    bars_svg: str


def segments_page(model: ActiveModel, holder: ModelHolder, store: Store) -> SegmentsPage:
    listing = segment_list(model, holder.masked_rows(model))
    entered: dict[str, int] = {}
    exited: dict[str, int] = {}
    previous = None
    latest = store.memberships.latest()
    if latest is not None and latest.version == model.version and latest.previous is not None:
        previous = latest.previous
        for activation in store.memberships.activations(after_seq=latest.seq - 1):
            for change in activation.changes:
                entered[change.segment] = len(change.entered)
                exited[change.segment] = len(change.exited)
    rows = [
        SegmentRow(
            info=info,
            entered=entered.get(info.name, 0) if previous is not None else None,
            exited=exited.get(info.name, 0) if previous is not None else None,
        )
        for info in listing.segments
    ]
    return SegmentsPage(
        customers=listing.customers,
        rows=rows,
        previous=previous,
        bars_svg=charts.nps_bars(
            [charts.BarRow(info.name, info.nps) for info in listing.segments],
            "NPS by segment",
        ),
    )


def other_versions(store: Store, model: ActiveModel) -> list[str]:
    """The stored versions but the active one, newest first: what "only changes since version"
    offers."""
    return [v.version for v in reversed(store.list_versions()) if v.version != model.version]


# --- customer inspector: GET /v1/customers/{id}, .../recommendations, .../offers; the answers ---


@dataclass(frozen=True, slots=True)
class CustomerPage:
    profile: CustomerProfile
    history: CustomerNpsAnswers
    recommendations: RecommendationResponse
    offers: OffersResponse


def customer_page(
    model: ActiveModel, holder: ModelHolder, catalog: OfferCatalog, customer_id: str
) -> CustomerPage:
    """NotFoundError for a customer the version does not know."""
    activity = holder.live(customer_id)
    profile = profile_of(model, customer_id, activity)
    return CustomerPage(
        profile=profile,
        history=customer_answers(model, customer_id, activity),
        recommendations=recommendations_for(
            model,
            customer_id,
            activity,
            limit=10,
            offset=0,
            exclude_purchased=True,
            exclude=None,
            category=None,
            in_stock=None,
            given_features={},
            sees_answers=True,
        ),
        offers=offers_for(model, customer_id, activity, catalog, sees_answers=True),
    )


# --- comments: GET /v1/nps/themes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommentsPage:
    themes: ThemeSummary
    bars_svg: dict[str, str]  # category -> its themes' shares as bars


THEME_COLORS = {"promoter": charts.POSITIVE, "passive": charts.GREY, "detractor": charts.NEGATIVE}


def comments_page(
    model: ActiveModel,
    holder: ModelHolder,
    segment: str | None,
    since: str | None,
    until: str | None,
) -> CommentsPage:
    themes = nps_themes(model, holder, segment=segment, since=since, until=until)
    return CommentsPage(
        themes=themes,
        bars_svg={
            group.category: charts.share_bars(
                [
                    (count.theme, count.share, f"{count.comments:,}")
                    for count in group.themes
                    if count.comments
                ],
                f"Themes in {group.category} comments",
                THEME_COLORS.get(group.category, charts.POSITIVE),
                compact=True,
            )
            for group in themes.categories
            if any(count.comments for count in group.themes)
        },
    )


# --- experiments: GET /v1/experiments, GET /v1/experiments/{id} ----------------------------------

# Below this the sample-ratio test says the split (or the log) is broken, not the offer.
SRM_BROKEN = 0.001
SIGNIFICANT = 0.05  # the analysis's alpha (training.experiments.analysis)
STATUS_WORDS = {
    "significant": "The primary outcome moved beyond chance.",
    "no effect detected": "The sample could detect a 10% change, and found none beyond chance.",
    "collecting": "Too few customers with a complete outcome window to tell yet.",
}
# Outcomes measured as a share of customers: their arms' means read as percentages.
SHARES: frozenset[Outcome] = frozenset({"conversion", "churn", "return_rate"})


@dataclass(frozen=True, slots=True)
class ExperimentsPage:
    results: list[ExperimentResult]
    forests_svg: list[str]  # one plot per primary outcome: a shared axis needs a shared unit


def experiments_page(model: ActiveModel) -> ExperimentsPage:
    results = experiment_results(model)
    return ExperimentsPage(results=results, forests_svg=charts.experiment_forests(results))


@dataclass(frozen=True, slots=True)
class ExperimentPage:
    result: ExperimentResult
    segments_svg: str | None  # the primary's lift per segment


def experiment_page(model: ActiveModel, key: str) -> ExperimentPage:
    """NotFoundError (the API's 404, naming the known experiments) for an unknown id."""
    result = find_experiment(model, key)
    unit = charts.lift_unit(result.primary)
    segments_svg = None
    if result.segments:
        segments_svg = charts.forest_plot(
            [
                charts.lift_row(
                    segment.segment,
                    segment.result,
                    segment.result.p_value is not None and segment.result.p_value < SIGNIFICANT,
                )
                for segment in result.segments
            ],
            f"{result.offer_id}: lift in {unit} per segment",
            unit,
        )
    return ExperimentPage(result=result, segments_svg=segments_svg)


def nps_outcome(result: ExperimentResult) -> OutcomeResult | None:
    return next((o for o in result.outcomes if o.outcome == "nps"), None)


def mean_text(value: float | None, outcome: Outcome) -> str:
    """An arm's mean: a share as a percentage, NPS in points, the rest per customer."""
    if value is None:
        return "–"
    if outcome in SHARES:
        return f"{value * 100:.1f}%"
    return f"{value:.1f}" if outcome == "nps" else f"{value:.2f}"


def relative_text(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}%"


# --- models: GET /v1/models, the run log -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelsPage:
    models: ModelList
    runs: list[RunRecord]  # newest first
    run_of: dict[str, RunRecord]  # version -> the run that wrote it


def models_page(store: Store, holder: ModelHolder) -> ModelsPage:
    runs = read_records(store.run_log())
    return ModelsPage(
        models=list_models(store, holder),
        runs=runs,
        run_of={run.version: run for run in reversed(runs) if run.version},
    )


def step_bars(run: RunRecord) -> str:
    """Where a run's time went: each step's share of the whole, with its seconds."""
    total = sum(run.steps.values()) or 1.0
    return charts.share_bars(
        [(step, seconds / total, f"{seconds:,.1f} s") for step, seconds in run.steps.items()],
        f"Step timings of run {run.run_id}",
        charts.POSITIVE,
    )


def search_bars(run: RunRecord) -> str:
    """The run's search: each trial's validation NDCG as a share of the best, best first."""
    if run.search is None:
        return ""
    trials = sorted(run.search.trials, key=lambda t: -t.ndcg)
    best = trials[0].ndcg or 1.0
    return charts.share_bars(
        [(t.name, t.ndcg / best, f"NDCG {t.ndcg:.4f} · {t.outcome}") for t in trials],
        f"Validation NDCG of each setting run {run.run_id} tried, as a share of the best",
        charts.POSITIVE,
    )


def ndcg_rows(metrics: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(task, ranker, its metrics) for every ranker a run measured on its hold-out: the model
    beside its baselines (popularity; the customer's own most frequent items for buy-again)."""
    rows = []
    for task in ("new_items", "buy_again"):
        for ranker, values in (metrics.get(task) or {}).items():
            if isinstance(values, dict):
                rows.append((task.replace("_", " "), ranker.replace("_", " "), values))
    return rows
