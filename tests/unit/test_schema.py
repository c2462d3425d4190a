"""Survey definitions: valid files load into models, broken ones report every problem by path.

Each tests/fixtures/surveys/broken/NAME.yaml is paired with NAME.errors, the exact problem
lines expected, one per line. Set SUARA_UPDATE_FIXTURES=1 to rewrite the .errors files from
the current output, then review the diff.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

import pytest

from flows import (
    Problem,
    Question,
    QuestionType,
    SurveyDefinitionError,
    conditions,
    load_survey,
    load_survey_file,
    localized,
    schema,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "surveys"
BROKEN = sorted((FIXTURES / "broken").glob("*.yaml"))
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "surveys").glob("*.yaml"))
UPDATE = os.environ.get("SUARA_UPDATE_FIXTURES") == "1"

MINIMAL = """
spec: 1
id: minimal
default_locale: id
locales: [id, en]
title: {id: Survei, en: Survey}
intro: {id: Halo, en: Hello}
outro: {id: Terima kasih, en: Thank you}
questions:
  - id: nps
    type: nps
    text: {id: "Rekomendasi?", en: "Recommend?"}
"""


def _problems(path: Path) -> list[str]:
    with pytest.raises(SurveyDefinitionError) as caught:
        load_survey_file(path)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_survey_reports_exactly_its_problems(path: Path) -> None:
    expected_file = path.with_suffix(".errors")
    actual = _problems(path)
    if UPDATE:
        expected_file.write_text("\n".join(actual) + "\n", encoding="utf-8")
    assert expected_file.exists(), f"{path.name} has no {expected_file.name}"
    expected = expected_file.read_text(encoding="utf-8").splitlines()
    assert actual == expected


def test_every_errors_file_has_its_survey() -> None:
    orphans = [
        p.name
        for p in (FIXTURES / "broken").glob("*.errors")
        if not p.with_suffix(".yaml").exists()
    ]
    assert orphans == []


def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".+?")
    return re.compile("".join(parts) + "$")


@pytest.mark.parametrize(
    ("key", "template"),
    [*schema.MESSAGES.items(), *conditions.MESSAGES.items()],
    ids=lambda value: value if "{" not in value and " " not in value else "",
)
def test_every_validation_rule_has_a_broken_fixture(key: str, template: str) -> None:
    pattern = _pattern(template)
    lines = [
        line
        for path in BROKEN
        if path.with_suffix(".errors").exists()
        for line in path.with_suffix(".errors").read_text(encoding="utf-8").splitlines()
    ]
    assert any(pattern.search(line) for line in lines), f"no broken fixture shows rule {key!r}"


@pytest.mark.parametrize("path", VALID + EXAMPLES, ids=lambda p: p.stem)
def test_valid_surveys_load(path: Path) -> None:
    survey = load_survey_file(path)
    assert survey.questions
    assert survey.default_locale in survey.locales
    for question in survey.questions:
        for locale in survey.locales:
            assert question.text[locale]


def test_report_names_the_source_in_its_first_sentence() -> None:
    path = FIXTURES / "broken" / "spec_version.yaml"
    with pytest.raises(SurveyDefinitionError) as caught:
        load_survey_file(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"The survey definition in {path} is invalid (1 problem):"
    assert lines[1] == "  spec: unsupported spec version 2; this engine reads spec 1"


def test_report_counts_problems_and_defaults_its_source() -> None:
    with pytest.raises(SurveyDefinitionError) as caught:
        load_survey("spec: 1", source="upload from @editor")
    assert str(caught.value).startswith("The survey definition in upload from @editor is invalid (")
    with pytest.raises(SurveyDefinitionError) as caught:
        load_survey("[")
    assert caught.value.source == "<string>"
    assert caught.value.problems[0].path == ""


def test_problem_reads_as_path_then_message() -> None:
    assert str(Problem("questions[3].options[1].id", "duplicate option id 'cs'")) == (
        "questions[3].options[1].id: duplicate option id 'cs'"
    )
    assert str(Problem("", "the file is not UTF-8 text")) == "the file is not UTF-8 text"


def test_defaults_are_filled_in() -> None:
    survey = load_survey_file(FIXTURES / "valid" / "all_types.yaml")
    rating = survey.question("csat")
    assert rating.scale == 5 and rating.value_range == range(1, 6)
    assert rating.optional is False and rating.when is None
    assert survey.question("nps").value_range == range(0, 11)
    assert survey.question("ces").value_range == range(1, 8)
    multi = survey.question("improve")
    assert (multi.min, multi.max) == (1, 3)
    assert survey.question("comment").max_length == 1000
    number = survey.question("visits")
    assert (number.min, number.max, number.integer) == (0, 100, True)
    assert survey.question("resolved").value_range is None


def test_the_question_about_being_contacted_is_the_last_yes_no() -> None:
    survey = load_survey_file(FIXTURES / "valid" / "contact_consent.yaml")
    assert survey.contact_question == "contact"
    assert survey.question("contact").contact_consent
    assert not survey.question("nps").contact_consent
    assert load_survey_file(FIXTURES / "valid" / "all_types.yaml").contact_question is None


def test_models_keep_definition_order_and_types() -> None:
    survey = load_survey_file(FIXTURES / "valid" / "all_types.yaml")
    assert [q.id for q in survey.questions][:3] == ["csat", "nps", "ces"]
    assert survey.index_of("nps") == 1
    reason = survey.question("reason")
    assert reason.type is QuestionType.CHOICE
    assert reason.option_ids == ("queue", "staff", "other")
    assert reason.option("staff") is not None and reason.option("nope") is None
    with pytest.raises(KeyError, match="no question 'nope'"):
        survey.question("nope")


def test_questions_are_frozen() -> None:
    question = load_survey(MINIMAL).questions[0]
    with pytest.raises(AttributeError):
        question.optional = True  # type: ignore[misc]


def test_checksum_ignores_comments_and_layout_but_not_content() -> None:
    base = load_survey(MINIMAL)
    reformatted = load_survey(
        "# a comment\n" + MINIMAL.replace("{id: Halo, en: Hello}", "\n  id: Halo\n  en: Hello")
    )
    changed = load_survey(MINIMAL.replace("Recommend?", "Would you recommend us?"))
    assert re.fullmatch(r"[0-9a-f]{64}", base.checksum)
    assert reformatted.checksum == base.checksum
    assert changed.checksum != base.checksum


def test_single_locale_and_regional_locale_codes() -> None:
    text = MINIMAL.replace("locales: [id, en]", "locales: [id, en_US]").replace("en:", "en_US:")
    survey = load_survey(text)
    assert survey.locales == ("id", "en_US")


def test_byte_order_mark_is_accepted() -> None:
    assert load_survey("\ufeff" + MINIMAL).id == "minimal"


def test_yaml_tags_that_build_objects_are_refused() -> None:
    with pytest.raises(SurveyDefinitionError, match="not valid YAML"):
        load_survey("spec: !!python/object/apply:os.system ['true']")


def test_deeply_nested_yaml_is_a_problem_not_a_crash() -> None:
    with pytest.raises(SurveyDefinitionError, match="not valid YAML"):
        load_survey("a: " + "[" * 5000 + "]" * 5000)


def test_anchors_may_share_option_lists() -> None:
    text = (
        MINIMAL
        + """
  - id: first
    type: choice
    text: {id: "Satu?", en: "One?"}
    options: &yes_no_maybe
      - {id: yes_, text: {id: Ya, en: Yes}}
      - {id: maybe, text: {id: Mungkin, en: Maybe}}
  - id: second
    type: choice
    text: {id: "Dua?", en: "Two?"}
    options: *yes_no_maybe
"""
    )
    survey = load_survey(text)
    assert survey.question("second").option_ids == ("yes_", "maybe")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("en", "Hello"), ("en_GB", "Hello"), ("en-US", "Hello"), ("id", "Halo"), ("jv", "Halo")],
)
def test_localized_falls_back_to_base_language_then_default(locale: str, expected: str) -> None:
    assert localized({"id": "Halo", "en": "Hello"}, locale, "id") == expected


def test_question_can_be_built_directly_for_other_layers() -> None:
    question = Question(id="stars", type=QuestionType.RATING, text={"id": "Bintang?"}, scale=10)
    assert question.value_range == range(1, 11)
    assert Question(id="x", type=QuestionType.RATING, text={}).value_range == range(1, 6)


def test_only_true_and_false_are_booleans() -> None:
    text = MINIMAL.replace("{id: Halo, en: Hello}", "{id: Ya, en: Yes}")
    assert load_survey(text).intro == {"id": "Ya", "en": "Yes"}
    with pytest.raises(SurveyDefinitionError) as caught:
        load_survey(MINIMAL + "    optional: yes\n")
    assert [str(p) for p in caught.value.problems] == [
        "questions[0].optional: expected true or false, got 'yes'"
    ]
