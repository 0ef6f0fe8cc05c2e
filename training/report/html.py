"""The NPS report as one self-contained HTML page for people: inline SVG charts, tables, no scripts.

Rendered from the same `NpsReport` object as `nps_report.json`, so the page and the JSON never
disagree. Nothing is fetched from the network: charts are SVG drawn here, styles are inline.
Conventions on every chart: the whisker is the 95% interval, grey means "too small to read",
a filled dot or bold label means "differs from the rest (or the previous month) beyond chance".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from recsvc.domain.nps import NpsResult
from training.report.model import (
    Breakdown,
    DeliveryReport,
    GroupResult,
    MonthResult,
    NpsReport,
    SurveyReport,
)
from training.report.themes import ThemeGroup

POSITIVE = "#2b7bba"
NEGATIVE = "#d6604d"
GREY = "#b8b8b8"
PRE = "#9ecae1"
POST = "#2171b5"
UP = "#1a9850"
DOWN = "#d73027"
FONT = "font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"


def _n(value: int) -> str:
    return f"{value:,}"


def _f(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def nps_text(result: NpsResult) -> str:
    """ "NPS 23.4 ± 5.1 (n = 1,234)" — the way every NPS is written on the page."""
    if result.nps is None:
        return "no answers"
    text = f"{result.nps:.1f} ± {_f(result.margin_of_error)} (n = {_n(result.n)})"
    return text + (" · too small" if result.too_small else "")


@dataclass(frozen=True, slots=True)
class _Scale:
    """A linear map from a value domain to pixel range."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.start + self.end) / 2
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def _svg(width: int, height: int, body: Sequence[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'style="{FONT};font-size:12px">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(text)}</text>'


def _whisker(scale: _Scale, result: NpsResult, y: float, color: str = "#333") -> str:
    if result.low is None or result.high is None:
        return ""
    x1, x2 = scale(result.low), scale(result.high)
    return (
        f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}"/>'
        f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="{y - 4:.1f}" y2="{y + 4:.1f}" stroke="{color}"/>'
        f'<line x1="{x2:.1f}" x2="{x2:.1f}" y1="{y - 4:.1f}" y2="{y + 4:.1f}" stroke="{color}"/>'
    )


# --- charts --------------------------------------------------------------------------------------


def trend_chart(trend: Sequence[MonthResult]) -> str:
    """NPS per month: line, 95% band, significant moves marked with an arrow and the change."""
    points = [(i, m) for i, m in enumerate(trend) if m.nps.nps is not None]
    if not points:
        return "<p>No answers yet.</p>"
    width, height, left, right, top, bottom = 820, 300, 48, 16, 24, 56
    lows = [m.nps.low for _, m in points if m.nps.low is not None]
    highs = [m.nps.high for _, m in points if m.nps.high is not None]
    lo = max(-100.0, (min(lows) // 10) * 10) if lows else -100.0
    hi = min(100.0, -((-max(highs)) // 10) * 10) if highs else 100.0
    x = _Scale(0, max(len(trend) - 1, 1), left + 10, width - right - 10)
    y = _Scale(lo, hi, height - bottom, top)
    body: list[str] = []
    step = 10 if hi - lo > 60 else 5
    tick = lo
    while tick <= hi:
        weight = ' stroke="#999"' if tick == 0 else ' stroke="#e5e5e5"'
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"{weight}/>'
        )
        body.append(_text(left - 6, y(tick) + 4, f"{tick:g}", "end", 'fill="#666"'))
        tick += step
    band_top = [(x(i), y(m.nps.high)) for i, m in points if m.nps.high is not None]
    band_bottom = [(x(i), y(m.nps.low)) for i, m in points if m.nps.low is not None]
    polygon = " ".join(f"{a:.1f},{b:.1f}" for a, b in band_top + band_bottom[::-1])
    body.append(f'<polygon points="{polygon}" fill="{POSITIVE}" fill-opacity="0.15"/>')
    line = " ".join(f"{x(i):.1f},{y(m.nps.nps or 0):.1f}" for i, m in points)
    body.append(f'<polyline points="{line}" fill="none" stroke="{POSITIVE}" stroke-width="2"/>')
    label_every = max(1, len(trend) // 14)
    for i, month in enumerate(trend):
        if i % label_every == 0 or i == len(trend) - 1:
            body.append(
                _text(
                    x(i),
                    height - bottom + 16,
                    month.month,
                    "end",
                    f'fill="#555" transform="rotate(-40 {x(i):.1f} {height - bottom + 16:.1f})"',
                )
            )
    for i, month in points:
        body.extend(_month_marker(month, x(i), y(month.nps.nps or 0)))
    return _svg(width, height, body, "NPS trend by month with 95% band")


def _month_marker(month: MonthResult, cx: float, cy: float) -> list[str]:
    """A month's dot: hollow when too small, an arrow with the change for a significant move."""
    if month.nps.too_small:
        return [
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="white" stroke="{GREY}">'
            f"<title>{escape(month.month)}: {escape(nps_text(month.nps))}</title></circle>"
        ]
    if not month.significant_move or month.vs_previous is None:
        return [
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{POSITIVE}">'
            f"<title>{escape(month.month)}: {escape(nps_text(month.nps))}</title></circle>"
        ]
    up = month.vs_previous.difference > 0
    color = UP if up else DOWN
    arrow = "▲" if up else "▼"
    return [
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{color}">'
        f"<title>{escape(month.month)}: {escape(nps_text(month.nps))}, "
        f"{month.vs_previous.difference:+.1f} vs previous month (significant)</title></circle>",
        _text(
            cx,
            cy - 10 if up else cy + 18,
            f"{arrow}{month.vs_previous.difference:+.0f}",
            "middle",
            f'fill="{color}" font-weight="bold"',
        ),
    ]


def nps_bars(groups: Sequence[GroupResult], title: str) -> str:
    """Horizontal NPS bars on a fixed -100..100 axis, with 95% whiskers; small groups greyed."""
    row, left, plot, right, top = 26, 190, 380, 300, 40
    width, height = left + plot + right, top + row * len(groups) + 12
    x = _Scale(-100, 100, left, left + plot)
    body = [_text(left, 12, "NPS −100 … 100; whisker = 95% interval", "start", 'fill="#666"')]
    for tick in (-100, -50, 0, 50, 100):
        stroke = "#999" if tick == 0 else "#eee"
        body.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 6}" y2="{height - 6}" '
            f'stroke="{stroke}"/>'
        )
        body.append(_text(x(tick), top - 10, f"{tick}", "middle", 'fill="#999" font-size="10"'))
    for index, group in enumerate(groups):
        cy = top + row * index + row / 2
        result = group.nps
        weight = ' font-weight="bold"' if group.significant else ""
        label = group.label if len(group.label) <= 28 else group.label[:27] + "…"
        body.append(_text(left - 8, cy + 4, label, "end", f'fill="#222"{weight}'))
        if result.nps is None:
            body.append(_text(x(0) + 6, cy + 4, "no answers", "start", 'fill="#999"'))
            continue
        color = GREY if result.too_small else (POSITIVE if result.nps >= 0 else NEGATIVE)
        x0, x1 = sorted((x(0), x(result.nps)))
        body.append(
            f'<rect x="{x0:.1f}" y="{cy - 8:.1f}" width="{max(x1 - x0, 1):.1f}" height="16" '
            f'fill="{color}"><title>{escape(group.label)}: {escape(nps_text(result))}</title></rect>'
        )
        body.append(_whisker(x, result, cy, "#555" if not result.too_small else GREY))
        note = nps_text(result)
        if group.significant and group.vs_rest is not None:
            note += f" · ● {group.vs_rest.difference:+.0f} vs rest"
        fill = "#999" if result.too_small else "#222"
        body.append(_text(left + plot + 8, cy + 4, note, "start", f'fill="{fill}"{weight}'))
    return _svg(width, height, body, title)


def paired_bars(rows: Sequence[tuple[str, NpsResult, NpsResult]], title: str) -> str:
    """Pre-delivery (light) and post-delivery (dark) NPS side by side per row."""
    row, left, plot, right, top = 40, 170, 380, 220, 40
    width, height = left + plot + right, top + row * len(rows) + 8
    x = _Scale(-100, 100, left, left + plot)
    body = [
        f'<rect x="{left}" y="6" width="12" height="12" fill="{PRE}"/>',
        _text(left + 16, 16, "pre-delivery", "start"),
        f'<rect x="{left + 110}" y="6" width="12" height="12" fill="{POST}"/>',
        _text(left + 126, 16, "post-delivery", "start"),
    ]
    for tick in (-100, -50, 0, 50, 100):
        stroke = "#999" if tick == 0 else "#eee"
        body.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 10}" y2="{height - 4}" stroke="{stroke}"/>'
        )
        body.append(_text(x(tick), top - 12, f"{tick}", "middle", 'fill="#999" font-size="10"'))
    for index, (label, pre, post) in enumerate(rows):
        base = top + row * index
        body.append(_text(left - 8, base + row / 2 + 4, label, "end", 'fill="#222"'))
        for offset, result, color in ((10, pre, PRE), (26, post, POST)):
            cy = base + offset
            if result.nps is None:
                continue
            fill = GREY if result.too_small else color
            x0, x1 = sorted((x(0), x(result.nps)))
            body.append(
                f'<rect x="{x0:.1f}" y="{cy - 6:.1f}" width="{max(x1 - x0, 1):.1f}" height="12" '
                f'fill="{fill}"><title>{escape(nps_text(result))}</title></rect>'
            )
            body.append(_whisker(x, result, cy, "#555"))
            body.append(
                _text(
                    left + plot + 8, cy + 4, nps_text(result), "start", 'fill="#333" font-size="11"'
                )
            )
    return _svg(width, height, body, title)


def share_bars(rows: Sequence[tuple[str, float, str]], title: str, color: str) -> str:
    """Horizontal bars of shares 0..1 with a note per row."""
    row, left, plot, right = 24, 150, 300, 260
    width, height = left + plot + right, row * len(rows) + 10
    top_share = max((share for _, share, _ in rows), default=0.0) or 1.0
    x = _Scale(0, top_share, left, left + plot)
    body: list[str] = []
    for index, (label, share, note) in enumerate(rows):
        cy = 5 + row * index + row / 2
        body.append(_text(left - 8, cy + 4, label, "end", 'fill="#222"'))
        body.append(
            f'<rect x="{left}" y="{cy - 8:.1f}" width="{max(x(share) - left, 1):.1f}" height="16" '
            f'fill="{color}"/>'
        )
        body.append(
            _text(x(share) + 6, cy + 4, f"{share * 100:.0f}%  {note}", "start", 'fill="#333"')
        )
    return _svg(width, height, body, title)


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
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>NPS report</title><style>{_STYLE}</style></head><body>"
        + "".join(sections)
        + "</body></html>"
    )
