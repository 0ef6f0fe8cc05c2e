"""What NPS comments talk about, per NPS category: for `GET /v1/nps/themes` and the console.

Every answer of the active version plus the live ones taken since (skipping those the version
holds, as `recsvc.service.nps_summary` does), inside a window of responded days and optionally one
primary segment (as of the version). Counting follows the NPS report's themes
(`training.report.themes`): **every answer with a comment**, in the category of its own score, and
a theme's share is of that category's commented answers; a comment can count for several themes.
Themes are the keyword lexicon of `recsvc.domain.themes`; a version stores each comment's themes
(`recsvc.version.comments`), live comments are tagged here with the same rules.

Verbatims are shown to marketers: text, time and touchpoint, never who wrote them. Customers a
worker masks (erased after the version's data) are left out: their stored answers, and their live
answers from before the erasure (the caller's `live` list has none of those).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Final

import msgspec
import numpy as np
from msgspec import Meta

from recsvc.domain import times
from recsvc.domain.live import LiveResponse
from recsvc.domain.nps import PASSIVE_MIN, PROMOTER_MIN, NpsCategory
from recsvc.domain.themes import THEME_NAMES, comment_text, themes_of
from recsvc.errors import ArtifactError, InvalidRequest, shown
from recsvc.service.nps_window import DayWindow, parse_window
from recsvc.version.artifacts import holds_keys, id_keys
from recsvc.version.comments import theme_mask
from recsvc.version.opened import ActiveModel
from recsvc.version.responses import GROUP_COLUMNS, NOT_GIVEN, ResponseTable

CATEGORIES: Final = (NpsCategory.PROMOTER, NpsCategory.PASSIVE, NpsCategory.DETRACTOR)
THEME_COUNTING: Final = (
    "every answer with a comment, in the category of its own score; a theme's share is of the "
    "category's commented answers, and a comment counts for every theme it mentions"
)
DEFAULT_VERBATIMS: Final = 3
MAX_VERBATIMS: Final = 20
NO_COMMENTS: Final = (
    "this version holds no comments (trained before they were kept): only live answers' comments "
    "are counted; retrain to add the version's"
)
_SEGMENT = GROUP_COLUMNS.index("segment")
_NO_SEGMENT = -2  # the code of a segment nobody has as their primary one: matches no answer


# --- the reply ------------------------------------------------------------------------------------


# The fields' descriptions are the OpenAPI schema's (`GET /v1/nps/themes`).
class Verbatim(msgspec.Struct, frozen=True, kw_only=True):
    text: Annotated[str, Meta(description="the comment, whitespace stripped")]
    responded_at: Annotated[dt.datetime, Meta(description="when it was given (UTC)")]
    touchpoint: str


class ThemeCount(msgspec.Struct, frozen=True, kw_only=True):
    theme: str
    comments: Annotated[
        int, Meta(description="commented answers of the category mentioning the theme")
    ]
    share: Annotated[float, Meta(description="of the category's commented answers, 0..1")]
    verbatims: Annotated[
        list[Verbatim],
        Meta(description="the latest distinct comments mentioning it, newest first"),
    ]


class CategoryThemes(msgspec.Struct, frozen=True, kw_only=True):
    category: Annotated[str, Meta(description="promoter (9-10), passive (7-8), detractor (0-6)")]
    answers: Annotated[int, Meta(description="answers of the category, with or without comment")]
    commented: Annotated[int, Meta(description="answers of the category with a comment")]
    unthemed: Annotated[int, Meta(description="commented answers that mention no theme")]
    themes: Annotated[
        list[ThemeCount],
        Meta(description="every theme, most mentioned first (ties in lexicon order)"),
    ]


class ThemeSummary(msgspec.Struct, frozen=True, kw_only=True):
    model_version: str
    segment: str | None
    since: dt.date | None
    until: dt.date | None
    counting: str = THEME_COUNTING
    version_comments: Annotated[
        bool,
        Meta(description="false: the version was trained before comments were kept (see note)"),
    ]
    note: str | None = None
    artifact_answers: Annotated[
        int, Meta(description="the version's answers counted (window, segment, not erased)")
    ]
    live_answers: Annotated[
        int | None,
        Meta(description="live answers added; null when the store could not be read"),
    ]
    themes: Annotated[list[str], Meta(description="the theme names, in lexicon order")]
    categories: Annotated[
        list[CategoryThemes], Meta(description="promoter, passive, detractor, in that order")
    ]


# --- the query ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThemeQuery:
    segment: str | None = None
    window: DayWindow = field(default_factory=DayWindow)
    verbatims: int = DEFAULT_VERBATIMS


def parse_theme_query(
    segment: str | None,
    since: str | dt.date | None,
    until: str | dt.date | None,
    *,
    segments: Sequence[str],
    verbatims: int = DEFAULT_VERBATIMS,
) -> ThemeQuery:
    """Check the parameters against the version's `segments`; InvalidRequest names the one at
    fault. `segment` is a primary segment's name, or "(not given)" for answers of customers
    without one (those the version does not know)."""
    if segment == "":
        segment = None
    if segment is not None and segment not in segments and segment != NOT_GIVEN:
        listed = ", ".join(segments[:20]) + (", ..." if len(segments) > 20 else "")
        raise InvalidRequest(f"segment: unknown segment {shown(segment, 40)}; known: {listed}")
    if isinstance(verbatims, bool) or not 0 <= verbatims <= MAX_VERBATIMS:
        raise InvalidRequest(f"verbatims: must be 0..{MAX_VERBATIMS} (got {shown(verbatims)})")
    window = parse_window(_text(since), _text(until))
    return ThemeQuery(segment=segment, window=window, verbatims=verbatims)


def _text(day: str | dt.date | None) -> str | None:
    return day.isoformat() if isinstance(day, dt.date) else day


# --- the answers counted --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answers:
    """The answers counted, version rows first, then live ones, as columns."""

    category: np.ndarray  # int64 index into CATEGORIES
    themes: np.ndarray  # uint32 theme bits (in the summary's theme order)
    commented: np.ndarray  # bool
    time: np.ndarray  # int64 UTC seconds
    key: np.ndarray  # uint64 response key: breaks ties between answers of the same second
    rows: np.ndarray  # the version's row of each of the first `rows.size` answers
    live: list[LiveResponse]  # the rest, in order
    live_comments: list[str | None]


def _categories(scores: np.ndarray) -> np.ndarray:
    # 0 promoter, 1 passive, 2 detractor: CATEGORIES' order, by recsvc.domain.nps's cut-offs.
    scores = scores.astype(np.int64)
    return np.where(scores >= PROMOTER_MIN, 0, np.where(scores >= PASSIVE_MIN, 1, 2))


def _segment_code(table: ResponseTable, segment: str | None) -> int | None:
    if segment is None:
        return None
    labels = table.group_labels["segment"]
    return labels.index(segment) if segment in labels else _NO_SEGMENT


def _stored(
    table: ResponseTable, query: ThemeQuery, masked: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The version's rows counted, their theme bits and whether they have a comment."""
    customers = np.asarray(table.customers)
    keep = query.window.mask(np.asarray(table.times))
    if masked.size:
        keep &= ~np.isin(customers, masked)
    code = _segment_code(table, query.segment)
    if code is not None:
        groups = np.asarray(table.customer_groups[:, _SEGMENT])
        segment = np.full(customers.size, table.group_labels["segment"].index(NOT_GIVEN))
        known = customers >= 0
        segment[known] = groups[customers[known]]
        keep &= segment == code
    rows = np.flatnonzero(keep)
    comments = table.comments
    if comments is None:
        none = np.zeros(rows.size, dtype=np.uint32)
        return rows, none, none.astype(bool)
    # The version's theme order is the start of `names` (`_theme_names`): its bits need no mapping.
    return rows, np.asarray(comments.themes[rows]), comments.commented()[rows]


def _fresh(
    table: ResponseTable,
    live: Sequence[LiveResponse],
    query: ThemeQuery,
    customer_index: Callable[[str], int | None],
) -> list[LiveResponse]:
    """The live answers to add: not held by the version, in the window and segment."""
    keep = ~holds_keys(table.keys, id_keys([r.response_id for r in live]))
    keep &= query.window.mask(
        np.asarray([times.epoch_seconds(r.responded_at) for r in live], dtype=np.int64)
    )
    code = _segment_code(table, query.segment)
    if code is None:
        return [r for r, k in zip(live, keep.tolist(), strict=True) if k]
    not_given = table.group_labels["segment"].index(NOT_GIVEN)
    fresh = []
    for response, k in zip(live, keep.tolist(), strict=True):
        if not k:
            continue
        index = customer_index(response.customer_id)
        segment = not_given if index is None else int(table.customer_groups[index, _SEGMENT])
        if segment == code:
            fresh.append(response)
    return fresh


def _theme_names(table: ResponseTable) -> list[str]:
    """The version's themes in its bit order, then any theme of today's lexicon it lacks (for
    live comments)."""
    stored = list(table.comments.theme_names) if table.comments is not None else []
    return stored + [name for name in THEME_NAMES if name not in stored]


def _answers(
    table: ResponseTable,
    live: Sequence[LiveResponse],
    query: ThemeQuery,
    masked: np.ndarray,
    customer_index: Callable[[str], int | None],
    names: Sequence[str],
) -> _Answers:
    rows, bits, commented = _stored(table, query, masked)
    fresh = _fresh(table, live, query, customer_index)
    texts = [comment_text(r.comment) for r in fresh]
    return _Answers(
        category=np.concatenate(
            [
                _categories(np.asarray(table.scores[rows])),
                _categories(np.asarray([r.score for r in fresh], dtype=np.int64)),
            ]
        ),
        themes=np.concatenate(
            [bits, np.asarray([theme_mask(themes_of(t), names) for t in texts], dtype=np.uint32)]
        ),
        commented=np.concatenate([commented, np.asarray([t is not None for t in texts], bool)]),
        time=np.concatenate(
            [
                np.asarray(table.times[rows], dtype=np.int64),
                np.asarray([times.epoch_seconds(r.responded_at) for r in fresh], dtype=np.int64),
            ]
        ),
        key=np.concatenate([np.asarray(table.keys[rows]), id_keys([r.response_id for r in fresh])]),
        rows=rows,
        live=fresh,
        live_comments=texts,
    )


# --- the summary ----------------------------------------------------------------------------------


def _text_keys(answers: _Answers, table: ResponseTable, chosen: np.ndarray) -> np.ndarray:
    """A number per chosen answer that is equal for equal comments: the version's comment number,
    or -1 - k for the k-th distinct live comment (a live comment equal to a version one is told
    apart only when decoded)."""
    n_stored = answers.rows.size
    keys = np.empty(chosen.size, dtype=np.int64)
    stored = chosen < n_stored
    if table.comments is not None:
        keys[stored] = table.comments.index[answers.rows[chosen[stored]]]
    seen: dict[str | None, int] = {}
    keys[~stored] = [
        -1 - seen.setdefault(answers.live_comments[i - n_stored], len(seen))
        for i in chosen[~stored].tolist()
    ]
    return keys


def _verbatims(
    answers: _Answers, table: ResponseTable, chosen: np.ndarray, limit: int
) -> list[Verbatim]:
    """The latest distinct comments among the `chosen` answers (indices, newest first)."""
    found: dict[str, Verbatim] = {}
    n_stored = answers.rows.size
    seen: set[int] = set()
    start, size = 0, 4 * limit
    # Growing slices, each cut to its first answer per distinct text before anything is decoded:
    # a comment repeated thousands of times is read once.
    while len(found) < limit and start < chosen.size:
        part = chosen[start : start + size]
        start, size = start + size, 2 * size
        keys = _text_keys(answers, table, part)
        _, first = np.unique(keys, return_index=True)
        for j in np.sort(first).tolist():
            key, i = int(keys[j]), int(part[j])
            if len(found) >= limit:
                break
            if key >= 0 and key in seen:
                continue
            seen.add(key)
            if i < n_stored:
                row = int(answers.rows[i])
                text = table.comments.comment(row) if table.comments is not None else None
                touchpoint = table.touchpoint_names[int(table.touchpoints[row])]
            else:
                text = answers.live_comments[i - n_stored]
                touchpoint = answers.live[i - n_stored].touchpoint
            if text is None or text in found:
                continue
            found[text] = Verbatim(
                text=text,
                responded_at=dt.datetime.fromtimestamp(int(answers.time[i]), dt.UTC),
                touchpoint=touchpoint,
            )
    return list(found.values())


def _category(
    k: int,
    answers: _Answers,
    table: ResponseTable,
    names: Sequence[str],
    newest: np.ndarray,
    limit: int,
) -> CategoryThemes:
    mine = answers.category == k
    commented = mine & answers.commented
    total = int(commented.sum())
    counts = []
    for bit, name in enumerate(names):
        mentions = commented & ((answers.themes >> np.uint32(bit)) & np.uint32(1)).astype(bool)
        n = int(mentions.sum())
        counts.append(
            ThemeCount(
                theme=name,
                comments=n,
                share=n / total if total else 0.0,
                verbatims=_verbatims(answers, table, newest[mentions[newest]], limit)
                if n and limit
                else [],
            )
        )
    counts.sort(key=lambda t: -t.comments)  # stable: ties keep the lexicon's order
    return CategoryThemes(
        category=CATEGORIES[k].value,
        answers=int(mine.sum()),
        commented=total,
        unthemed=int((commented & (answers.themes == 0)).sum()),
        themes=counts,
    )


def summarise_themes(
    table: ResponseTable,
    live: Sequence[LiveResponse] | None,
    *,
    query: ThemeQuery,
    model_version: str,
    customer_index: Callable[[str], int | None],
    masked: np.ndarray | None = None,
) -> ThemeSummary:
    """Themes per NPS category over the version's answers plus `live` (None: not available),
    without the answers of the `masked` customer rows. `customer_index` finds a live answer's
    customer in the version (None: unknown, or masked), for the segment filter."""
    names = _theme_names(table)
    hidden = masked if masked is not None else np.zeros(0, dtype=np.int64)
    answers = _answers(table, live or (), query, hidden, customer_index, names)
    # The commented answers, newest first; the response key orders answers of the same second
    # the same way every time.
    commented = np.flatnonzero(answers.commented)
    newest = commented[np.lexsort((answers.key[commented], answers.time[commented]))[::-1]]
    return ThemeSummary(
        model_version=model_version,
        segment=query.segment,
        since=query.window.since,
        until=query.window.until,
        version_comments=table.comments is not None,
        note=None if table.comments is not None else NO_COMMENTS,
        artifact_answers=int(answers.rows.size),
        live_answers=len(answers.live) if live is not None else None,
        themes=list(names),
        categories=[
            _category(k, answers, table, names, newest, query.verbatims)
            for k in range(len(CATEGORIES))
        ],
    )


def theme_summary(
    model: ActiveModel,
    live: Sequence[LiveResponse] | None,
    *,
    masked: np.ndarray | None = None,
    segment: str | None = None,
    since: str | dt.date | None = None,
    until: str | dt.date | None = None,
    verbatims: int = DEFAULT_VERBATIMS,
) -> ThemeSummary:
    """Comment themes per NPS category of the active version's answers plus `live` (every live
    answer, as `ModelHolder.all_live_answers` gives them; None: the store could not be read),
    without the `masked` rows (`ModelHolder.masked_rows`). `segment` (a primary segment's name),
    `since` and `until` (responded days, UTC, YYYY-MM-DD or dates) narrow it; a bad one is an
    InvalidRequest naming it. ArtifactError for a version without an NPS answer table."""
    query = parse_theme_query(
        segment, since, until, segments=model.rules.names, verbatims=verbatims
    )  # bad parameters fail before any reading
    if model.responses is None:
        raise ArtifactError(
            f"model version {model.version} has no NPS answer table: retrain to add it"
        )
    hidden = set(masked.tolist()) if masked is not None else set()

    def customer_index(customer_id: str) -> int | None:
        # A returning erased customer's new answer has no segment from what the version held.
        index = model.loaded.customer_index(customer_id)
        return None if index in hidden else index

    return summarise_themes(
        model.responses,
        live,
        query=query,
        model_version=model.version,
        customer_index=customer_index,
        masked=masked,
    )
