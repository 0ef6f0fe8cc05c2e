"""The NPS report of a run: overall NPS, trend, breakdowns, delivery gap, CSAT/CES, churn, themes.

Counting rule, used for every NPS in the report: **one vote per customer per group** — a group's NPS
is computed over its customers' latest answer within the group (the latest answer at that
touchpoint, in that month, about an order in that category, ...). Segment, country and age-band NPS
therefore use each customer's latest answer overall, which is exactly `nps_category` in the customer
table, so "promoters" is 100 by construction and the segment numbers agree with the customer table.
One vote per customer keeps frequent answerers from dominating a group and keeps the answers
independent, which the margin of error and the z-test assume. (Comment themes are the exception:
they count every commented answer, grouped by that answer's own category.)

All NPS numbers come from `recsvc.domain.nps` (counts are computed with polars, the math is done once there).
A group is compared with the rest of the population (the z-test of `recsvc.domain.nps.two_sample_z`), a
month with the month before. `nps_report.json` is this module's `NpsReport`; the HTML page is
rendered from the same object by `training.report.html`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.contract import TOUCHPOINTS
from recsvc.domain.nps import NpsCategory, NpsResult, nps_from_counts, rest_of, two_sample_z
from recsvc.domain.segments.catalog import SegmentRules
from training.customers.features import (
    DELIVERED,
    LATE,
    ORDER_CATEGORY,
    SegmentationConfig,
    index_customers,
    nps_category_expr,
)
from training.customers.segmentation import CustomerSegments
from training.report.html import render_html
from training.report.model import (
    Breakdown,
    CategoryGap,
    ChurnPeriod,
    DeliveryReport,
    GroupResult,
    LateShare,
    MonthResult,
    NpsReport,
    SegmentSummary,
    SurveyGroup,
    SurveyReport,
    encode_report,
)
from training.report.themes import theme_summary

REPORT_JSON = "nps_report.json"
REPORT_HTML = "nps_report.html"
NOT_GIVEN = "(not given)"
_GROUP = "_group"
_CATEGORY = "_category"
_PROMOTER, _PASSIVE, _DETRACTOR = (
    NpsCategory.PROMOTER.value,
    NpsCategory.PASSIVE.value,
    NpsCategory.DETRACTOR.value,
)
_COUNTS = (_PROMOTER, _PASSIVE, _DETRACTOR)


METHOD_NOTES = [
    "NPS = % promoters (9-10) minus % detractors (0-6), from -100 to 100. Passives (7-8) count in n.",
    "Each customer counts once per group, with their latest answer in that group.",
    "± is the 95% margin of error: the true NPS is within it 19 times out of 20. Groups under 30 "
    "answers use the adjusted-Wald interval (3 extra answers, 3/4 promoter and 3/4 detractor).",
    "A group is marked when its NPS differs from the rest by more than chance (two-sample z-test, "
    "p < 0.05); a month is marked when it differs from the month before.",
    "Groups below the minimum n are shown in grey and marked 'too small': do not act on them.",
    "Comment themes: keyword lists per theme (docs/segments-and-nps.md); a comment can have several.",
]


# --- counting helpers ----------------------------------------------------------------------------


def _labelled(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String).fill_null(NOT_GIVEN)


def latest_vote(responses: pl.LazyFrame, group: pl.Expr) -> pl.LazyFrame:
    """One row per (group, customer): the customer's latest answer's category within the group.

    `responses` has customer_id, responded_at, response_id and `_category`; rows whose group is
    null are dropped (they are not in any group).
    """
    return (
        responses.with_columns(group.alias(_GROUP))
        .drop_nulls(_GROUP)
        .sort(c.RESPONDED_AT, c.RESPONSE_ID)
        .group_by(_GROUP, c.CUSTOMER_ID)
        .agg(pl.col(_CATEGORY).last())
    )


def category_counts(votes: pl.LazyFrame, min_n: int) -> dict[str, NpsResult]:
    """{group: NpsResult} from rows of (`_group`, `_category`)."""
    frame = (
        votes.group_by(_GROUP)
        .agg((pl.col(_CATEGORY) == name).sum().alias(name) for name in _COUNTS)
        .collect()
    )
    return {
        row[_GROUP]: nps_from_counts(
            int(row[_PROMOTER]), int(row[_PASSIVE]), int(row[_DETRACTOR]), min_n=min_n
        )
        for row in frame.iter_rows(named=True)
    }


def compare_groups(
    groups: dict[str, NpsResult], total: NpsResult, min_n: int, order: Sequence[str] | None = None
) -> list[GroupResult]:
    """Each group against the rest of `total` (groups must be subsets of total)."""
    labels = list(order) if order is not None else sorted(groups, key=lambda k: (-groups[k].n, k))
    results = []
    empty = nps_from_counts(0, 0, 0, min_n=min_n)
    for label in labels:
        group = groups.get(label, empty)
        test = two_sample_z(group, rest_of(total, group, min_n))
        results.append(
            GroupResult(
                label=label, nps=group, vs_rest=test, significant=bool(test and test.significant)
            )
        )
    return results


def _sum_counts(results: Sequence[NpsResult], min_n: int) -> NpsResult:
    return nps_from_counts(
        sum(r.promoters for r in results),
        sum(r.passives for r in results),
        sum(r.detractors for r in results),
        min_n=min_n,
    )


# --- sections ------------------------------------------------------------------------------------


def nps_answers(responses: pl.LazyFrame, as_of: dt.datetime) -> pl.LazyFrame:
    """NPS answers up to `as_of` with their category in `_category`."""
    return responses.filter(pl.col(c.RESPONDED_AT) <= as_of).with_columns(
        nps_category_expr(pl.col(c.SCORE)).alias(_CATEGORY)
    )


def monthly_trend(answers: pl.LazyFrame, min_n: int) -> list[MonthResult]:
    months = category_counts(
        latest_vote(answers, pl.col(c.RESPONDED_AT).dt.strftime("%Y-%m")), min_n
    )
    trend: list[MonthResult] = []
    previous: NpsResult | None = None
    for month in sorted(months):
        current = months[month]
        test = two_sample_z(current, previous) if previous is not None else None
        trend.append(
            MonthResult(
                month=month,
                nps=current,
                vs_previous=test,
                significant_move=bool(test and test.significant),
            )
        )
        previous = current
    return trend


def customer_breakdowns(
    table: pl.DataFrame, rules: SegmentRules, overall: NpsResult, min_n: int
) -> list[Breakdown]:
    """NPS by segment, country and age band from the customer table's latest categories."""
    answered = table.lazy().filter(pl.col(ct.NPS_CATEGORY) != NpsCategory.UNKNOWN.value)
    by_segment = category_counts(
        answered.select(pl.col(ct.SEGMENTS).alias(_GROUP), pl.col(ct.NPS_CATEGORY).alias(_CATEGORY))
        .explode(_GROUP)
        .drop_nulls(_GROUP),
        min_n,
    )
    breakdowns = [
        Breakdown(
            dimension="segment",
            title="NPS by segment",
            groups=compare_groups(by_segment, overall, min_n, order=rules.names),
        )
    ]
    for column, title in ((c.COUNTRY, "NPS by country"), (c.AGE_BAND, "NPS by age band")):
        groups = category_counts(
            answered.select(
                _labelled(pl.col(column)).alias(_GROUP), pl.col(ct.NPS_CATEGORY).alias(_CATEGORY)
            ),
            min_n,
        )
        order = sorted(groups) if column == c.AGE_BAND else None
        breakdowns.append(
            Breakdown(
                dimension=column, title=title, groups=compare_groups(groups, overall, min_n, order)
            )
        )
    return breakdowns


def touchpoint_breakdown(answers: pl.LazyFrame, min_n: int) -> Breakdown:
    groups = category_counts(latest_vote(answers, pl.col(c.TOUCHPOINT)), min_n)
    total = _sum_counts(list(groups.values()), min_n)
    order: list[str] = [t for t in TOUCHPOINTS if t in groups]
    order += sorted(set(groups) - set(order))
    return Breakdown(
        dimension=c.TOUCHPOINT,
        title="NPS by touchpoint",
        groups=compare_groups(groups, total, min_n, order),
    )


def delivery_report(
    answers: pl.LazyFrame, facts: pl.LazyFrame, table: pl.DataFrame, min_n: int
) -> DeliveryReport:
    """Pre- vs post-delivery NPS (overall, by product category), the effect of late deliveries."""
    # Answers about an order, with the order's facts; collected once, read three times below.
    about_orders = (
        answers.drop_nulls(c.ORDER_ID)
        .join(facts.select(c.ORDER_ID, DELIVERED, LATE, ORDER_CATEGORY), on=c.ORDER_ID, how="inner")
        .collect()
        .lazy()
    )
    touchpoints = category_counts(latest_vote(answers, pl.col(c.TOUCHPOINT)), min_n)
    empty = nps_from_counts(0, 0, 0, min_n=min_n)
    pre = touchpoints.get("pre_delivery", empty)
    post = touchpoints.get("post_delivery", empty)
    delivered_post = about_orders.filter(
        (pl.col(c.TOUCHPOINT) == "post_delivery") & pl.col(DELIVERED).fill_null(False)
    )
    by_lateness = category_counts(
        latest_vote(
            delivered_post,
            pl.when(pl.col(LATE).fill_null(False))
            .then(pl.lit("late"))
            .otherwise(pl.lit("on_time")),
        ),
        min_n,
    )
    on_time = by_lateness.get("on_time", empty)
    late = by_lateness.get("late", empty)
    gap = table.select(
        pl.col(ct.DELIVERY_GAP).mean().alias("mean"), pl.col(ct.DELIVERY_GAP).count().alias("n")
    ).row(0, named=True)
    return DeliveryReport(
        pre_delivery=pre,
        post_delivery=post,
        post_vs_pre=two_sample_z(post, pre),
        by_category=_gap_by_category(about_orders, min_n),
        post_on_time=on_time,
        post_late=late,
        late_vs_on_time=two_sample_z(late, on_time),
        late_share=_late_share(delivered_post),
        customer_gap_mean=gap["mean"],
        customer_gap_n=int(gap["n"]),
    )


def _gap_by_category(about_orders: pl.LazyFrame, min_n: int) -> list[CategoryGap]:
    """Pre- vs post-delivery NPS per product category of the order the answer is about."""
    by_pair = category_counts(
        latest_vote(
            about_orders.filter(pl.col(c.TOUCHPOINT).is_in(["pre_delivery", "post_delivery"])),
            pl.concat_str(pl.col(c.TOUCHPOINT), pl.col(ORDER_CATEGORY), separator="|"),
        ),
        min_n,
    )
    empty = nps_from_counts(0, 0, 0, min_n=min_n)
    by_category = []
    for category in sorted({key.split("|", 1)[1] for key in by_pair}):
        cat_pre = by_pair.get(f"pre_delivery|{category}", empty)
        cat_post = by_pair.get(f"post_delivery|{category}", empty)
        by_category.append(
            CategoryGap(
                category=category,
                pre_delivery=cat_pre,
                post_delivery=cat_post,
                post_vs_pre=two_sample_z(cat_post, cat_pre),
            )
        )
    return by_category


def _late_share(delivered_post: pl.LazyFrame) -> list[LateShare]:
    """Per NPS category of customers' latest post-delivery answer: how many were about a late order."""
    latest_post = (
        delivered_post.sort(c.RESPONDED_AT, c.RESPONSE_ID)
        .group_by(c.CUSTOMER_ID)
        .agg(pl.col(_CATEGORY).last(), pl.col(LATE).fill_null(False).last())
        .group_by(_CATEGORY)
        .agg(pl.len().alias("answers"), pl.col(LATE).sum().alias("late"))
        .collect()
    )
    shares = {row[_CATEGORY]: row for row in latest_post.iter_rows(named=True)}
    late_share = []
    for category in (NpsCategory.DETRACTOR, NpsCategory.PASSIVE, NpsCategory.PROMOTER):
        row = shares.get(category.value, {"answers": 0, "late": 0})
        answers_n, late_n = int(row["answers"]), int(row["late"])
        late_share.append(
            LateShare(
                category=category.value,
                answers=answers_n,
                late=late_n,
                share=late_n / answers_n if answers_n else None,
            )
        )
    return late_share


def survey_report(table: pl.DataFrame, rules: SegmentRules, metric: str) -> SurveyReport | None:
    """CSAT (% of customers whose latest answer is 4-5) or CES (mean latest score), by segment."""
    column = ct.CSAT_SCORE if metric == "csat" else ct.CES_SCORE
    answered = table.lazy().filter(pl.col(column).is_not_null())
    value = (
        ((pl.col(column) >= 4).mean() * 100)
        if metric == "csat"
        else pl.col(column).cast(pl.Float64).mean()
    )
    overall = (
        answered.select(pl.len().alias("n"), value.alias("value")).collect().row(0, named=True)
    )
    if overall["n"] == 0:
        return None
    by_segment = (
        answered.select(ct.SEGMENTS, column)
        .explode(ct.SEGMENTS)
        .drop_nulls(ct.SEGMENTS)
        .group_by(ct.SEGMENTS)
        .agg(pl.len().alias("n"), value.alias("value"))
        .collect()
    )
    rows = {row[ct.SEGMENTS]: row for row in by_segment.iter_rows(named=True)}
    description = (
        "CSAT: % of customers whose latest satisfaction answer is 4 or 5 (of 5)"
        if metric == "csat"
        else "CES: mean of customers' latest effort answer, 1 (very hard) to 7 (very easy)"
    )
    return SurveyReport(
        metric=metric,
        description=description,
        overall=SurveyGroup(label="all", n=int(overall["n"]), value=overall["value"]),
        by_segment=[
            SurveyGroup(label=name, n=int(rows[name]["n"]), value=rows[name]["value"])
            for name in rules.names
            if name in rows
        ],
    )


def churn_rates(facts: pl.LazyFrame, as_of: dt.datetime, every: str) -> list[ChurnPeriod]:
    """Per period: customers with an order who placed none in the next period.

    Only periods whose next period has ended by `as_of` are reported (a period still running
    would count everyone who has not bought *yet* as churned).
    """
    period = pl.col(c.ORDERED_AT).dt.truncate(every)
    active = facts.select(c.CUSTOMER_ID, period.alias("period")).unique()
    following = active.select(
        c.CUSTOMER_ID,
        pl.col("period").dt.offset_by(f"-{every}").alias("period"),
        pl.lit(True).alias("_bought_next"),
    )
    rates = (
        active.join(following, on=[c.CUSTOMER_ID, "period"], how="left")
        .group_by("period")
        .agg(
            pl.len().alias("active"),
            pl.col("_bought_next").is_null().sum().alias("churned"),
        )
        .filter(pl.col("period").dt.offset_by(every).dt.offset_by(every) <= as_of)
        .sort("period")
        .collect()
    )
    return [
        ChurnPeriod(
            period=row["period"].strftime("%Y-%m-%d"),
            active=int(row["active"]),
            churned=int(row["churned"]),
            rate=row["churned"] / row["active"],
        )
        for row in rates.iter_rows(named=True)
    ]


def segment_summaries(table: pl.DataFrame, rules: SegmentRules) -> list[SegmentSummary]:
    sizes = (
        table.lazy()
        .select(ct.SEGMENTS, ct.PRIMARY_SEGMENT)
        .explode(ct.SEGMENTS)
        .drop_nulls(ct.SEGMENTS)
        .group_by(ct.SEGMENTS)
        .agg(
            pl.len().alias("customers"),
            (pl.col(ct.SEGMENTS) == pl.col(ct.PRIMARY_SEGMENT)).sum().alias("primary"),
        )
        .collect()
    )
    rows = {row[ct.SEGMENTS]: row for row in sizes.iter_rows(named=True)}
    total = max(table.height, 1)
    return [
        SegmentSummary(
            name=d.name,
            description=d.description,
            priority=d.priority,
            customers=int(rows.get(d.name, {}).get("customers", 0)),
            primary_customers=int(rows.get(d.name, {}).get("primary", 0)),
            share=rows.get(d.name, {}).get("customers", 0) / total,
        )
        for d in rules.definitions
    ]


def build_report(
    table: pl.DataFrame,
    responses: pl.LazyFrame,
    facts: pl.LazyFrame,
    rules: SegmentRules,
    as_of: dt.datetime,
    config: SegmentationConfig | None = None,
) -> NpsReport:
    """The whole report from the customer table, the NPS answers and the order facts."""
    config = config or SegmentationConfig()
    min_n = config.min_n
    answers = nps_answers(responses, as_of).collect().lazy()
    known = table.filter(pl.col(ct.NPS_CATEGORY) != NpsCategory.UNKNOWN.value)
    counts = {name: int((known[ct.NPS_CATEGORY] == name).sum()) for name in _COUNTS}
    overall = nps_from_counts(counts[_PROMOTER], counts[_PASSIVE], counts[_DETRACTOR], min_n=min_n)
    responses_n = answers.select(pl.len()).collect().item()
    return NpsReport(
        as_of=as_of,
        min_n=min_n,
        customers=table.height,
        respondents=known.height,
        responses=int(responses_n),
        overall=overall,
        trend=monthly_trend(answers, min_n),
        breakdowns=[
            *customer_breakdowns(table, rules, overall, min_n),
            touchpoint_breakdown(answers, min_n),
        ],
        segments=segment_summaries(table, rules),
        delivery=delivery_report(answers, facts, table, min_n),
        csat=survey_report(table, rules, "csat"),
        ces=survey_report(table, rules, "ces"),
        churn_period=config.churn_period,
        churn=churn_rates(facts, as_of, config.churn_period),
        themes=theme_summary(answers, _CATEGORY),
        method_notes=list(METHOD_NOTES),
    )


def nps_report(tables: Mapping[str, pl.LazyFrame], segments: CustomerSegments) -> NpsReport:
    """The report of a run: its customer table, NPS answers and the order facts the table shares."""
    responses = index_customers(tables)[
        c.NPS_RESPONSES
    ]  # customer ids as row numbers, as the facts
    return build_report(
        segments.table,
        responses,
        segments.facts.lazy(),
        segments.rules,
        segments.as_of,
        segments.config,
    )


def write_report(report: NpsReport, out_dir: Path) -> tuple[Path, Path]:
    """Write `nps_report.json` and the self-contained `nps_report.html`; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / REPORT_JSON, out_dir / REPORT_HTML
    json_path.write_bytes(msgspec.json.format(encode_report(report), indent=2))
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path
