"""Errors raised by the survey engine, and the helpers that word survey problems.

The hierarchy::

    SurveyError                   anything the survey engine raises on purpose
    ├── SurveyDefinitionError     a survey file is broken; carries every Problem found
    ├── InvalidAnswer             normalise() refused a raw answer; reason is a stable code
    └── FlowError                 an event that is illegal for the session's state
        ├── SessionFinished       the session is already finished
        ├── NotCurrentQuestion    the event names a question other than the current one
        ├── NotSkippable          skip on a required question
        ├── NotAMultiQuestion     toggle on a question that is not a multi
        ├── NothingToGoBackTo     back on the first question
        └── InvalidState          a stored state that is malformed or belongs to another survey

A FlowError never changes the state: the caller keeps the state it had. A stale or forged
button press surfaces as NotCurrentQuestion or SessionFinished.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def N_(message: str) -> str:
    """Mark a message for translation; whoever shows it translates it for its reader."""
    return message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a survey definition, located by its path in the document.

    `message` is the English sentence; `code` names its template in `MESSAGES` of schema or
    conditions and `params` fill it, so a reader can be shown the problem in their language.
    """

    path: str
    message: str
    code: str = ""
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SurveyError(Exception):
    """Base of every error the survey engine raises on purpose."""


class SurveyDefinitionError(SurveyError):
    """A survey definition is invalid; every problem found is listed, not just the first."""

    def __init__(self, source: str, problems: tuple[Problem, ...]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self._report())

    def _report(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"The survey definition in {self.source} is invalid ({count} {noun}):"]
        lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)


class InvalidAnswer(SurveyError):
    """A raw answer does not fit its question; `reason` is one of engine.REJECT_REASONS."""

    def __init__(self, reason: str, params: Mapping[str, Any] | None = None) -> None:
        self.reason = reason
        self.params: Mapping[str, Any] = MappingProxyType(dict(params or {}))
        detail = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        super().__init__(f"{reason} ({detail})" if detail else reason)


class FlowError(SurveyError):
    """An event that the session's state does not allow; the state stays as it was."""


class SessionFinished(FlowError):
    """The session has already finished, so nothing more can be answered or resumed."""


class NotCurrentQuestion(FlowError):
    """The event names a question other than the one being asked (a stale or forged press)."""


class NotSkippable(FlowError):
    """Only optional questions may be skipped."""


class NotAMultiQuestion(FlowError):
    """Options are toggled one by one only on multi questions."""


class NothingToGoBackTo(FlowError):
    """Back was pressed on the first question asked."""


class InvalidState(FlowError):
    """A stored state is malformed or does not belong to the survey it is used with."""


def kind_of(value: Any) -> str:
    """Name a YAML value's kind the way a survey author thinks of it, for problem messages."""
    if value is None:
        return N_("nothing")
    if isinstance(value, bool):
        return N_("true/false")
    if isinstance(value, float) and not math.isfinite(value):
        return N_("a number that is not finite")
    if isinstance(value, int | float):
        return N_("a number")
    if isinstance(value, str):
        return N_("text") if value else N_("empty text")
    if isinstance(value, Mapping):
        return N_("a mapping") if value else N_("an empty mapping")
    if isinstance(value, list | tuple):
        return N_("a list") if value else N_("an empty list")
    return type(value).__name__


def described(value: Any) -> str:
    """Quote a plain value verbatim and name anything bigger by its kind, after "got"."""
    if isinstance(value, int | float) and math.isfinite(value):
        return shown(value)
    return shown(value) if isinstance(value, str) and value else kind_of(value)


def shown(value: Any, limit: int = 40) -> str:
    """Quote a YAML value as the author wrote it (true, 3, 'queue'), shortened to fit a line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return repr(text)
    return kind_of(value)
