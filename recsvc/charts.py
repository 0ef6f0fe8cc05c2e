"""Inline SVG charts of NPS with its uncertainty, for the NPS report (`training.report.html`) and the
marketer console (`recsvc.api.console`): one drawing, so the report and the console show a number
the same way. Plain strings, no scripts, nothing fetched. The experiments' lifts are written here
too (their units, their forest plots), for the same reason.

Conventions on every chart: the whisker or band is the 95% interval, grey means "too small to read",
a filled dot, an arrow or a bold label means "differs from the rest (or the previous month) beyond
chance". Charts scale down to the width they are given (phone screens) and keep their proportions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from recsvc.domain.experiments import ExperimentResult, Outcome, OutcomeResult
from recsvc.domain.nps import NpsResult

POSITIVE = "#2b7bba"
NEGATIVE = "#d6604d"
GREY = "#b8b8b8"
PRE = "#9ecae1"
POST = "#2171b5"
UP = "#1a9850"
DOWN = "#d73027"
FONT = "font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One period of a trend: its label (e.g. a month), its NPS, and the change from the period
    before when that change is beyond chance (None otherwise)."""

    label: str
    nps: NpsResult
    change: float | None = None


@dataclass(frozen=True, slots=True)
class BarRow:
    """One group of a bar chart: its NPS, and (when `significant`) its difference from the rest."""

    label: str
    nps: NpsResult
    vs_rest: float | None = None
    significant: bool = False


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One experiment (or one outcome) of a forest plot: the lift with its 95% interval, in the
    plot's unit. `significant` fills the dot; a row without a lift is drawn as "no estimate"."""

    label: str
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    significant: bool = False


def n_text(value: int) -> str:
    return f"{value:,}"


def number_text(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def nps_text(result: NpsResult) -> str:
    """ "NPS 23.4 ± 5.1 (n = 1,234)" — the way every NPS is written."""
    if result.nps is None:
        return "no answers"
    text = f"{result.nps:.1f} ± {number_text(result.margin_of_error)} (n = {n_text(result.n)})"
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
        f'style="{FONT};font-size:12px;max-width:100%;height:auto">'
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


def trend_chart(trend: Sequence[TrendPoint]) -> str:
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
                    month.label,
                    "end",
                    f'fill="#555" transform="rotate(-40 {x(i):.1f} {height - bottom + 16:.1f})"',
                )
            )
    for i, month in points:
        body.extend(_month_marker(month, x(i), y(month.nps.nps or 0)))
    return _svg(width, height, body, "NPS trend by month with 95% band")


def _month_marker(month: TrendPoint, cx: float, cy: float) -> list[str]:
    """A month's dot: hollow when too small, an arrow with the change for a significant move."""
    if month.nps.too_small:
        return [
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="white" stroke="{GREY}">'
            f"<title>{escape(month.label)}: {escape(nps_text(month.nps))}</title></circle>"
        ]
    if month.change is None:
        return [
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{POSITIVE}">'
            f"<title>{escape(month.label)}: {escape(nps_text(month.nps))}</title></circle>"
        ]
    up = month.change > 0
    color = UP if up else DOWN
    arrow = "▲" if up else "▼"
    return [
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{color}">'
        f"<title>{escape(month.label)}: {escape(nps_text(month.nps))}, "
        f"{month.change:+.1f} vs previous month (significant)</title></circle>",
        _text(
            cx,
            cy - 10 if up else cy + 18,
            f"{arrow}{month.change:+.0f}",
            "middle",
            f'fill="{color}" font-weight="bold"',
        ),
    ]


def nps_bars(groups: Sequence[BarRow], title: str) -> str:
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
            note += f" · ● {group.vs_rest:+.0f} vs rest"
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


def share_bars(
    rows: Sequence[tuple[str, float, str]], title: str, color: str, *, compact: bool = False
) -> str:
    """Horizontal bars of shares 0..1 with a note per row; `compact` fits a narrow column (a
    third of a page) at full size."""
    row, left, plot, right = (24, 90, 130, 90) if compact else (24, 150, 300, 260)
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


def forest_plot(rows: Sequence[ForestRow], title: str, unit: str) -> str:
    """Lifts with their 95% intervals around a zero line, one row each: a filled coloured dot is
    beyond chance (green up, red down), a hollow grey one is within noise. The axis is symmetric
    around zero so the eye compares sides fairly."""
    row, left, plot, right, top = 28, 230, 360, 230, 46
    width, height = left + plot + right, top + row * max(len(rows), 1) + 12
    values = [abs(v) for r in rows for v in (r.lift, r.ci_low, r.ci_high) if v is not None]
    reach = _round_up(max(values, default=1.0) * 1.05 or 1.0)
    x = _Scale(-reach, reach, left, left + plot)
    body = [
        _text(left, 12, f"lift, {unit}; line = 95% interval", "start", 'fill="#666"'),
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top - 8}" y2="{height - 6}" stroke="#999"/>',
        _text(x(0), top - 12, "0", "middle", 'fill="#999" font-size="10"'),
        _text(x(-reach), top - 12, f"{-reach:g}", "start", 'fill="#999" font-size="10"'),
        _text(x(reach), top - 12, f"{reach:+g}", "end", 'fill="#999" font-size="10"'),
    ]
    for index, item in enumerate(rows):
        cy = top + row * index + row / 2
        weight = ' font-weight="bold"' if item.significant else ""
        label = item.label if len(item.label) <= 30 else item.label[:29] + "…"
        body.append(_text(left - 8, cy + 4, label, "end", f'fill="#222"{weight}'))
        if item.lift is None:
            body.append(_text(x(0) + 6, cy + 4, "no estimate yet", "start", 'fill="#999"'))
            continue
        color = (UP if item.lift > 0 else DOWN) if item.significant else GREY
        interval = ""
        if item.ci_low is not None and item.ci_high is not None:
            interval = (
                f" ({number_text(item.ci_low, 2, True)} to {number_text(item.ci_high, 2, True)})"
            )
            body.append(_interval(x(item.ci_low), x(item.ci_high), cy, color))
        fill = color if item.significant else "white"
        note = f"{number_text(item.lift, 2, True)}{interval}"
        body.append(
            f'<circle cx="{x(item.lift):.1f}" cy="{cy:.1f}" r="5" fill="{fill}" stroke="{color}" '
            f'stroke-width="2"><title>{escape(item.label)}: {escape(note)} {escape(unit)}</title>'
            "</circle>"
        )
        body.append(_text(left + plot + 8, cy + 4, note, "start", f'fill="#222"{weight}'))
    return _svg(width, height, body, title)


def _round_up(value: float) -> float:
    """The next "round" axis end above `value`: 1, 2, 5 times a power of ten."""
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _interval(x1: float, x2: float, y: float, color: str) -> str:
    return (
        f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" '
        'stroke-width="2"/>'
        f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="{y - 5:.1f}" y2="{y + 5:.1f}" stroke="{color}"/>'
        f'<line x1="{x2:.1f}" x2="{x2:.1f}" y1="{y - 5:.1f}" y2="{y + 5:.1f}" stroke="{color}"/>'
    )


# --- experiments' lifts: one unit per outcome, one forest plot per primary outcome -------------

# How each outcome's lift is shown: shares as percentage points, the rest in their own unit.
LIFT_UNITS: dict[Outcome, tuple[float, str]] = {
    "conversion": (100.0, "percentage points of conversion"),
    "churn": (100.0, "percentage points of churn"),
    "return_rate": (100.0, "percentage points of returned lines"),
    "nps": (1.0, "NPS points"),
    "orders": (1.0, "orders per customer"),
    "revenue": (1.0, "revenue per customer"),
}


def lift_unit(outcome: Outcome) -> str:
    return LIFT_UNITS[outcome][1]


def in_lift_unit(value: float | None, outcome: Outcome) -> float | None:
    """A lift, interval end or MDE of `outcome` in the unit it is shown in."""
    return None if value is None else value * LIFT_UNITS[outcome][0]


def lift_text(result: OutcomeResult | None) -> str:
    """ "+4.00 (+2.00 to +6.00)": the lift in its unit with its 95% interval."""
    if result is None or result.lift is None:
        return "–"
    o = result.outcome
    text = number_text(in_lift_unit(result.lift, o), 2, True)
    if result.ci_low is not None and result.ci_high is not None:
        low = number_text(in_lift_unit(result.ci_low, o), 2, True)
        high = number_text(in_lift_unit(result.ci_high, o), 2, True)
        text += f" ({low} to {high})"
    return text


def p_text(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def primary_outcome(result: ExperimentResult) -> OutcomeResult | None:
    return next((o for o in result.outcomes if o.primary), None)


def lift_row(label: str, result: OutcomeResult | None, significant: bool) -> ForestRow:
    """A forest plot's row for one outcome's lift, in the outcome's unit."""
    if result is None:
        return ForestRow(label, None, None, None)
    o = result.outcome
    return ForestRow(
        label,
        in_lift_unit(result.lift, o),
        in_lift_unit(result.ci_low, o),
        in_lift_unit(result.ci_high, o),
        significant,
    )


def experiment_forests(results: Sequence[ExperimentResult]) -> list[str]:
    """One forest plot per primary outcome (a shared axis needs a shared unit), one row per
    experiment: its primary lift with the 95% interval, the dot filled when significant."""
    plots = []
    for outcome in dict.fromkeys(r.primary for r in results):
        rows = [
            lift_row(
                f"{r.offer_id} · {outcome.replace('_', ' ')}",
                primary_outcome(r),
                r.status == "significant",
            )
            for r in results
            if r.primary == outcome
        ]
        unit = lift_unit(outcome)
        plots.append(forest_plot(rows, f"Experiments: lift in {unit}", unit))
    return plots
