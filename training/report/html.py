"""The NPS report as one self-contained HTML page for people: inline SVG charts, tables, no scripts.

Rendered from the same `NpsReport` object as `nps_report.json`, so the page and the JSON never
disagree. Nothing is fetched from the network: charts are SVG drawn here, styles are inline.
Conventions on every chart: the whisker is the 95% interval, grey means "too small to read",
a filled dot or bold label means "differs from the rest (or the previous month) beyond chance".
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from recsvc import charts
from recsvc.charts import FONT, GREY, NEGATIVE, POSITIVE
from recsvc.domain.experiments import ExperimentResult
from training.report.model import (
    Breakdown,
    DeliveryReport,
    GroupResult,
    MonthResult,
    NpsReport,
    SurveyReport,
)
from training.report.themes import ThemeGroup

_n = charts.n_text
_f = charts.number_text
_lift_text = charts.lift_text
_p_text = charts.p_text
_primary = charts.primary_outcome
nps_text = charts.nps_text
share_bars = charts.share_bars
paired_bars = charts.paired_bars


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def trend_chart(trend: Sequence[MonthResult]) -> str:
    """NPS per month: line, 95% band, significant moves marked with an arrow and the change."""
    return charts.trend_chart(
        [
            charts.TrendPoint(
                month.month,
                month.nps,
                month.vs_previous.difference
                if month.significant_move and month.vs_previous is not None
                else None,
            )
            for month in trend
        ]
    )


def nps_bars(groups: Sequence[GroupResult], title: str) -> str:
    """Horizontal NPS bars on a fixed -100..100 axis, with 95% whiskers; small groups greyed."""
    return charts.nps_bars(
        [
            charts.BarRow(
                group.label,
                group.nps,
                group.vs_rest.difference if group.vs_rest is not None else None,
                group.significant,
            )
            for group in groups
        ],
        title,
    )


# --- page sections -------------------------------------------------------------------------------


def _nps_table(groups: Sequence[GroupResult], first_column: str) -> str:
    head = (
        f"<tr><th>{escape(first_column)}</th><th>NPS</th><th>±</th><th>95% interval</th><th>n</th>"
        "<th>promoters</th><th>passives</th><th>detractors</th><th>vs rest</th></tr>"
    )
    rows = []
    for group in groups:
        r = group.nps
        css = ' class="small"' if r.too_small else ""
        verdict = "too small" if r.too_small else ""
        if group.vs_rest is not None and not r.too_small:
            verdict = (
                f"{group.vs_rest.difference:+.1f}, significant"
                if group.significant
                else f"{group.vs_rest.difference:+.1f}, within noise"
            )
        rows.append(
            f"<tr{css}><td>{escape(group.label)}</td><td>{_f(r.nps)}</td>"
            f"<td>{_f(r.margin_of_error)}</td><td>{_f(r.low)} … {_f(r.high)}</td>"
            f"<td>{_n(r.n)}</td><td>{_n(r.promoters)}</td><td>{_n(r.passives)}</td>"
            f"<td>{_n(r.detractors)}</td><td>{escape(verdict)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _breakdown(breakdown: Breakdown) -> str:
    return (
        f"<h3>{escape(breakdown.title)}</h3>"
        + nps_bars(breakdown.groups, breakdown.title)
        + "<details><summary>Table</summary>"
        + _nps_table(breakdown.groups, breakdown.dimension.replace("_", " "))
        + "</details>"
    )


def _trend_section(report: NpsReport) -> str:
    rows = []
    for month in report.trend:
        r = month.nps
        move = ""
        if month.vs_previous is not None:
            move = f"{month.vs_previous.difference:+.1f}" + (
                " (significant)" if month.significant_move else " (noise)"
            )
        css = ' class="small"' if r.too_small else ""
        rows.append(
            f"<tr{css}><td>{escape(month.month)}</td><td>{_f(r.nps)}</td>"
            f"<td>{_f(r.margin_of_error)}</td><td>{_n(r.n)}</td><td>{escape(move)}</td></tr>"
        )
    moves = [m for m in report.trend if m.significant_move]
    summary = (
        "Months marked with an arrow differ from the month before by more than chance: "
        + ", ".join(f"{m.month} ({m.vs_previous.difference:+.0f})" for m in moves if m.vs_previous)
        if moves
        else "No month differs from the month before by more than chance: the ups and downs are noise."
    )
    return (
        "<h2>Trend: did NPS really move, or is it noise?</h2>"
        + trend_chart(report.trend)
        + f"<p>{escape(summary)}</p>"
        + "<details><summary>Table</summary><table><tr><th>month</th><th>NPS</th><th>±</th>"
        + f"<th>n</th><th>vs previous month</th></tr>{''.join(rows)}</table></details>"
    )


def _segments_section(report: NpsReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(s.name)}</td><td>{escape(s.description)}</td>"
        f"<td>{'' if s.priority is None else s.priority}</td><td>{_n(s.customers)}</td>"
        f"<td>{_pct(s.share)}</td><td>{_n(s.primary_customers)}</td></tr>"
        for s in report.segments
    )
    return (
        "<h2>Segments</h2><p>A customer can be in several segments; the primary segment is the "
        "member segment with the highest priority.</p>"
        "<table><tr><th>segment</th><th>who</th><th>priority</th><th>customers</th>"
        f"<th>share</th><th>primary for</th></tr>{rows}</table>"
    )


def _delivery_section(delivery: DeliveryReport) -> str:
    rows = [("all orders", delivery.pre_delivery, delivery.post_delivery)]
    rows += [(g.category, g.pre_delivery, g.post_delivery) for g in delivery.by_category]
    late_rows = [
        (s.category + "s", s.share or 0.0, f"{_n(s.late)} of {_n(s.answers)} answers")
        for s in delivery.late_share
        if s.answers
    ]
    verdict = ""
    if delivery.late_vs_on_time is not None:
        verdict = (
            f"Post-delivery NPS after a late delivery: {nps_text(delivery.post_late)}; "
            f"on time: {nps_text(delivery.post_on_time)} — a difference of "
            f"{delivery.late_vs_on_time.difference:+.1f} points"
            + (", more than chance." if delivery.late_vs_on_time.significant else ", within noise.")
        )
    gap = (
        f"On average a customer's post-delivery score is {_f(delivery.customer_gap_mean, 2, True)} "
        f"points from their pre-delivery score (n = {_n(delivery.customer_gap_n)} customers with both)."
        if delivery.customer_gap_n
        else ""
    )
    return (
        "<h2>Delivery gap</h2>"
        "<p>NPS asked right after checkout (pre-delivery) against NPS asked after the parcel arrived "
        "(post-delivery), by the product category of the order.</p>"
        + paired_bars(rows, "Pre- vs post-delivery NPS")
        + f"<p>{escape(verdict)}</p><p>{escape(gap)}</p>"
        + "<h3>Share of late deliveries behind each post-delivery answer</h3>"
        + share_bars(late_rows, "Late-delivery share by NPS category", NEGATIVE)
    )


def _survey_section(survey: SurveyReport | None, title: str, unit: str) -> str:
    if survey is None:
        return ""
    rows = "".join(
        f"<tr><td>{escape(g.label)}</td><td>{_f(g.value, 1 if unit == '%' else 2)}{unit}</td>"
        f"<td>{_n(g.n)}</td></tr>"
        for g in [survey.overall, *survey.by_segment]
    )
    return (
        f"<h3>{escape(title)}</h3><p>{escape(survey.description)}.</p>"
        f"<table><tr><th>segment</th><th>{escape(survey.metric.upper())}</th><th>n</th></tr>"
        f"{rows}</table>"
    )


def _themes_section(themes: Sequence[ThemeGroup]) -> str:
    parts = [
        "<h2>What customers talk about</h2><p>Share of commented answers that mention each "
        "theme (keyword lists, see the docs). A theme counts whether the comment praises or "
        "criticises it, so read it per group.</p>"
    ]
    order = {"detractor": 0, "promoter": 1, "passive": 2}
    for group in sorted(themes, key=lambda g: order.get(g.category, 9)):
        color = NEGATIVE if group.category == "detractor" else POSITIVE
        rows = [(t.theme, t.share, f"{_n(t.comments)} comments") for t in group.themes]
        examples = "".join(
            f"<li><b>{escape(t.theme)}</b>: "
            + " · ".join(f"“{escape(e)}”" for e in t.examples)
            + "</li>"
            for t in group.themes[:4]
        )
        parts.append(
            f"<h3>{escape(group.category.capitalize())}s ({_n(group.commented)} comments)</h3>"
            + share_bars(rows, f"Themes among {group.category}s", color)
            + f"<details><summary>Example comments</summary><ul>{examples}</ul></details>"
        )
    return "".join(parts)


def _churn_section(report: NpsReport) -> str:
    if not report.churn:
        return ""
    rows = [
        (p.period, p.rate, f"{_n(p.churned)} of {_n(p.active)} active customers")
        for p in report.churn
    ]
    return (
        f"<h2>Churn rate per period ({escape(report.churn_period)})</h2>"
        "<p>Customers who ordered in a period and placed no order in the next one.</p>"
        + share_bars(rows, "Churn rate per period", GREY)
    )


def _experiments_section(results: Sequence[ExperimentResult]) -> str:
    """One forest plot per primary outcome (a shared axis needs a shared unit), one row per
    experiment, then a table of every experiment's numbers."""
    if not results:
        return ""
    plots = charts.experiment_forests(results)
    table_rows = []
    for result in results:
        arms = {a.arm: a for a in result.arms}
        nps = next((o for o in result.outcomes if o.outcome == "nps"), None)
        arm_text = "<br>".join(
            f"{arm} {_n(arms[arm].assigned)} / {_n(arms[arm].analysed)}"
            for arm in ("treatment", "holdout")
            if arm in arms
        )
        primary = _primary(result)
        table_rows.append(
            f"<tr><td>{escape(result.offer_id)}</td><td>{escape(result.status)}</td>"
            f"<td>{arm_text}</td><td>{escape(result.primary.replace('_', ' '))} "
            f"{escape(_lift_text(primary))}</td>"
            f"<td>{escape(_p_text(primary.p_value if primary else None))}</td>"
            f"<td>{escape(_p_text(result.srm_p_value))}</td>"
            f"<td>{_f(charts.in_lift_unit(result.mde, result.primary), 2)}</td>"
            f"<td>{escape(_lift_text(nps))}</td></tr>"
        )
    details = "".join(
        f"<li><b>{escape(r.offer_id)}</b>: {escape(r.status_detail)}</li>" for r in results
    )
    return (
        "<h2>Experiments</h2><p>Each offer is shown to a random treatment arm and withheld from "
        "a holdout. The lift is treatment minus holdout on the primary outcome, with its 95% "
        "interval; a filled dot is beyond chance. A small SRM p-value means the split itself "
        "is broken and the result should not be read.</p>"
        + "".join(plots)
        + "<table><tr><th>offer</th><th>status</th><th>assigned / analysed</th>"
        "<th>primary lift (95% CI)</th><th>p</th><th>SRM p</th><th>MDE</th>"
        f"<th>NPS lift (95% CI)</th></tr>{''.join(table_rows)}</table>" + f"<ul>{details}</ul>"
    )


_STYLE = f"""
body {{{FONT};max-width:1000px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45}}
h1 {{margin-bottom:4px}} h2 {{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}}
table {{border-collapse:collapse;margin:8px 0;font-size:13px}}
td,th {{border-bottom:1px solid #eee;padding:3px 10px;text-align:right}}
td:first-child,th:first-child {{text-align:left}}
tr.small td {{color:#999}}
.headline {{font-size:40px;font-weight:bold}} .muted {{color:#666}}
.note {{background:#f5f7fa;border-left:4px solid {POSITIVE};padding:8px 14px;margin:16px 0}}
svg {{display:block;margin:8px 0;max-width:100%;height:auto}}
"""


def render_html(report: NpsReport) -> str:
    overall = report.overall
    notes = "".join(f"<li>{escape(note)}</li>" for note in report.method_notes)
    headline = "–" if overall.nps is None else f"{overall.nps:.0f}"
    margin = "" if overall.margin_of_error is None else f" ± {overall.margin_of_error:.1f}"
    sections = [
        f"<h1>NPS report</h1><p class='muted'>Data up to {escape(report.as_of.isoformat(sep=' '))}"
        f" · {_n(report.customers)} customers · {_n(report.respondents)} answered"
        f" · {_n(report.responses)} answers</p>",
        f"<p><span class='headline'>NPS {escape(headline)}</span>"
        f"<span class='muted'>{escape(margin)} (n = {_n(overall.n)} customers, "
        f"{_n(overall.promoters)} promoters, {_n(overall.passives)} passives, "
        f"{_n(overall.detractors)} detractors)</span></p>",
        f"<div class='note'><b>How to read this</b><ul>{notes}</ul></div>",
        _trend_section(report),
        _segments_section(report),
        *[_breakdown(b) for b in report.breakdowns],
        _delivery_section(report.delivery),
        "<h2>Satisfaction and effort</h2>" if report.csat or report.ces else "",
        _survey_section(report.csat, "CSAT by segment", "%"),
        _survey_section(report.ces, "Customer effort by segment", ""),
        _churn_section(report),
        _themes_section(report.themes),
        _experiments_section(report.experiments),
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>NPS report</title><style>{_STYLE}</style></head><body>"
        + "".join(sections)
        + "</body></html>"
    )
