"""The flow engine, driven by table-driven cases in tests/fixtures/flows/*.yaml.

A case names a survey (a file under the repository root, or an inline mapping) and a list of
steps. Each step has one action and what to expect after it:

    start:                                        answer: {question: nps, raw: "9"}
    done: improve      (answer with the draft)    skip: comment
    back: nps                                     toggle: {question: improve, option: speed}
    resume:                                       set_state: {...}  (what the database holds)

    expect: {ask: nps, position: 2, total: 6, draft: [...]}    position, total, draft optional
    expect: {reject: nps, reason: out_of_range, params: {min: 0, max: 10}}
    expect: {finish: {csat: 4, ...}}
    expect: {error: NotCurrentQuestion}
    answers: {...}     optional: the stored answers after the step

The runner keeps the state only as JSON text, as the database does, so every step starts from
`State.from_dict(json.loads(...))`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import flows
from flows import (
    REJECT_REASONS,
    Ask,
    Finish,
    FlowError,
    InvalidAnswer,
    InvalidState,
    Question,
    QuestionType,
    Reject,
    State,
    Step,
    Survey,
    answer,
    back,
    is_normalised,
    load_survey,
    load_survey_file,
    normalise,
    resume,
    skip,
    start,
    toggle,
)

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((ROOT / "tests" / "fixtures" / "flows").glob("*.yaml"))
ACTIONS = ("start", "answer", "done", "skip", "back", "toggle", "resume", "set_state")
FLOW_ERRORS = tuple(cls.__name__ for cls in FlowError.__subclasses__())


def _survey(spec: Any) -> Survey:
    if isinstance(spec, str):
        return load_survey_file(ROOT / spec)
    return load_survey(yaml.safe_dump(spec, allow_unicode=True), source="inline survey")


def _apply(survey: Survey, stored: str | None, action: str, arg: Any) -> Step:
    if action == "start":
        return start(survey)
    assert stored is not None, "start the flow before other actions"
    state = State.from_dict(json.loads(stored))
    if action == "answer":
        return answer(survey, state, arg["question"], arg["raw"])
    if action == "done":
        return answer(survey, state, arg, state.draft)
    if action == "toggle":
        return toggle(survey, state, arg["question"], arg["option"])
    if action == "resume":
        return resume(survey, state)
    return {"skip": skip, "back": back}[action](survey, state, arg)


def _check_effect(step: Step, expect: dict[str, Any], where: str) -> None:
    assert len(step.effects) == 1, where
    effect = step.effects[0]
    if "ask" in expect:
        assert isinstance(effect, Ask), f"{where}: expected Ask, got {effect}"
        assert effect.question.id == expect["ask"] == step.state.current, where
        for key in ("position", "total"):
            if key in expect:
                assert getattr(effect, key) == expect[key], f"{where}: {key}"
        if "draft" in expect:
            assert list(effect.draft) == expect["draft"], f"{where}: draft"
    elif "reject" in expect:
        assert isinstance(effect, Reject), f"{where}: expected Reject, got {effect}"
        assert effect.question.id == expect["reject"], where
        assert effect.reason == expect["reason"], where
        assert dict(effect.params) == expect.get("params", {}), f"{where}: params"
    else:
        assert isinstance(effect, Finish), f"{where}: expected Finish, got {effect}"
        assert dict(effect.answers) == expect["finish"], where
        assert step.state.finished and step.state.current is None, where


def _action(step: dict[str, Any]) -> str:
    (action,) = [key for key in step if key in ACTIONS]
    return action


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_flow_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    survey = _survey(case["survey"])
    stored: str | None = None
    for number, step in enumerate(case["steps"], 1):
        action = _action(step)
        where = f"{path.name} step {number} ({action})"
        if action == "set_state":
            stored = json.dumps(step["set_state"])
            continue
        expect = step["expect"]
        try:
            result = _apply(survey, stored, action, step[action])
        except FlowError as error:
            assert expect == {"error": type(error).__name__}, f"{where}: raised {error!r}"
            continue
        assert "error" not in expect, f"{where}: expected {expect['error']}"
        _check_effect(result, expect, where)
        if isinstance(result.effects[0], Reject):
            assert json.dumps(result.state.to_dict()) == stored, f"{where}: state moved"
        if "answers" in step:
            assert dict(result.state.answers) == step["answers"], f"{where}: answers"
        stored = json.dumps(result.state.to_dict())


def _used(key: str) -> set[Any]:
    found: set[Any] = set()
    for path in CASES:
        for step in yaml.safe_load(path.read_text(encoding="utf-8"))["steps"]:
            if key == "action":
                found.add(_action(step))
            elif key in step.get("expect", {}):
                found.add(step["expect"][key])
    return found


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_has_a_flow_case(action: str) -> None:
    assert action in _used("action")


@pytest.mark.parametrize("reason", REJECT_REASONS)
def test_every_reject_reason_has_a_flow_case(reason: str) -> None:
    assert reason in _used("reason")


@pytest.mark.parametrize("error", FLOW_ERRORS)
def test_every_flow_error_has_a_flow_case(error: str) -> None:
    assert error in _used("error")


# normalise, one table per question type.

RATING = Question(id="csat", type=QuestionType.RATING, text={"id": "Puas?"}, scale=5)
NPS = Question(id="nps", type=QuestionType.NPS, text={"id": "Rekomendasi?"})
CES = Question(id="ces", type=QuestionType.CES, text={"id": "Mudah?"})
OPTIONS = (
    flows.Option("queue", {"id": "Antrean", "en": "Queue"}),
    flows.Option("staff", {"id": "Petugas", "en": "Staff"}),
    flows.Option("other", {"id": "Lainnya", "en": "Other"}),
)
CHOICE = Question(id="reason", type=QuestionType.CHOICE, text={"id": "Alasan?"}, options=OPTIONS)
MULTI = Question(
    id="improve", type=QuestionType.MULTI, text={"id": "?"}, options=OPTIONS, min=1, max=2
)
YESNO = Question(id="resolved", type=QuestionType.YESNO, text={"id": "Selesai?"})
TEXT = Question(id="comment", type=QuestionType.TEXT, text={"id": "?"}, max_length=12)
COUNT = Question(id="visits", type=QuestionType.NUMBER, text={"id": "?"}, min=0, max=100)
AMOUNT = Question(id="wait", type=QuestionType.NUMBER, text={"id": "?"}, integer=False)

ACCEPTED = [
    (RATING, "4", 4),
    (RATING, " 5 ", 5),
    (RATING, 1, 1),
    (RATING, "+3", 3),
    (RATING, "4.0", 4),
    (RATING, 2.0, 2),
    (NPS, "0", 0),
    (NPS, 10, 10),
    (CES, "7", 7),
    (CHOICE, "staff", "staff"),
    (CHOICE, " queue ", "queue"),
    (CHOICE, "Petugas", "staff"),
    (CHOICE, "OTHER", "other"),
    (MULTI, ["staff", "queue"], ["queue", "staff"]),
    (MULTI, ("other",), ["other"]),
    (MULTI, ["queue", "queue"], ["queue"]),
    (MULTI, "other, queue", ["queue", "other"]),
    (YESNO, True, True),
    (YESNO, False, False),
    (YESNO, "yes", True),
    (YESNO, "No", False),
    (YESNO, "ya", True),
    (YESNO, "Tidak", False),
    (YESNO, "y", True),
    (YESNO, "n", False),
    (YESNO, "1", True),
    (YESNO, "0", False),
    (YESNO, 1, True),
    (YESNO, 0, False),
    (TEXT, "  Bagus sekali ", "Bagus sekali"),
    (TEXT, "a\x00b", "ab"),
    (TEXT, 42, "42"),
    (COUNT, "12", 12),
    (COUNT, " 0 ", 0),
    (COUNT, 100, 100),
    (COUNT, "12.0", 12),
    (AMOUNT, "12,5", 12.5),
    (AMOUNT, "12.5", 12.5),
    (AMOUNT, "0.125", 0.125),
    (AMOUNT, "-3", -3.0),
    (AMOUNT, 7, 7.0),
]

REJECTED = [
    (RATING, "", "empty", {}),
    (RATING, None, "empty", {}),
    (RATING, "empat", "not_a_number", {}),
    (RATING, True, "not_a_number", {}),
    (RATING, "4.5", "not_an_integer", {}),
    (RATING, "1_0", "not_a_number", {}),
    (RATING, "٣", "not_a_number", {}),
    (RATING, 0, "out_of_range", {"min": 1, "max": 5}),
    (RATING, "6", "out_of_range", {"min": 1, "max": 5}),
    (NPS, 11, "out_of_range", {"min": 0, "max": 10}),
    (NPS, float("nan"), "not_a_number", {}),
    (CES, "8", "out_of_range", {"min": 1, "max": 7}),
    (CHOICE, "price", "unknown_option", {}),
    (CHOICE, 1, "unknown_option", {}),
    (CHOICE, " ", "empty", {}),
    (MULTI, [], "too_few", {"min": 1}),
    (MULTI, "", "too_few", {"min": 1}),
    (MULTI, ["queue", "staff", "other"], "too_many", {"max": 2}),
    (MULTI, ["queue", 3], "unknown_option", {}),
    (MULTI, {"queue": True}, "unknown_option", {}),
    (YESNO, "mungkin", "not_yes_no", {}),
    (YESNO, 2, "not_yes_no", {}),
    (YESNO, "", "empty", {}),
    (TEXT, "   ", "empty", {}),
    (TEXT, None, "empty", {}),
    (TEXT, "Sangat bagus sekali", "too_long", {"max_length": 12}),
    (COUNT, "1.234", "thousands_separator", {}),
    (COUNT, "1,234", "thousands_separator", {}),
    (COUNT, "1.234.567", "thousands_separator", {}),
    (COUNT, "1.234,5", "thousands_separator", {}),
    (COUNT, "12.5", "not_an_integer", {}),
    (COUNT, "12 kali", "not_a_number", {}),
    (COUNT, "1e3", "not_a_number", {}),
    (COUNT, "-1", "out_of_range", {"min": 0, "max": 100}),
    (COUNT, "9" * 40, "not_a_number", {}),
    (AMOUNT, "9" * 20, "too_large", {"max": 10**15}),
    (AMOUNT, -(10**16), "too_small", {"min": -(10**15)}),
    (AMOUNT, float("inf"), "not_a_number", {}),
]


@pytest.mark.parametrize(("question", "raw", "value"), ACCEPTED)
def test_normalise_accepts(question: Question, raw: Any, value: Any) -> None:
    result = normalise(question, raw)
    assert result == value and type(result) is type(value)
    assert is_normalised(question, result)
    assert normalise(question, result) == result


@pytest.mark.parametrize(("question", "raw", "reason", "params"), REJECTED)
def test_normalise_rejects(question: Question, raw: Any, reason: str, params: dict) -> None:
    with pytest.raises(InvalidAnswer) as caught:
        normalise(question, raw)
    assert caught.value.reason == reason
    assert dict(caught.value.params) == params
    assert reason in REJECT_REASONS


def test_is_normalised_is_strict_about_types() -> None:
    assert not is_normalised(YESNO, 1)
    assert not is_normalised(AMOUNT, 12)
    assert is_normalised(AMOUNT, 12.0)
    assert not is_normalised(MULTI, ["staff", "queue"])
    assert not is_normalised(RATING, None)
    assert is_normalised(Question(id="x", type=QuestionType.NPS, text={}, optional=True), None)


# State and steps.

BRANCH = load_survey_file(ROOT / "surveys" / "branch_service.yaml")


def test_state_round_trips_through_json() -> None:
    step = answer(BRANCH, start(BRANCH).state, "csat", 4)
    step = answer(BRANCH, step.state, "nps", 3)
    data = json.loads(json.dumps(step.state.to_dict()))
    assert data == {
        "v": 1,
        "survey_id": "branch_service",
        "current": "main_reason",
        "answers": {"csat": 4, "nps": 3},
        "history": ["csat", "nps"],
        "draft": [],
        "finished": False,
    }
    assert State.from_dict(data) == step.state


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"v": 2},
        {
            "v": 1,
            "survey_id": "x",
            "current": None,
            "answers": [],
            "history": [],
            "draft": [],
            "finished": True,
        },
        {
            "v": 1,
            "survey_id": "x",
            "current": 3,
            "answers": {},
            "history": [],
            "draft": [],
            "finished": False,
        },
        {
            "v": 1,
            "survey_id": "x",
            "current": "a",
            "answers": {},
            "history": [1],
            "draft": [],
            "finished": False,
        },
        {
            "v": 1,
            "survey_id": "x",
            "current": "a",
            "answers": {},
            "history": [],
            "draft": [],
            "finished": "no",
        },
        {
            "v": 1,
            "survey_id": "x",
            "current": "a",
            "answers": {},
            "history": [],
            "draft": [],
            "finished": False,
            "extra": 1,
        },
    ],
)
def test_malformed_stored_states_are_refused(data: Any) -> None:
    with pytest.raises(InvalidState):
        State.from_dict(data)


def test_start_asks_the_first_question() -> None:
    step = start(BRANCH)
    assert step.state == State("branch_service", "csat", {}, (), (), False)
    assert step.effects == (Ask(BRANCH.question("csat"), 1, 6, ()),)


def test_reject_leaves_the_very_same_state() -> None:
    state = start(BRANCH).state
    step = answer(BRANCH, state, "csat", "sangat puas")
    assert step.state is state
    assert step.effects == (Reject(BRANCH.question("csat"), "not_a_number", {}),)


def test_finish_carries_only_the_final_path() -> None:
    state = start(BRANCH).state
    for qid, raw in [("csat", 1), ("nps", 0), ("main_reason", "staff")]:
        state = answer(BRANCH, state, qid, raw).state
    state = back(BRANCH, state, "resolved").state
    state = back(BRANCH, state, "main_reason").state
    state = answer(BRANCH, state, "nps", 10).state
    assert state.answers["main_reason"] == "staff"
    for qid, raw in [("resolved", "ya"), ("improve", ["parking"]), ("comment", "Ok")]:
        step = answer(BRANCH, state, qid, raw)
        state = step.state
    assert step.effects == (
        Finish({"csat": 1, "nps": 10, "resolved": True, "improve": ["parking"], "comment": "Ok"}),
    )
    assert state.answers == step.effects[0].answers
    assert state.history == ("csat", "nps", "resolved", "improve", "comment")


def test_a_state_from_another_survey_is_refused() -> None:
    digital = load_survey_file(ROOT / "surveys" / "digital_banking.yaml")
    with pytest.raises(InvalidState):
        resume(digital, start(BRANCH).state)


def test_reject_reasons_are_unique_stable_codes() -> None:
    assert len(set(REJECT_REASONS)) == len(REJECT_REASONS)
    assert all(reason.isidentifier() and reason.islower() for reason in REJECT_REASONS)


def test_every_question_type_has_a_normaliser() -> None:
    for qtype in QuestionType:
        question = Question(id="q", type=qtype, text={}, options=OPTIONS, max_length=5)
        with pytest.raises(InvalidAnswer):
            normalise(question, None if qtype != QuestionType.MULTI else [1])


def test_flows_imports_no_chat_storage_or_bot_code() -> None:
    code = (
        "import sys, flows; "
        "bad = {'telegram', 'sqlalchemy', 'aiohttp', 'bot', 'storage', 'handlers'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
