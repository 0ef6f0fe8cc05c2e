"""NPS summaries for the API: every NPS answer of the active version plus the live ones, grouped by
the customer's primary segment, country or age band, or by touchpoint or month.

The training job writes a version's answers as arrays (`training.publish.responses`); the service maps
them and adds the answers taken in live since (`LiveResponse`), skipping any the version already
holds (same response id). Counting follows the NPS report: **one vote per customer per group**, their
latest answer in the group (within the date window), so the numbers agree with the report and the
margin of error can assume independent answers. The math is `recsvc.domain.nps`.

Files in the version directory (all arrays 1-d, one entry per answer, sorted by `key`, unless noted):

- `nps_responses.json`: `ResponseTableFile`, the counts, touchpoint names and group labels.
- `nps_responses_key.npy` (uint64): `response_key(response_id)`, for spotting live duplicates.
- `nps_responses_customer.npy` (int32): the customer's index in the artifact, -1 if not in it.
- `nps_responses_score.npy` (int8), `nps_responses_time.npy` (int64, UTC seconds since 1970),
  `nps_responses_touchpoint.npy` (int16, index into `touchpoints`).
- `nps_customer_groups.npy` (int32, customers x 3): each customer's code in `groups[column]` for
  primary segment, country and age band, in `GROUP_COLUMNS` order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
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
from recsvc.errors import ArtifactError, InvalidRequest
from recsvc.version.artifacts import load_array, reason, where

RESPONSES_JSON: Final = "nps_responses.json"
RESPONSE_KEYS: Final = "nps_responses_key.npy"
RESPONSE_CUSTOMERS: Final = "nps_responses_customer.npy"
RESPONSE_SCORES: Final = "nps_responses_score.npy"
RESPONSE_TIMES: Final = "nps_responses_time.npy"
RESPONSE_TOUCHPOINTS: Final = "nps_responses_touchpoint.npy"
CUSTOMER_GROUPS: Final = "nps_customer_groups.npy"
RESPONSE_FILES: Final = (
    RESPONSES_JSON,
    RESPONSE_KEYS,
    RESPONSE_CUSTOMERS,
    RESPONSE_SCORES,
    RESPONSE_TIMES,
    RESPONSE_TOUCHPOINTS,
    CUSTOMER_GROUPS,
)
RESPONSE_TABLE_FORMAT: Final = 1
# The customer attributes a summary can group by, as columns of `nps_customer_groups.npy`.
GROUP_COLUMNS: Final = ("segment", "country", "age_band")
DIMENSIONS: Final = (*GROUP_COLUMNS, "touchpoint", "month")
NOT_GIVEN: Final = "(not given)"  # the report's label for a missing value
COUNTING: Final = "one vote per customer per group: their latest answer in the group and window"
_EPOCH = dt.date(1970, 1, 1)
_DAY_SECONDS = 86_400
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def response_key(response_id: str) -> int:
    """A stable 64-bit key of a response id (the same in training and in every worker)."""
    return int.from_bytes(hashlib.blake2b(response_id.encode(), digest_size=8).digest(), "little")


class ResponseTableFile(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = RESPONSE_TABLE_FORMAT
    responses: int
    customers: int
    touchpoints: list[str]
    groups: dict[str, list[str]]  # column of GROUP_COLUMNS -> label of each code


_file_decoder = msgspec.json.Decoder(ResponseTableFile)


@dataclass(frozen=True, slots=True)
class ResponseTable:
    """A version's NPS answers, memory-mapped (see the module docstring)."""

    keys: np.ndarray
    customers: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    touchpoints: np.ndarray
    customer_groups: np.ndarray
    touchpoint_names: tuple[str, ...]
    group_labels: dict[str, tuple[str, ...]]

    @classmethod
    def open(cls, directory: Path, n_customers: int) -> ResponseTable | None:
        """The version's table; None when the version has none (trained before it existed)."""
        path = directory / RESPONSES_JSON
        if not path.exists():
            return None
        try:
            info = _file_decoder.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ArtifactError(f"{where(path)}: unreadable: {reason(exc)}") from None
        if info.format_version != RESPONSE_TABLE_FORMAT:
            raise ArtifactError(f"{where(path)}: format {info.format_version} is not supported")
        table = cls(
            keys=load_array(directory / RESPONSE_KEYS, "uint64"),
            customers=load_array(directory / RESPONSE_CUSTOMERS, "int32"),
            scores=load_array(directory / RESPONSE_SCORES, "int8"),
            times=load_array(directory / RESPONSE_TIMES, "int64"),
            touchpoints=load_array(directory / RESPONSE_TOUCHPOINTS, "int16"),
            customer_groups=load_array(directory / CUSTOMER_GROUPS, "int32", ndim=2),
            touchpoint_names=tuple(info.touchpoints),
            group_labels={name: tuple(info.groups.get(name, ())) for name in GROUP_COLUMNS},
        )
        sizes = {
            a.shape[0]
            for a in (table.keys, table.customers, table.scores, table.times, table.touchpoints)
        }
        if sizes != {info.responses}:
            raise ArtifactError(
                f"version {directory.name}: NPS answer arrays disagree with {RESPONSES_JSON}"
            )
        if table.customer_groups.shape != (n_customers, len(GROUP_COLUMNS)) or (
            info.customers != n_customers
        ):
            raise ArtifactError(
                f"version {directory.name}: {CUSTOMER_GROUPS} does not match the artifact's {n_customers} customers"
            )
        return table

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def holds(self, keys: np.ndarray) -> np.ndarray:
        """Which of these response keys the table already holds."""
        if len(self) == 0 or keys.size == 0:
            return np.zeros(keys.size, dtype=bool)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self) - 1)
        return np.asarray(self.keys[pos] == keys)


# --- the query ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummaryQuery:
    by: str | None = None
    since: dt.date | None = None  # first responded day included (UTC)
    until: dt.date | None = None  # last responded day included (UTC)


def _date(name: str, value: str | None) -> dt.date | None:
    if value is None or value == "":
        return None
    try:
        if not _DATE_RE.match(value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: not a date, use YYYY-MM-DD (got {value[:40]!r})") from None


def parse_query(by: str | None, since: str | None, until: str | None) -> SummaryQuery:
    """Check the parameters; InvalidRequest names the one at fault."""
    if by is not None and by not in DIMENSIONS:
        raise InvalidRequest(f"by: unknown value {by[:40]!r}; use one of {', '.join(DIMENSIONS)}")
    first, last = _date("since", since), _date("until", until)
    if first is not None and last is not None and first > last:
        raise InvalidRequest(f"since: {first} is after until ({last})")
    return SummaryQuery(by=by or None, since=first, until=last)


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
    mask = np.ones(times.shape[0], dtype=bool)
    if query.since is not None:
        mask &= times >= (query.since - _EPOCH).days * _DAY_SECONDS
    if query.until is not None:
        mask &= times < ((query.until - _EPOCH).days + 1) * _DAY_SECONDS
    return mask


def _live_answers(
    table: ResponseTable,
    live: Sequence[LiveResponse],
    customer_index: Callable[[str], int | None],
    n_customers: int,
    touchpoints: list[str],
) -> _Answers:
    """Live answers as columns, without those the version already holds."""
    keys = np.fromiter((response_key(r.response_id) for r in live), np.uint64, len(live))
    new = ~table.holds(keys)
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
) -> NpsSummary:
    """NPS overall and per group over the version's answers plus `live` (None: not available)."""
    n_customers = int(table.customer_groups.shape[0])
    mask = _window(np.asarray(table.times), query)
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
