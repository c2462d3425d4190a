"""The survey flow engine: a pure state machine from (survey, state, event) to a new Step."""

# How it works
# ------------
# A session's whole memory is a State: which question is being asked (`current`), the ids asked
# before it (`history`, the path so far), every answer given (`answers`, a skip stored as None),
# the options toggled so far on a multi question (`draft`), and whether it has finished. A State
# is plain data; `to_dict()` gives JSON for the database and `from_dict()` reads it back, so any
# process can continue a session days later.
#
# Each event is a function: start, answer, skip, back, toggle, resume. It takes the survey and
# the stored state and returns a Step: the next state plus effects for the chat layer to render
# (Ask a question, Reject an answer with a stable reason code, Finish with the final answers).
# Nothing here does I/O, reads a clock or keeps anything between calls.
#
# The next question is the first one after the current that has no `when` or whose `when` holds
# over the answers on the path. Only the path counts: after `back`, answers to questions that
# fall off the path stay in `answers` (a re-asked question can show its old answer) but are
# ignored by conditions and left out of Finish, which carries exactly the path's answers.
#
# An invalid answer is a Reject and the state does not move. An event the state does not allow
# (a stale button press, skipping a required question, anything after the finish) raises a
# FlowError and the caller keeps its old state.

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

from flows.conditions import could_hold, evaluate
from flows.errors import (
    InvalidAnswer,
    InvalidState,
    NotAMultiQuestion,
    NotCurrentQuestion,
    NothingToGoBackTo,
    NotSkippable,
    SessionFinished,
)
from flows.schema import MAX_TEXT_LENGTH, Question, QuestionType, Survey

STATE_FORMAT = 1

REJECT_REASONS = (
    "empty",  # nothing usable arrived
    "not_a_number",
    "not_an_integer",
    "thousands_separator",  # 1.234 or 1,234: a thousands separator or a decimal? Refused.
    "too_small",  # params: min
    "too_large",  # params: max
    "out_of_range",  # params: min, max
    "unknown_option",
    "too_few",  # params: min (selections)
    "too_many",  # params: max (selections)
    "too_long",  # params: max_length
    "not_yes_no",
)

YES = frozenset({"yes", "y", "ya", "iya", "true", "1"})
NO = frozenset({"no", "n", "tidak", "tdk", "nggak", "gak", "enggak", "false", "0"})

# Beyond this a number is not a survey answer, and floats stop being exact.
MAX_MAGNITUDE = 10**15


@dataclass(frozen=True)
class State:
    """Where a session stands; stored as JSON between events."""

    survey_id: str
    current: str | None
    answers: Mapping[str, Any]
    history: tuple[str, ...] = ()
    draft: tuple[str, ...] = ()
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the database."""
        return {
            "v": STATE_FORMAT,
            "survey_id": self.survey_id,
            "current": self.current,
            "answers": {qid: _copy(value) for qid, value in self.answers.items()},
            "history": list(self.history),
            "draft": list(self.draft),
            "finished": self.finished,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> State:
        """Read a stored state back; InvalidState when it is not one."""
        if not isinstance(data, Mapping) or data.get("v") != STATE_FORMAT:
            raise InvalidState(f"not a stored state of format {STATE_FORMAT}")
        expected = {"v", "survey_id", "current", "answers", "history", "draft", "finished"}
        if set(data) != expected:
            raise InvalidState(f"a stored state has exactly the keys {sorted(expected)}")
        answers, history, draft = data["answers"], data["history"], data["draft"]
        if not (
            isinstance(data["survey_id"], str)
            and (data["current"] is None or isinstance(data["current"], str))
            and isinstance(answers, Mapping)
            and all(isinstance(qid, str) for qid in answers)
            and _is_str_list(history)
            and _is_str_list(draft)
            and isinstance(data["finished"], bool)
        ):
            raise InvalidState("a stored state has a field of the wrong type")
        return cls(
            survey_id=data["survey_id"],
            current=data["current"],
            answers={qid: _copy(value) for qid, value in answers.items()},
            history=tuple(history),
            draft=tuple(draft),
            finished=data["finished"],
        )


@dataclass(frozen=True)
class Ask:
    """Ask `question`; it is number `position` of about `total` (conditions may shorten it)."""

    question: Question
    position: int
    total: int
    draft: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reject:
    """The answer did not fit; `reason` is one of REJECT_REASONS, `params` fill its message."""

    question: Question
    reason: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Finish:
    """The survey is complete; `answers` holds the final path's answers, skips as None."""

    answers: Mapping[str, Any]


Effect: TypeAlias = Ask | Reject | Finish


@dataclass(frozen=True)
class Step:
    """The state to store and the effects to render, in order."""

    state: State
    effects: tuple[Effect, ...]


def start(survey: Survey) -> Step:
    """Open a session at the first question whose condition holds."""
    first = _next_question(survey, {}, -1)
    if first is None:
        return _finish(State(survey.id, None, {}), (), {})
    state = State(survey.id, first.id, {}, draft=_draft_for(first, {}))
    return _ask(survey, state)


def resume(survey: Survey, state: State) -> Step:
    """Ask the current question again, e.g. after a restart or a customer's return."""
    _check(survey, state)
    if state.finished:
        raise SessionFinished("the session has finished; there is nothing to resume")
    return _ask(survey, state)


def answer(survey: Survey, state: State, question_id: str, raw: Any) -> Step:
    """Record an answer to the current question and move on, or Reject it and stay."""
    question = _current(survey, state, question_id)
    try:
        value = normalise(question, raw)
    except InvalidAnswer as error:
        return Step(state, (Reject(question, error.reason, dict(error.params)),))
    return _advance(survey, state, {**state.answers, question.id: value})


def skip(survey: Survey, state: State, question_id: str) -> Step:
    """Skip the current question, which must be optional; the skip is stored as None."""
    question = _current(survey, state, question_id)
    if not question.optional:
        raise NotSkippable(f"question {question.id!r} is required")
    return _advance(survey, state, {**state.answers, question.id: None})


def back(survey: Survey, state: State, question_id: str) -> Step:
    """Return to the question asked before the current one; answers stay until re-answered."""
    _current(survey, state, question_id)
    if not state.history:
        raise NothingToGoBackTo("the current question is the first one asked")
    previous = survey.question(state.history[-1])
    moved = replace(
        state,
        current=previous.id,
        history=state.history[:-1],
        draft=_draft_for(previous, state.answers),
    )
    return _ask(survey, moved)


def toggle(survey: Survey, state: State, question_id: str, option_id: str) -> Step:
    """Flip one option of the current multi question in the draft and ask again."""
    question = _current(survey, state, question_id)
    if question.type != QuestionType.MULTI:
        raise NotAMultiQuestion(f"question {question.id!r} is a {question.type} question")
    if not isinstance(option_id, str) or option_id not in question.option_ids:
        return Step(state, (Reject(question, "unknown_option", {}),))
    chosen = set(state.draft) ^ {option_id}
    if len(chosen) > len(state.draft) and len(chosen) > _max_selections(question):
        return Step(state, (Reject(question, "too_many", {"max": _max_selections(question)}),))
    draft = tuple(oid for oid in question.option_ids if oid in chosen)
    return _ask(survey, replace(state, draft=draft))


def normalise(question: Question, raw: Any) -> Any:
    """Turn what the chat delivered into the stored value; InvalidAnswer when it does not fit.

    Stored values: rating/nps/ces int, number int (float when integer is false), choice the
    option id, multi the option ids in definition order, yesno bool, text stripped str.
    """
    return _NORMALISERS[question.type](question, raw)


def is_normalised(question: Question, value: Any) -> bool:
    """Whether `value` is exactly what the engine stores for this question (None: a skip)."""
    if value is None:
        return question.optional
    try:
        return _same(normalise(question, value), value)
    except InvalidAnswer:
        return False


# Moving through the survey.


def _current(survey: Survey, state: State, question_id: str) -> Question:
    """Check that an event may act on `question_id` now, and return that question."""
    _check(survey, state)
    if state.finished:
        raise SessionFinished("the session has finished")
    if question_id != state.current:
        raise NotCurrentQuestion(f"{question_id!r} is not the current question {state.current!r}")
    return survey.question(question_id)


def _advance(survey: Survey, state: State, answers: dict[str, Any]) -> Step:
    assert state.current is not None
    history = (*state.history, state.current)
    on_path = {qid: answers.get(qid) for qid in history}
    following = _next_question(survey, on_path, survey.index_of(state.current))
    if following is None:
        return _finish(state, history, on_path)
    moved = State(survey.id, following.id, answers, history, _draft_for(following, answers))
    return _ask(survey, moved)


def _finish(state: State, history: tuple[str, ...], answers: dict[str, Any]) -> Step:
    done = State(state.survey_id, None, answers, history, (), finished=True)
    return Step(done, (Finish(dict(answers)),))


def _next_question(survey: Survey, on_path: Mapping[str, Any], after: int) -> Question | None:
    for question in survey.questions[after + 1 :]:
        if question.when is None or evaluate(question.when, on_path):
            return question
    return None


def _ask(survey: Survey, state: State) -> Step:
    assert state.current is not None
    index = survey.index_of(state.current)
    known = {qid: state.answers.get(qid) for qid in state.history}
    unknown = {question.id for question in survey.questions[index:]}
    later = survey.questions[index + 1 :]
    possible = sum(1 for q in later if q.when is None or could_hold(q.when, known, unknown))
    position = len(state.history) + 1
    ask = Ask(survey.questions[index], position, position + possible, state.draft)
    return Step(state, (ask,))


def _draft_for(question: Question, answers: Mapping[str, Any]) -> tuple[str, ...]:
    """A multi question asked again starts from its earlier selection."""
    earlier = answers.get(question.id)
    if question.type == QuestionType.MULTI and isinstance(earlier, list):
        return tuple(earlier)
    return ()


def _max_selections(question: Question) -> int:
    return int(question.max) if question.max is not None else len(question.options)


def _check(survey: Survey, state: State) -> None:
    """Refuse a state that does not fit the survey, before it can do harm."""
    if state.survey_id != survey.id:
        raise InvalidState(f"the state belongs to survey {state.survey_id!r}, not {survey.id!r}")
    path = (*state.history, *(() if state.current is None else (state.current,)))
    if any(not survey.has_question(qid) for qid in (*path, *state.answers)):
        raise InvalidState(f"the state names questions that survey {survey.id!r} does not have")
    indexes = [survey.index_of(qid) for qid in path]
    if indexes != sorted(set(indexes)) or state.finished != (state.current is None):
        raise InvalidState("the state's path is not a sequence of questions in survey order")
    for qid, value in state.answers.items():
        if not is_normalised(survey.question(qid), value):
            raise InvalidState(f"the stored answer to {qid!r} is not a valid answer")
    options = survey.question(state.current).option_ids if state.current else ()
    if len(set(state.draft)) != len(state.draft) or not set(state.draft) <= set(options):
        raise InvalidState("the draft holds options the current question does not have")


# Normalising raw answers.


def _scaled(question: Question, raw: Any) -> int:
    values = question.value_range
    assert values is not None
    number = _parse_number(raw)
    if number != int(number):
        raise InvalidAnswer("not_an_integer")
    if number not in values:
        raise InvalidAnswer("out_of_range", {"min": values[0], "max": values[-1]})
    return int(number)


def _number(question: Question, raw: Any) -> int | float:
    number = _parse_number(raw)
    if question.integer and number != int(number):
        raise InvalidAnswer("not_an_integer")
    low, high = question.min, question.max
    if low is not None and high is not None and not low <= number <= high:
        raise InvalidAnswer("out_of_range", {"min": low, "max": high})
    if number < (-MAX_MAGNITUDE if low is None else low):
        raise InvalidAnswer("too_small", {"min": -MAX_MAGNITUDE if low is None else low})
    if number > (MAX_MAGNITUDE if high is None else high):
        raise InvalidAnswer("too_large", {"max": MAX_MAGNITUDE if high is None else high})
    return int(number) if question.integer else float(number)


_PLAIN_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?[0-9]+[.,][0-9]+")
_GROUPED = re.compile(r"[+-]?[1-9][0-9]{0,2}([.,][0-9]{3})+([.,][0-9]+)?")


def _parse_number(raw: Any) -> int | float:
    """Read a number as people type it: 12, -3, 12.5 or 12,5; never 1.234 (ambiguous)."""
    if isinstance(raw, bool):
        raise InvalidAnswer("not_a_number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise InvalidAnswer("not_a_number")
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidAnswer("empty")
    if not isinstance(raw, str) or len(raw.strip()) > 32:
        raise InvalidAnswer("not_a_number")
    text = raw.strip()
    if _PLAIN_INTEGER.fullmatch(text):
        return int(text)
    if _GROUPED.fullmatch(text):
        raise InvalidAnswer("thousands_separator")
    if _DECIMAL.fullmatch(text):
        return float(text.replace(",", "."))
    raise InvalidAnswer("not_a_number")


def _choice(question: Question, raw: Any) -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidAnswer("empty")
    found = _option_id(question, raw)
    if found is None:
        raise InvalidAnswer("unknown_option")
    return found


def _option_id(question: Question, raw: Any) -> str | None:
    """Match an option by id, or by its text in any locale when the customer typed it."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text in question.option_ids:
        return text
    folded = _fold(text)
    matches = {
        option.id
        for option in question.options
        if folded == option.id or any(folded == _fold(label) for label in option.text.values())
    }
    return matches.pop() if len(matches) == 1 else None


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def _multi(question: Question, raw: Any) -> list[str]:
    if isinstance(raw, str):
        items: Sequence[Any] = [part for part in raw.split(",") if part.strip()]
    elif isinstance(raw, list | tuple):
        items = raw
    elif raw is None:
        items = []
    else:
        raise InvalidAnswer("unknown_option")
    chosen = set()
    for item in items:
        found = _option_id(question, item)
        if found is None:
            raise InvalidAnswer("unknown_option")
        chosen.add(found)
    low = int(question.min) if question.min is not None else 1
    high = _max_selections(question)
    if len(chosen) < low:
        raise InvalidAnswer("too_few", {"min": low})
    if len(chosen) > high:
        raise InvalidAnswer("too_many", {"max": high})
    return [oid for oid in question.option_ids if oid in chosen]


def _yesno(question: Question, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidAnswer("empty")
    word = raw.strip().casefold() if isinstance(raw, str) else None
    if word in YES:
        return True
    if word in NO:
        return False
    raise InvalidAnswer("not_yes_no")


def _text(question: Question, raw: Any) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw.bit_length() > 4 * MAX_TEXT_LENGTH:
            raise InvalidAnswer("too_long", {"max_length": question.max_length})
        raw = str(raw)
    if not isinstance(raw, str):
        raise InvalidAnswer("empty")
    # PostgreSQL text cannot hold NUL, and no customer means to send one.
    text = raw.replace("\x00", "").strip()
    if not text:
        raise InvalidAnswer("empty")
    limit = question.max_length or len(text)
    if len(text) > limit:
        raise InvalidAnswer("too_long", {"max_length": limit})
    return text


_NORMALISERS = {
    QuestionType.RATING: _scaled,
    QuestionType.NPS: _scaled,
    QuestionType.CES: _scaled,
    QuestionType.NUMBER: _number,
    QuestionType.CHOICE: _choice,
    QuestionType.MULTI: _multi,
    QuestionType.YESNO: _yesno,
    QuestionType.TEXT: _text,
}


def _same(a: Any, b: Any) -> bool:
    """Equality that tells 1 from True and 1 from 1.0, as JSON does."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
