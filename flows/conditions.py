"""Conditions that decide whether a question is asked: plain data over earlier answers.

The YAML shapes, parsed into a small tree of frozen dataclasses (never `eval`):

    {nps: {lte: 6}}                     Compare("nps", "lte", 6)
    {nps: {gte: 1, lte: 6}, vip: {...}}  several keys or operators in one mapping: all must hold
    {all: [cond, ...]}                  AllOf
    {any: [cond, ...]}                  AnyOf
    {not: cond}                         Not

An unanswered or skipped question makes every comparison false, except `answered: false`,
so `{not: {nps: {eq: 10}}}` holds for a customer who skipped the NPS question.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from flows.errors import N_, Problem, described, shown

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "answered")
COMBINATORS = ("all", "any", "not")
MAX_PARTS = 100

_SCALAR_OPS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "answered"})
OPS_BY_TYPE: Mapping[str, frozenset[str]] = {
    "rating": _SCALAR_OPS,
    "nps": _SCALAR_OPS,
    "ces": _SCALAR_OPS,
    "number": _SCALAR_OPS,
    "choice": frozenset({"eq", "ne", "in", "not_in", "answered"}),
    "multi": frozenset({"contains", "answered"}),
    "yesno": frozenset({"eq", "ne", "answered"}),
    "text": frozenset({"answered"}),
}

MESSAGES: Mapping[str, str] = {
    "not_mapping": N_("a condition must be a mapping such as {{nps: {{lte: 6}}}}, got {got}"),
    "empty": N_("a condition must name at least one question or 'all', 'any', 'not'"),
    "needs_list": N_("'{name}' needs a non-empty list of conditions, got {got}"),
    "too_large": N_("the condition is too large; keep it under {limit} parts"),
    "unknown_question": N_("unknown question {qid}"),
    "self_reference": N_("a question cannot depend on its own answer"),
    "forward_reference": N_(
        "question {qid!r} comes later in the survey; a condition may only look at earlier questions"
    ),
    "ops_shape": N_(
        "expected a non-empty mapping of operator to value such as {{lte: 6}}, got {got}"
    ),
    "unknown_op": N_("unknown operator {op}; use one of {operators}"),
    "op_not_for_type": N_("operator {op!r} does not apply to {type} questions"),
    "needs_values": N_("operator {op!r} needs a non-empty list of values, got {got}"),
    "needs_bool": N_("expected true or false, got {value}"),
    "not_an_option": N_("{value} is not an option of question {qid!r}"),
    "impossible_value": N_("{value} can never be an answer to {qid!r}, which takes {takes}"),
}


def _problem(path: str, key: str, **params: Any) -> Problem:
    if key == "unknown_op":
        params["operators"] = ", ".join(OPERATORS)
    return Problem(path, MESSAGES[key].format(**params), key, params)


@dataclass(frozen=True)
class Compare:
    """One operator applied to one earlier question's answer."""

    question: str
    op: str
    value: Any


@dataclass(frozen=True)
class AllOf:
    """Holds when every part holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """Holds when at least one part holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """Holds when its part does not."""

    item: Condition


Condition: TypeAlias = Compare | AllOf | AnyOf | Not


def evaluate(condition: Condition, answers: Mapping[str, Any]) -> bool:
    """Decide a condition from answers on the path; a missing or None answer is unanswered."""
    return _decide(condition, answers, frozenset()) is True


def could_hold(condition: Condition, answers: Mapping[str, Any], unknown: Collection[str]) -> bool:
    """Tell whether a condition may still hold while the `unknown` questions are unanswered.

    Three-valued: a comparison on an unknown question is undecided, and undecided counts as
    possible. Progress totals use this so they never promise fewer questions than remain.
    """
    return _decide(condition, answers, unknown) is not False


def references(condition: Condition) -> frozenset[str]:
    """The question ids a condition looks at."""
    if isinstance(condition, Compare):
        return frozenset({condition.question})
    if isinstance(condition, Not):
        return references(condition.item)
    return frozenset().union(*(references(item) for item in condition.items))


def _decide(
    condition: Condition, answers: Mapping[str, Any], unknown: Collection[str]
) -> bool | None:
    if isinstance(condition, Compare):
        if condition.question in unknown:
            return None
        return _compare(condition, answers.get(condition.question))
    if isinstance(condition, Not):
        inner = _decide(condition.item, answers, unknown)
        return None if inner is None else not inner
    results = [_decide(item, answers, unknown) for item in condition.items]
    decisive = isinstance(condition, AnyOf)
    if decisive in results:
        return decisive
    if None in results:
        return None
    return not decisive


def _compare(condition: Compare, answer: Any) -> bool:
    op, value = condition.op, condition.value
    if op == "answered":
        return (answer is not None) is value
    if answer is None:
        return False
    try:
        if op == "contains":
            return isinstance(answer, list | tuple) and value in answer
        if op in ("in", "not_in"):
            return (answer in value) is (op == "in")
        return bool(_COMPARE[op](answer, value))
    except TypeError:
        return False


_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


@dataclass(frozen=True)
class Subject:
    """What validation knows about a question that a condition may name.

    `type` is None when the question's own definition is broken; its checks are then skipped,
    since the question itself already carries a problem.
    """

    index: int
    type: str | None
    option_ids: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    integer: bool = True


def parse_condition(
    raw: Any, path: str, subjects: Mapping[str, Subject], guarded: str, guarded_index: int
) -> tuple[Condition | None, list[Problem]]:
    """Turn a `when` value into a Condition, collecting every problem instead of stopping."""
    parser = _Parser(subjects, guarded, guarded_index)
    condition = parser.condition(raw, path)
    if parser.budget < 0:
        return None, [_problem(path, "too_large", limit=MAX_PARTS)]
    return (None if parser.problems else condition), parser.problems


class _Parser:
    def __init__(self, subjects: Mapping[str, Subject], guarded: str, guarded_index: int) -> None:
        self.subjects = subjects
        self.guarded = guarded
        self.guarded_index = guarded_index
        self.problems: list[Problem] = []
        self.budget = MAX_PARTS

    def condition(self, raw: Any, path: str) -> Condition | None:
        self.budget -= 1
        if self.budget < 0:
            return None
        if not isinstance(raw, Mapping):
            self.problems.append(_problem(path, "not_mapping", got=described(raw)))
            return None
        if not raw:
            self.problems.append(_problem(path, "empty"))
            return None
        parts = [self.entry(key, value, _join(path, key)) for key, value in raw.items()]
        return _all(parts)

    def entry(self, key: Any, value: Any, path: str) -> Condition | None:
        if key == "not":
            item = self.condition(value, path)
            return None if item is None else Not(item)
        if key in COMBINATORS:
            if not isinstance(value, list) or not value:
                self.problems.append(_problem(path, "needs_list", name=key, got=described(value)))
                return None
            parsed = [self.condition(item, f"{path}[{i}]") for i, item in enumerate(value)]
            items = tuple(item for item in parsed if item is not None)
            if len(items) < len(parsed):
                return None
            return AllOf(items) if key == "all" else AnyOf(items)
        return self.comparisons(key, value, path)

    def comparisons(self, qid: Any, ops: Any, path: str) -> Condition | None:
        subject = self.subject(qid, path)
        if not isinstance(ops, Mapping) or not ops:
            self.problems.append(_problem(path, "ops_shape", got=described(ops)))
            return None
        parts = [self.compare(qid, subject, op, v, _join(path, op)) for op, v in ops.items()]
        return None if subject is None else _all(parts)

    def subject(self, qid: Any, path: str) -> Subject | None:
        subject = self.subjects.get(qid) if isinstance(qid, str) else None
        if subject is None:
            self.problems.append(_problem(path, "unknown_question", qid=shown(qid)))
        elif qid == self.guarded:
            self.problems.append(_problem(path, "self_reference"))
        elif subject.index > self.guarded_index:
            self.problems.append(_problem(path, "forward_reference", qid=qid))
        else:
            return subject
        return None

    def compare(
        self, qid: str, subject: Subject | None, op: Any, value: Any, path: str
    ) -> Condition | None:
        self.budget -= 1
        if op not in OPERATORS:
            self.problems.append(_problem(path, "unknown_op", op=shown(op)))
            return None
        if subject is None or subject.type is None:
            return None
        if op not in OPS_BY_TYPE[subject.type]:
            self.problems.append(_problem(path, "op_not_for_type", op=op, type=subject.type))
            return None
        if op == "answered":
            return self.boolean(qid, op, value, path)
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.problems.append(_problem(path, "needs_values", op=op, got=described(value)))
                return None
            checks = [self.scalar(qid, subject, v, f"{path}[{i}]") for i, v in enumerate(value)]
            return Compare(qid, op, tuple(value)) if all(checks) else None
        if subject.type == "yesno":
            return self.boolean(qid, op, value, path)
        return Compare(qid, op, value) if self.scalar(qid, subject, value, path) else None

    def boolean(self, qid: str, op: str, value: Any, path: str) -> Condition | None:
        if isinstance(value, bool):
            return Compare(qid, op, value)
        self.problems.append(_problem(path, "needs_bool", value=shown(value)))
        return None

    def scalar(self, qid: str, subject: Subject, value: Any, path: str) -> bool:
        """Check one comparison value against what the question can answer."""
        if subject.type in ("choice", "multi"):
            if isinstance(value, str) and value in subject.option_ids:
                return True
            self.problems.append(_problem(path, "not_an_option", value=shown(value), qid=qid))
            return False
        if _fits(subject, value):
            return True
        takes = _takes(subject)
        self.problems.append(
            _problem(path, "impossible_value", value=shown(value), qid=qid, takes=takes)
        )
        return False


def _fits(subject: Subject, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return False
    if subject.integer and value != int(value):
        return False
    if subject.low is not None and value < subject.low:
        return False
    return subject.high is None or value <= subject.high


def _takes(subject: Subject) -> str:
    kind = "whole numbers" if subject.integer else "numbers"
    low, high = subject.low, subject.high
    if low is not None and high is not None:
        return f"{kind} from {shown(low)} to {shown(high)}"
    if low is not None:
        return f"{kind} of at least {shown(low)}"
    if high is not None:
        return f"{kind} of at most {shown(high)}"
    return kind


def _all(parts: list[Condition | None]) -> Condition | None:
    if any(part is None for part in parts):
        return None
    found: list[Condition] = [part for part in parts if part is not None]
    return found[0] if len(found) == 1 else AllOf(tuple(found))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}"
