"""Live NPS answers update a customer's category and segments before the nightly run."""

import datetime as dt

from recsvc.domain.live import LiveResponse
from recsvc.domain.segments.catalog import load_segments
from recsvc.service.customer_state import customer_state

RULES = load_segments()
TODAY = dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC)


def _answer(
    score: int,
    when: str,
    rid: str = "r1",
    comment: str | None = None,
    touchpoint: str = "relationship",
) -> LiveResponse:
    at = dt.datetime.fromisoformat(when)
    return LiveResponse(
        response_id=rid,
        customer_id="C1",
        score=score,
        responded_at=at,
        touchpoint=touchpoint,
        comment=comment,
        received_at=at,
    )


def _promoter() -> dict[str, object]:
    return {
        "customer_id": "C1",
        "nps_score": 10,
        "nps_category": "promoter",
        "nps_responses": 1,
        "last_response_at": "2025-12-01T10:00:00",
        "rfm_segment": "champions",
        "r_score": 5,
        "f_score": 5,
        "m_score": 5,
    }


def test_a_promoter_who_answers_3_becomes_a_detractor_with_recovery_segments() -> None:
    state = customer_state("C1", _promoter(), [_answer(3, "2026-01-05T09:00:00")], RULES, TODAY)
    assert state.nps_category == "detractor"
    assert state.live_responses == 1
    assert "detractors" in state.segments and "promoters" not in state.segments
    assert state.primary_segment == "high_value_detractors"
    assert state.record["nps_responses"] == 2
    assert state.record["days_since_last_response"] == 5


def test_a_live_answer_older_than_the_stored_one_changes_nothing() -> None:
    state = customer_state("C1", _promoter(), [_answer(2, "2025-11-01T09:00:00")], RULES, TODAY)
    assert state.nps_category == "promoter"
    assert state.live_responses == 0


def test_the_latest_live_answer_wins_and_delivery_scores_give_the_gap() -> None:
    answers = [
        _answer(9, "2026-01-02T09:00:00", "a", touchpoint="pre_delivery"),
        _answer(5, "2026-01-06T09:00:00", "b", "The parcel arrived a week late", "post_delivery"),
    ]
    state = customer_state("C1", _promoter(), answers, RULES, TODAY)
    assert state.record["nps_score"] == 5
    assert state.record["delivery_gap"] == -4
    assert state.complaint_theme == "delivery"


def test_a_new_customer_with_a_live_answer_gets_segments_from_it() -> None:
    state = customer_state("NEW", None, [_answer(8, "2026-01-05T09:00:00")], RULES, TODAY)
    assert not state.known
    assert state.nps_category == "passive"
    assert "passives" in state.segments


def test_ranking_works_out_the_same_primary_segment_from_the_first_matching_rule() -> None:
    """The storefront asks only for the primary segment (`all_segments=False`): the rules stop at
    the first match, and it must be the segment the full evaluation puts first."""
    cases = [
        ("C1", _promoter(), [_answer(3, "2026-01-05T09:00:00")]),
        ("C1", _promoter(), [_answer(10, "2026-01-05T09:00:00")]),
        ("C1", _promoter(), []),
        ("NEW", None, [_answer(8, "2026-01-05T09:00:00")]),
        ("NEW", None, []),
    ]
    for customer, stored, answers in cases:
        full = customer_state(customer, stored, answers, RULES, TODAY)
        primary = customer_state(customer, stored, answers, RULES, TODAY, all_segments=False)
        assert primary.primary_segment == full.primary_segment
        assert primary.segments == full.segments[:1]
        assert primary.model_attributes() == full.model_attributes()
    assert len(customer_state("C1", _promoter(), [], RULES, TODAY).segments) > 1
