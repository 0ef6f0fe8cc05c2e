"""NPS summaries for the API: every NPS answer of the active version plus the live ones, grouped by
the customer's primary segment, country or age band, or by touchpoint or month.

The training job writes a version's answers as arrays (`training.publish.responses`); the service maps
them and adds the answers taken in live since (`LiveResponse`), skipping any the version already
holds (same response id). Counting follows the NPS report: **one vote per customer per group**, their
latest answer in the group (within the date window), so the numbers agree with the report and the
margin of error can assume independent answers. The math is `recsvc.domain.nps`; the version's
answer arrays are `recsvc.version.responses`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np

from recsvc.domain import times
from recsvc.domain.live import LiveResponse
from recsvc.domain.nps import (
    DEFAULT_MIN_N,
    NpsResult,
    ZTest,
    nps_from_counts,
    rest_of,
    two_sample_z,
)
from recsvc.errors import InvalidRequest
from recsvc.service.nps_window import DayWindow, parse_window
from recsvc.version.artifacts import holds_keys, id_keys
from recsvc.version.responses import GROUP_COLUMNS, NOT_GIVEN, ResponseTable

DIMENSIONS: Final = (*GROUP_COLUMNS, "touchpoint", "month")
COUNTING: Final = "one vote per customer per group: their latest answer in the group and window"


# --- the query ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummaryQuery:
    by: str | None = None
    since: dt.date | None = None  # first responded day included (UTC)
    until: dt.date | None = None  # last responded day included (UTC)


def parse_query(by: str | None, since: str | None, until: str | None) -> SummaryQuery:
    """Check the parameters; InvalidRequest names the one at fault."""
    if by is not None and by not in DIMENSIONS:
        raise InvalidRequest(f"by: unknown value {by[:40]!r}; use one of {', '.join(DIMENSIONS)}")
    window = parse_window(since, until)
    return SummaryQuery(by=by or None, since=window.since, until=window.until)


# --- the reply ------------------------------------------------------------------------------------


class NpsGroup(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    nps: NpsResult
    # This group against the other groups together (months: against the month before).
    test: ZTest | None = None
    compared_with: str | None = None  # "rest" or "previous_month"
    significant: bool = False


class NpsSummary(msgspec.Struct, frozen=True, kw_only=True):
    model_version: str
    by: str | None
    since: dt.date | None
    until: dt.date | None
    counting: str = COUNTING
    artifact_answers: int  # answers of the version inside the window
    live_answers: int | None  # live answers added; None when the store could not be read
    overall: NpsResult
    groups: list[NpsGroup]


# --- counting -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answers:
    """Answers as columns; `customer` is the artifact index, or n_customers + k for the k-th
    customer only seen live."""

    customer: np.ndarray
    score: np.ndarray
    time: np.ndarray
    touchpoint: np.ndarray
    key: np.ndarray

    @property
    def size(self) -> int:
        return int(self.customer.size)


def _window(times: np.ndarray, query: SummaryQuery) -> np.ndarray:
    return DayWindow(query.since, query.until).mask(times)


def _live_answers(
    table: ResponseTable,
    live: Sequence[LiveResponse],
    customer_index: Callable[[str], int | None],
    n_customers: int,
    touchpoints: list[str],
) -> _Answers:
    """Live answers as columns, without those the version already holds."""
    keys = id_keys([r.response_id for r in live])
    new = ~holds_keys(table.keys, keys)
    newcomers: dict[str, int] = {}
    customer, score, time, touchpoint = [], [], [], []
    for response, keep in zip(live, new.tolist(), strict=True):
        if not keep:
            continue
        index = customer_index(response.customer_id)
        if index is None:
            index = newcomers.setdefault(response.customer_id, n_customers + len(newcomers))
        if response.touchpoint not in touchpoints:
            touchpoints.append(response.touchpoint)
        customer.append(index)
        score.append(response.score)
        time.append(times.epoch_seconds(response.responded_at))
        touchpoint.append(touchpoints.index(response.touchpoint))
    return _Answers(
        customer=np.asarray(customer, dtype=np.int64),
        score=np.asarray(score, dtype=np.int8),
        time=np.asarray(time, dtype=np.int64),
        touchpoint=np.asarray(touchpoint, dtype=np.int16),
        key=keys[new],
    )


def _latest_votes(
    group: np.ndarray, answers: _Answers, n_groups: int, min_n: int
) -> list[NpsResult]:
    """Per group code: NPS over each customer's latest answer in that group."""
    if answers.size == 0:
        return [nps_from_counts(0, 0, 0, min_n=min_n) for _ in range(n_groups)]
    order = np.lexsort((answers.key, answers.time, answers.customer, group))
    g, cust = group[order], answers.customer[order]
    last = np.ones(order.size, dtype=bool)
    last[:-1] = (g[1:] != g[:-1]) | (cust[1:] != cust[:-1])
    scores = answers.score[order][last].astype(np.int64)
    # 0 promoter (9-10), 1 passive (7-8), 2 detractor (0-6): the cut-offs of recsvc.domain.nps.category.
    category = np.where(scores >= 9, 0, np.where(scores >= 7, 1, 2))
    counts = np.bincount(g[last] * 3 + category, minlength=3 * n_groups).reshape(n_groups, 3)
    return [nps_from_counts(int(p), int(s), int(d), min_n=min_n) for p, s, d in counts.tolist()]


def _month_label(month: int) -> str:
    return str(np.datetime64(month, "M"))


def _groups(
    by: str,
    answers: _Answers,
    table: ResponseTable,
    touchpoints: list[str],
    n_customers: int,
    segment_order: Sequence[str],
    min_n: int,
) -> list[NpsGroup]:
    if by in GROUP_COLUMNS:
        labels = list(table.group_labels[by])
        if NOT_GIVEN not in labels:
            labels.append(NOT_GIVEN)
        column = table.customer_groups[:, GROUP_COLUMNS.index(by)]
        known = (answers.customer >= 0) & (answers.customer < n_customers)
        codes = np.full(answers.size, labels.index(NOT_GIVEN), dtype=np.int64)
        codes[known] = np.asarray(column)[answers.customer[known]]
    elif by == "touchpoint":
        labels = list(touchpoints)
        codes = answers.touchpoint.astype(np.int64)
    else:  # month
        months = answers.time.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
        first = int(months.min()) if months.size else 0
        codes = months - first
        labels = [_month_label(first + k) for k in range(int(codes.max()) + 1 if codes.size else 0)]
    results = _latest_votes(codes, answers, len(labels), min_n)
    present = {labels[k]: result for k, result in enumerate(results) if result.n > 0}
    if by == "month":
        return _against_previous(list(present.items()))
    total = nps_from_counts(
        sum(r.promoters for r in present.values()),
        sum(r.passives for r in present.values()),
        sum(r.detractors for r in present.values()),
        min_n=min_n,
    )
    return [
        _group(
            label,
            present[label],
            two_sample_z(present[label], rest_of(total, present[label], min_n)),
            "rest",
        )
        for label in sorted(present, key=lambda s: _sort_key(by, s, present, labels, segment_order))
    ]


def _group(label: str, result: NpsResult, test: ZTest | None, against: str) -> NpsGroup:
    return NpsGroup(
        label=label,
        nps=result,
        test=test,
        compared_with=against if test is not None else None,
        significant=bool(test and test.significant),
    )


def _sort_key(
    by: str,
    label: str,
    present: dict[str, NpsResult],
    labels: list[str],
    segment_order: Sequence[str],
) -> tuple[object, ...]:
    """Segments in rule order, touchpoints in contract order, age bands by name, countries by
    number of answers; "(not given)" last."""
    if by == "segment":
        rank = segment_order.index(label) if label in segment_order else len(segment_order)
    elif by == "touchpoint":
        rank = labels.index(label)
    elif by == "age_band":
        rank = 0
    else:
        rank = -present[label].n
    return (label == NOT_GIVEN, rank, label)


def _against_previous(months: list[tuple[str, NpsResult]]) -> list[NpsGroup]:
    groups = []
    previous: NpsResult | None = None
    for label, result in months:
        test = two_sample_z(result, previous) if previous is not None else None
        groups.append(_group(label, result, test, "previous_month"))
        previous = result
    return groups


def summarise(
    table: ResponseTable,
    live: Sequence[LiveResponse] | None,
    *,
    query: SummaryQuery,
    model_version: str,
    customer_index: Callable[[str], int | None],
    segment_order: Sequence[str] = (),
    min_n: int = DEFAULT_MIN_N,
    masked: np.ndarray | None = None,
) -> NpsSummary:
    """NPS overall and per group over the version's answers plus `live` (None: not available),
    without the answers of the `masked` customers (erased after the version's data)."""
    n_customers = int(table.customer_groups.shape[0])
    mask = _window(np.asarray(table.times), query)
    if masked is not None and masked.size:
        mask &= ~np.isin(np.asarray(table.customers), masked)
    stored = _Answers(
        customer=np.asarray(table.customers[mask], dtype=np.int64),
        score=np.asarray(table.scores[mask]),
        time=np.asarray(table.times[mask]),
        touchpoint=np.asarray(table.touchpoints[mask]),
        key=np.asarray(table.keys[mask]),
    )
    # An answer whose customer is missing from the artifact (none after validation) counts as its
    # own customer, with no group: a distinct negative id each.
    orphans = np.flatnonzero(stored.customer < 0)
    stored.customer[orphans] = -1 - orphans
    touchpoints = list(table.touchpoint_names)
    fresh = _live_answers(table, live or (), customer_index, n_customers, touchpoints)
    fresh_mask = _window(fresh.time, query)
    answers = _Answers(
        customer=np.concatenate([stored.customer, fresh.customer[fresh_mask]]),
        score=np.concatenate([stored.score, fresh.score[fresh_mask]]),
        time=np.concatenate([stored.time, fresh.time[fresh_mask]]),
        touchpoint=np.concatenate([stored.touchpoint, fresh.touchpoint[fresh_mask]]),
        key=np.concatenate([stored.key, fresh.key[fresh_mask]]),
    )
    overall = _latest_votes(np.zeros(answers.size, dtype=np.int64), answers, 1, min_n)[0]
    groups = (
        _groups(query.by, answers, table, touchpoints, n_customers, segment_order, min_n)
        if query.by is not None
        else []
    )
    return NpsSummary(
        model_version=model_version,
        by=query.by,
        since=query.since,
        until=query.until,
        artifact_answers=stored.size,
        live_answers=int(fresh_mask.sum()) if live is not None else None,
        overall=overall,
        groups=groups,
    )
