"""One customer's NPS answers with their comments and themes, newest first: the version's plus
the live ones taken since (skipping those the version holds). For the console's customer
inspector and the subject access export (`recsvc.service.privacy`).

A customer the version masks (erased after its data) has no version answers here, only live ones
dated after their erasure (what `ModelHolder.live` gives).
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal

import msgspec
import numpy as np

from recsvc.domain.live import LiveActivity, LiveResponse
from recsvc.domain.nps import category
from recsvc.domain.themes import comment_text, themes_of
from recsvc.version.opened import ActiveModel

Source = Literal["version", "live"]
VERSION: Final = "version"
LIVE: Final = "live"


class NpsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    score: int
    category: str  # promoter, passive or detractor
    responded_at: dt.datetime  # UTC
    touchpoint: str
    comment: str | None  # None: none given (or the version holds no comments)
    themes: list[str]  # the comment's themes, in lexicon order
    source: Source  # the active version, or taken in live since


class CustomerNpsAnswers(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    model_version: str
    known: bool  # the version shows the customer (False: unknown to it, or masked after erasure)
    # False: the version was trained before comments were kept; its answers show none.
    version_comments: bool
    answers: list[NpsAnswer]  # newest first


def version_answers(model: ActiveModel, index: int) -> list[NpsAnswer]:
    """The answers the version holds of its customer row `index`, oldest first (the caller has
    checked that the version may show the customer: `ActiveModel.profile_index`)."""
    table = model.responses
    if table is None:
        return []
    comments = table.comments
    rows = np.flatnonzero(np.asarray(table.customers) == index)
    rows = rows[np.argsort(np.asarray(table.times[rows]), kind="stable")]
    answers = []
    for row in rows.tolist():
        score = int(table.scores[row])
        answers.append(
            NpsAnswer(
                score=score,
                category=category(score).value,
                responded_at=dt.datetime.fromtimestamp(int(table.times[row]), dt.UTC),
                touchpoint=table.touchpoint_names[int(table.touchpoints[row])],
                comment=comments.comment(row) if comments is not None else None,
                themes=comments.themes_at(row) if comments is not None else [],
                source=VERSION,
            )
        )
    return answers


def live_answer(response: LiveResponse) -> NpsAnswer:
    text = comment_text(response.comment)
    return NpsAnswer(
        score=response.score,
        category=category(response.score).value,
        responded_at=response.responded_at,
        touchpoint=response.touchpoint,
        comment=text,
        themes=themes_of(text),
        source=LIVE,
    )


def customer_answers(
    model: ActiveModel, customer_id: str, activity: LiveActivity
) -> CustomerNpsAnswers:
    """The customer's answers as of the active version plus `activity` (their live records,
    `ModelHolder.live(customer_id)`), newest first; empty for a customer nobody knows."""
    index = model.profile_index(customer_id, activity.erased_at)
    stored = version_answers(model, index) if index is not None else []
    live = list(activity.answers)
    if model.responses is not None and live:
        held = model.responses.holds([r.response_id for r in live])
        live = [r for r, is_held in zip(live, held, strict=True) if not is_held]
    answers = [*stored, *(live_answer(r) for r in live)]
    answers.sort(key=lambda a: a.responded_at, reverse=True)  # stable: equal times keep order
    return CustomerNpsAnswers(
        customer_id=customer_id,
        model_version=model.version,
        known=index is not None,
        version_comments=model.responses is not None and model.responses.comments is not None,
        answers=answers,
    )
