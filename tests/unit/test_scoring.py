"""CX scores, checked against numbers worked out by hand."""

from __future__ import annotations

import pytest

from flows import (
    CesSummary,
    CsatSummary,
    NpsSummary,
    Question,
    QuestionType,
    ces,
    csat,
    is_detractor,
    nps,
)


def test_nps_counts_and_score() -> None:
    # 10, 9, 9 promoters; 8, 7 passives; 6, 3, 0 detractors; None is a skip.
    summary = nps([10, 9, 9, 8, 7, 6, 3, 0, None])
    # (3 - 3) / 8 = 0 points.
    assert summary == NpsSummary(count=8, promoters=3, passives=2, detractors=3, score=0.0)


def test_nps_score_in_points() -> None:
    # 3 promoters, 1 passive, 1 detractor of 5: 60 % - 20 % = 40.
    assert nps([9, 10, 10, 7, 2]).score == pytest.approx(40.0)
    assert nps([0, 0, 0, 0]).score == pytest.approx(-100.0)
    assert nps([10]).score == pytest.approx(100.0)


def test_nps_without_answers_has_no_score() -> None:
    assert nps([]) == NpsSummary(0, 0, 0, 0, None)
    assert nps([None, None]).score is None


def test_csat_mean_and_top_two_boxes() -> None:
    # mean (5 + 4 + 4 + 3 + 1) / 5 = 3.4; top two boxes 5, 4, 4 = 3 of 5 = 0.6.
    summary = csat([5, 4, 4, 3, 1, None])
    assert summary.count == 5
    assert summary.mean == pytest.approx(3.4)
    assert summary.top2_share == pytest.approx(0.6)


def test_csat_on_a_ten_point_scale() -> None:
    # top two boxes on 10 points are 9 and 10: 2 of 4.
    summary = csat([10, 9, 8, 1], scale=10)
    assert summary.mean == pytest.approx(7.0)
    assert summary.top2_share == pytest.approx(0.5)


def test_ces_mean_and_easy_share() -> None:
    # mean (7 + 6 + 5 + 4 + 1) / 5 = 4.6; easy is 5 or more: 3 of 5.
    summary = ces([7, 6, 5, 4, 1])
    assert summary.mean == pytest.approx(4.6)
    assert summary.easy_share == pytest.approx(0.6)


def test_empty_summaries() -> None:
    assert csat([]) == CsatSummary(0, None, None)
    assert ces([None]) == CesSummary(0, None, None)


@pytest.mark.parametrize(
    ("call", "values"),
    [(nps, [11]), (nps, [-1]), (nps, [True]), (csat, [0]), (csat, [6]), (ces, [8]), (ces, [4.5])],
)
def test_values_off_the_scale_are_refused(call, values) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call(values)


def _question(qtype: QuestionType, scale: int | None = None) -> Question:
    return Question(id="q", type=qtype, text={"id": "?"}, scale=scale)


@pytest.mark.parametrize(
    ("qtype", "scale", "value", "expected"),
    [
        (QuestionType.NPS, None, 6, True),
        (QuestionType.NPS, None, 0, True),
        (QuestionType.NPS, None, 7, False),
        (QuestionType.NPS, None, None, False),
        (QuestionType.RATING, 5, 1, True),
        (QuestionType.RATING, 5, 2, True),
        (QuestionType.RATING, 5, 3, False),
        (QuestionType.RATING, None, 2, True),
        (QuestionType.RATING, 10, 3, True),
        (QuestionType.RATING, 10, 4, False),
        (QuestionType.RATING, 7, 2, True),
        (QuestionType.RATING, 7, 3, False),
        (QuestionType.RATING, 3, 1, True),
        (QuestionType.RATING, 3, 2, False),
        (QuestionType.CES, None, 1, False),
        (QuestionType.YESNO, None, False, False),
        (QuestionType.NPS, None, True, False),
    ],
)
def test_is_detractor(
    qtype: QuestionType, scale: int | None, value: object, expected: bool
) -> None:
    assert is_detractor(_question(qtype, scale), value) is expected
