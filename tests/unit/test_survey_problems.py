"""Survey problems carry a code and their parameters, so an editor reads them in their own
language: English exactly as the broken fixtures expect, Indonesian for every rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.services.i18n import use_locale
from flows import SurveyDefinitionError, conditions, load_survey_file, schema
from handlers.staff.render import problem_line

BROKEN = sorted(
    (Path(__file__).resolve().parents[1] / "fixtures" / "surveys" / "broken").glob("*.yaml")
)


def _problems(path: Path) -> tuple:
    with pytest.raises(SurveyDefinitionError) as caught:
        load_survey_file(path)
    return caught.value.problems


def test_every_rule_has_one_code() -> None:
    assert not set(schema.MESSAGES) & set(conditions.MESSAGES)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_problems_read_in_english_and_indonesian(path: Path) -> None:
    problems = _problems(path)
    expected = path.with_suffix(".errors").read_text(encoding="utf-8").splitlines()
    assert all(problem.code for problem in problems)
    with use_locale("en"):
        assert [problem_line(p) for p in problems] == expected
    with use_locale("id"):
        translated = [problem_line(p) for p in problems]
    for problem, english, indonesian in zip(problems, expected, translated, strict=True):
        assert indonesian != english, english
        assert indonesian.startswith(f"{problem.path}: " if problem.path else "")
