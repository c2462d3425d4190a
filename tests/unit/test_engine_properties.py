"""Property tests: random events with random raw input, on the example surveys and on generated
ones. The engine must never fail in an unexpected way, store only valid values, keep its state
JSON-round-trippable, and always be able to finish within (questions + backs) moves.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flows import (
    REJECT_REASONS,
    Ask,
    Finish,
    FlowError,
    InvalidAnswer,
    NotAMultiQuestion,
    NotCurrentQuestion,
    NothingToGoBackTo,
    NotSkippable,
    Question,
    QuestionType,
    Reject,
    SessionFinished,
    State,
    Step,
    Survey,
    SurveyDefinitionError,
    answer,
    back,
    evaluate,
    is_normalised,
    load_survey,
    load_survey_file,
    normalise,
    resume,
    skip,
    start,
    toggle,
)
from flows.conditions import OPS_BY_TYPE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [load_survey_file(path) for path in sorted((ROOT / "surveys").glob("*.yaml"))]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Generated survey definitions.

SCALED = {"rating", "nps", "ces"}


def _scaled_bounds(question: dict[str, Any]) -> tuple[int, int]:
    return {"nps": (0, 10), "ces": (1, 7)}.get(question["type"], (1, question.get("scale", 5)))


def _number_bounds(question: dict[str, Any]) -> tuple[int, int]:
    return question.get("min", -30), question.get("max", 130)


def _values(question: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a condition may compare this question's answer with."""
    qtype = question["type"]
    if qtype in SCALED:
        return st.integers(*_scaled_bounds(question))
    if qtype == "number":
        low, high = _number_bounds(question)
        whole = st.integers(low, high)
        if question.get("integer", True):
            return whole
        return st.one_of(whole, st.integers(low, high - 1).map(lambda v: v + 0.5))
    if qtype == "yesno":
        return st.booleans()
    return st.sampled_from([option["id"] for option in question["options"]])


@st.composite
def _comparison(draw: st.DrawFn, question: dict[str, Any]) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(OPS_BY_TYPE[question["type"]])))
    if op == "answered":
        value: Any = draw(st.booleans())
    elif op in ("in", "not_in"):
        value = draw(st.lists(_values(question), min_size=1, max_size=3))
    else:
        value = draw(_values(question))
    return {question["id"]: {op: value}}


def _conditions(earlier: list[dict[str, Any]], depth: int = 2) -> st.SearchStrategy[Any]:
    leaf = st.sampled_from(earlier).flatmap(_comparison)
    if depth == 0:
        return leaf
    inner = _conditions(earlier, depth - 1)
    return st.one_of(
        leaf,
        leaf,
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"any": items}),
        inner.map(lambda item: {"not": item}),
    )


@st.composite
def survey_definitions(draw: st.DrawFn) -> dict[str, Any]:
    questions: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 7))):
        qtype = draw(st.sampled_from([t.value for t in QuestionType]))
        question: dict[str, Any] = {
            "id": f"q{i}",
            "type": qtype,
            "text": {"id": f"Pertanyaan {i}", "en": f"Question {i}"},
        }
        if draw(st.booleans()):
            question["optional"] = True
        if qtype == "rating":
            question["scale"] = draw(st.integers(2, 10))
        elif qtype in ("choice", "multi"):
            count = draw(st.integers(2, 5))
            question["options"] = [
                {"id": f"o{k}", "text": {"id": f"Opsi {k}", "en": f"Option {k}"}}
                for k in range(count)
            ]
            if qtype == "multi":
                low = draw(st.integers(1, count))
                question["min"], question["max"] = low, draw(st.integers(low, count))
        elif qtype == "text":
            question["max_length"] = draw(st.integers(1, 30))
        elif qtype == "number":
            question["integer"] = draw(st.booleans())
            low = draw(st.sampled_from([None, -5, 0]))
            high = draw(st.sampled_from([None, 10, 100]))
            question.update({k: v for k, v in (("min", low), ("max", high)) if v is not None})
        if questions and draw(st.integers(0, 2)):
            question["when"] = draw(_conditions(questions))
        questions.append(question)
    return {
        "spec": 1,
        "id": "generated",
        "default_locale": "id",
        "locales": ["id", "en"],
        "title": {"id": "Survei", "en": "Survey"},
        "intro": {"id": "Halo", "en": "Hello"},
        "outro": {"id": "Terima kasih", "en": "Thank you"},
        "questions": questions,
    }


def _load(definition: dict[str, Any]) -> Survey:
    return load_survey(yaml.safe_dump(definition, allow_unicode=True), source="generated")


SURVEYS = st.one_of(st.sampled_from(EXAMPLES), survey_definitions().map(_load))

# Raw input as the chat may deliver it, valid or not.

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-20, 200),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1.234", "12,5", "ya", "tidak", " 7 ", "", "o0", "o1, o2", "10.000", "+3"]),
    st.sampled_from(["speed", "parking", "mobile_app", "waiting", "Antrean terlalu lama", "-0"]),
    st.lists(st.sampled_from(["o0", "o1", "o2", "o3", "speed", "parking", "x"]), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def valid_raw(question: Question) -> st.SearchStrategy[Any]:
    """Raw input the question must accept."""
    qtype = question.type
    if question.value_range is not None:
        numbers = st.sampled_from(list(question.value_range))
        return st.one_of(numbers, numbers.map(str), numbers.map(lambda v: f" {v} "))
    if qtype == QuestionType.CHOICE:
        return st.sampled_from(list(question.option_ids))
    if qtype == QuestionType.MULTI:
        low, high = int(question.min or 1), int(question.max or len(question.options))
        return st.lists(
            st.sampled_from(list(question.option_ids)), min_size=low, max_size=high, unique=True
        )
    if qtype == QuestionType.YESNO:
        return st.sampled_from([True, False, "ya", "tidak", "Yes", "n", 1, 0])
    if qtype == QuestionType.TEXT:
        letters = st.text(alphabet="abcde fghij", min_size=1, max_size=question.max_length or 20)
        return letters.filter(lambda text: text.strip())
    low = -1000 if question.min is None else math.ceil(question.min)
    high = 1000 if question.max is None else math.floor(question.max)
    return st.one_of(st.integers(low, high), st.integers(low, high).map(str))


# Invariants.


def is_valid_value(question: Question, value: Any) -> bool:
    """An answer as the database may hold it, checked without the engine's own code."""
    if value is None:
        return question.optional
    qtype = question.type
    if question.value_range is not None:
        return type(value) is int and value in question.value_range
    if qtype == QuestionType.CHOICE:
        return type(value) is str and value in question.option_ids
    if qtype == QuestionType.MULTI:
        ids = list(question.option_ids)
        in_order = [oid for oid in ids if oid in value] == value
        return type(value) is list and in_order and question.min <= len(value) <= question.max
    if qtype == QuestionType.YESNO:
        return type(value) is bool
    if qtype == QuestionType.TEXT:
        return type(value) is str and value == value.strip() and 0 < len(value) <= 4000
    expected = int if question.integer else float
    low = -math.inf if question.min is None else question.min
    high = math.inf if question.max is None else question.max
    return type(value) is expected and low <= value <= high


def expected_path(survey: Survey, answers: dict[str, Any], length: int) -> list[str]:
    """The first `length` questions the survey asks, given these answers."""
    path: list[str] = []
    for question in survey.questions:
        if len(path) == length:
            break
        on_path = {qid: answers.get(qid) for qid in path}
        if question.when is None or evaluate(question.when, on_path):
            path.append(question.id)
    return path


def check_invariants(survey: Survey, step: Step) -> None:
    state = step.state
    stored = json.loads(json.dumps(state.to_dict()))
    assert State.from_dict(stored) == state
    for qid, value in state.answers.items():
        question = survey.question(qid)
        assert is_valid_value(question, value), (qid, value)
        assert is_normalised(question, value)
    path = [*state.history, *([state.current] if state.current else [])]
    assert path == expected_path(survey, dict(state.answers), len(path))
    assert len(step.effects) == 1
    effect = step.effects[0]
    if isinstance(effect, Ask):
        assert effect.question.id == state.current and not state.finished
        assert effect.position == len(state.history) + 1
        assert effect.position <= effect.total <= len(survey.questions)
        assert effect.draft == state.draft
    elif isinstance(effect, Finish):
        assert state.finished and state.current is None and state.draft == ()
        assert dict(effect.answers) == dict(state.answers)
        assert set(effect.answers) == set(state.history)
        # Nothing further applies after the last question on the path.
        assert path == expected_path(survey, dict(state.answers), len(survey.questions))
    else:
        assert isinstance(effect, Reject)
        assert effect.reason in REJECT_REASONS


def expected_error(survey: Survey, state: State, kind: str, target: str) -> type | None:
    if state.finished:
        return SessionFinished
    if kind == "resume":
        return None
    if target != state.current:
        return NotCurrentQuestion
    question = survey.question(target)
    if kind == "skip" and not question.optional:
        return NotSkippable
    if kind == "back" and not state.history:
        return NothingToGoBackTo
    if kind == "toggle" and question.type != QuestionType.MULTI:
        return NotAMultiQuestion
    return None


def apply(survey: Survey, state: State, kind: str, target: str, raw: Any) -> Step:
    if kind == "answer":
        return answer(survey, state, target, raw)
    if kind == "done":
        return answer(survey, state, target, state.draft)
    if kind == "toggle":
        return toggle(survey, state, target, raw)
    if kind == "resume":
        return resume(survey, state)
    return {"skip": skip, "back": back}[kind](survey, state, target)


KINDS = st.sampled_from(["answer", "answer", "answer", "skip", "back", "toggle", "done", "resume"])


@PROPERTY
@given(data=st.data())
def test_random_events_keep_every_invariant_and_can_always_finish(data: st.DataObject) -> None:
    survey = data.draw(SURVEYS, label="survey")
    step = start(survey)
    check_invariants(survey, step)
    moves = backs = 0
    for _ in range(data.draw(st.integers(0, 30), label="events")):
        state = State.from_dict(json.loads(json.dumps(step.state.to_dict())))
        kind = data.draw(KINDS, label="kind")
        ids = [q.id for q in survey.questions]
        target = data.draw(
            st.one_of(*[st.just(state.current or "q0")] * 3, st.sampled_from([*ids, "nope"])),
            label="target",
        )
        current = survey.question(state.current) if state.current else None
        good = valid_raw(current) if current else JUNK
        options = (
            st.sampled_from([*current.option_ids, "nope"]) if current and current.options else JUNK
        )
        raw = data.draw(options if kind == "toggle" else st.one_of(good, JUNK), label="raw")
        wanted = expected_error(survey, state, kind, target)
        try:
            result = apply(survey, state, kind, target, raw)
        except FlowError as error:
            assert wanted is not None and isinstance(error, wanted), (kind, target, error)
            event(f"{kind}: {type(error).__name__}")
            continue
        assert wanted is None, (kind, target, wanted)
        check_invariants(survey, result)
        event(f"{kind}: {type(result.effects[0]).__name__}")
        moved = result.state.history != state.history or result.state.finished
        if moved and kind == "back":
            backs += 1
        elif moved:
            moves += 1
        if isinstance(result.effects[0], Reject):
            assert result.state == state
        step = result

    # Whatever happened, valid answers now finish within the number of questions.
    for _ in range(len(survey.questions)):
        if step.state.finished:
            break
        question = survey.question(step.state.current)  # type: ignore[arg-type]
        if question.optional and data.draw(st.booleans(), label="skip"):
            step = skip(survey, step.state, question.id)
        else:
            raw = data.draw(valid_raw(question), label="valid")
            step = answer(survey, step.state, question.id, raw)
            assert not isinstance(step.effects[0], Reject), (question, raw, step.effects)
        moves += 1
        check_invariants(survey, step)
    assert step.state.finished
    assert moves <= len(survey.questions) + backs


@PROPERTY
@given(data=st.data())
def test_progress_only_shrinks_and_never_undercounts(data: st.DataObject) -> None:
    survey = data.draw(SURVEYS, label="survey")
    step = start(survey)
    totals: list[int] = []
    while not step.state.finished:
        ask = step.effects[0]
        assert isinstance(ask, Ask)
        assert ask.position == len(totals) + 1
        totals.append(ask.total)
        raw = data.draw(valid_raw(ask.question), label=ask.question.id)
        step = answer(survey, step.state, ask.question.id, raw)
    asked = len(step.state.history)
    assert totals == sorted(totals, reverse=True)
    assert all(total >= asked for total in totals)
    assert len(totals) == asked


@PROPERTY
@given(definition=survey_definitions())
def test_generated_definitions_load_and_checksum_is_stable(definition: dict[str, Any]) -> None:
    survey = _load(definition)
    again = load_survey(json.dumps(definition), source="as json")
    assert again.checksum == survey.checksum
    assert [q.id for q in survey.questions] == [q["id"] for q in definition["questions"]]


def _questions() -> st.SearchStrategy[Question]:
    return SURVEYS.flatmap(lambda survey: st.sampled_from(survey.questions))


@PROPERTY
@given(question=_questions(), raw=JUNK)
def test_normalise_returns_a_valid_value_or_a_known_reason(question: Question, raw: Any) -> None:
    try:
        value = normalise(question, raw)
    except InvalidAnswer as error:
        assert error.reason in REJECT_REASONS
        return
    assert is_valid_value(question, value)
    assert json.loads(json.dumps(value)) == value
    assert normalise(question, value) == value


def _mutate(definition: Any, data: st.DataObject) -> Any:
    """Replace one value somewhere in the definition with junk, or drop a key."""
    if isinstance(definition, dict) and definition and data.draw(st.integers(0, 3)):
        key = data.draw(st.sampled_from(sorted(definition, key=str)))
        if data.draw(st.integers(0, 4)) == 0:
            return {k: v for k, v in definition.items() if k != key}
        return {**definition, key: _mutate(definition[key], data)}
    if isinstance(definition, list) and definition and data.draw(st.integers(0, 3)):
        index = data.draw(st.integers(0, len(definition) - 1))
        return [*definition[:index], _mutate(definition[index], data), *definition[index + 1 :]]
    return data.draw(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=6), inner, max_size=3)
            ),
            max_leaves=6,
        )
    )


@PROPERTY
@given(definition=survey_definitions(), data=st.data())
def test_broken_definitions_become_problems_never_tracebacks(
    definition: dict[str, Any], data: st.DataObject
) -> None:
    text = yaml.safe_dump(_mutate(definition, data), allow_unicode=True)
    try:
        load_survey(text)
    except SurveyDefinitionError as error:
        assert error.problems
        assert all(problem.message for problem in error.problems)
        assert str(error).startswith("The survey definition in <string> is invalid")


@PROPERTY
@given(text=st.text(max_size=200))
def test_arbitrary_text_becomes_problems_never_tracebacks(text: str) -> None:
    try:
        load_survey(text)
    except SurveyDefinitionError as error:
        assert error.problems
