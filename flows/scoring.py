"""CX scores over lists of stored answers: NPS, CSAT and CES, plus the detractor rule.

Skipped answers (None) are left out of every count. Shares are fractions from 0 to 1; the NPS
score is in points from -100 to 100, as the industry reports it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flows.schema import DEFAULT_SCALE, Question, QuestionType, Survey

NPS_PROMOTER_MIN = 9
NPS_DETRACTOR_MAX = 6
CES_EASY_MIN = 5
CES_SCALE = 7


@dataclass(frozen=True)
class NpsSummary:
    """Net Promoter Score: promoters answer 9-10, passives 7-8, detractors 0-6."""

    count: int
    promoters: int
    passives: int
    detractors: int
    score: float | None


@dataclass(frozen=True)
class CsatSummary:
    """Customer satisfaction: the mean rating and the share in the top two boxes."""

    count: int
    mean: float | None
    top2_share: float | None


@dataclass(frozen=True)
class CesSummary:
    """Customer effort on 1-7: the mean and the share answering 5 or more (easy)."""

    count: int
    mean: float | None
    easy_share: float | None


Counts = Mapping[int, int]  # answer value -> how many gave it


def nps(values: Iterable[int | None]) -> NpsSummary:
    """Summarise 0-10 answers; score = % promoters - % detractors, None without answers."""
    return nps_of(_count(values))


def nps_of(counts: Counts) -> NpsSummary:
    """NPS over answers counted by value, as the database groups them."""
    _check(counts, 0, 10)
    count = sum(counts.values())
    promoters = sum(n for v, n in counts.items() if v >= NPS_PROMOTER_MIN)
    detractors = sum(n for v, n in counts.items() if v <= NPS_DETRACTOR_MAX)
    score = 100.0 * (promoters - detractors) / count if count else None
    return NpsSummary(count, promoters, count - promoters - detractors, detractors, score)


def csat(values: Iterable[int | None], scale: int = DEFAULT_SCALE) -> CsatSummary:
    """Summarise 1..scale ratings; the top two boxes are scale-1 and scale (4-5 on 5)."""
    return csat_of(_count(values), scale)


def csat_of(counts: Counts, scale: int = DEFAULT_SCALE) -> CsatSummary:
    _check(counts, 1, scale)
    count = sum(counts.values())
    top2 = sum(n for v, n in counts.items() if v >= scale - 1)
    return CsatSummary(count, _mean(counts), _share(top2, count))


def ces(values: Iterable[int | None]) -> CesSummary:
    """Summarise 1-7 effort answers, where 7 means the task was very easy."""
    return ces_of(_count(values))


def ces_of(counts: Counts) -> CesSummary:
    _check(counts, 1, CES_SCALE)
    count = sum(counts.values())
    easy = sum(n for v, n in counts.items() if v >= CES_EASY_MIN)
    return CesSummary(count, _mean(counts), _share(easy, count))


def is_detractor(question: Question, value: Any) -> bool:
    """Whether an answer should alert the branch: NPS 0-6, or a rating in its bottom quarter.

    On the usual 5-point CSAT scale the bottom quarter is 1-2; other scales scale with it
    (1-3 on 10 points, 1 on 3 points). Other question types never raise an alert.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    if question.type == QuestionType.NPS:
        return 0 <= value <= NPS_DETRACTOR_MAX
    if question.type == QuestionType.RATING:
        scale = question.scale or DEFAULT_SCALE
        return value >= 1 and 4 * (value - 1) <= scale - 1
    return False


def alerting(survey: Survey, answers: Mapping[str, Any]) -> list[str]:
    """The questions whose answers alert the branch: at or below the survey's own thresholds
    (`alerts:` in its file), or by the detractor rule when the file sets none."""
    found = []
    for question_id, value in answers.items():
        if not survey.has_question(question_id):
            continue
        question = survey.question(question_id)
        if survey.alerts is None:
            hit = is_detractor(question, value)
        else:
            limit = survey.alerts.get(question.type)
            hit = limit is not None and _is_whole(value) and value <= limit
        if hit:
            found.append(question_id)
    return found


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(values: Iterable[int | None]) -> Counter[int]:
    """Drop skips, count the rest by value."""
    return Counter(v for v in values if v is not None)


def _check(counts: Counts, low: int, high: int) -> None:
    """Refuse values outside the scale, which would silently skew a score."""
    for v in counts:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ValueError(f"{v!r} is not a whole number from {low} to {high}")


def _mean(counts: Counts) -> float | None:
    count = sum(counts.values())
    return sum(v * n for v, n in counts.items()) / count if count else None


def _share(part: int, count: int) -> float | None:
    return part / count if count else None
