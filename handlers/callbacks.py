"""Compact button data (at most 64 bytes) and its strict parser.

Survey buttons name the session, the session version they were drawn for and the value: the
service checks all three against the stored state, so a stale, forged or redelivered press
changes nothing.

    q:<session>:<version>:<a|t|d|b|s>[:<value>]  answer, toggle, done, back, skip
    k:<y|n|l>:<locale>[:<payload>]              privacy notice: agree, decline, language
    l:<locale>                                  /language choice
    e:<y|n>                                     /delete_me: erase, or keep
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.services.conversation import Action

MAX_BYTES = 64
_ACTIONS: dict[str, Action] = {"a": "answer", "t": "toggle", "d": "done", "b": "back", "s": "skip"}
_CODES = {name: code for code, name in _ACTIONS.items()}
_SURVEY = re.compile(r"q:(\d{1,12}):(\d{1,9}):([atdbs])(?::([A-Za-z0-9_.-]{1,32}))?")
_NOTICE = re.compile(r"k:([ynl]):([a-z]{2}):?([A-Za-z0-9_-]{0,40})")
_LANGUAGE = re.compile(r"l:([a-z]{2})")
_ERASE = re.compile(r"e:([yn])")


@dataclass(frozen=True)
class SurveyPress:
    session_id: int
    version: int
    action: Action
    value: str | None


@dataclass(frozen=True)
class NoticePress:
    choice: Literal["agree", "decline", "language"]
    locale: str
    payload: str | None


@dataclass(frozen=True)
class LanguagePress:
    locale: str


@dataclass(frozen=True)
class ErasePress:
    confirmed: bool


Press = SurveyPress | NoticePress | LanguagePress | ErasePress


def survey(session_id: int, version: int, action: Action, value: object = None) -> str:
    data = f"q:{session_id}:{version}:{_CODES[action]}"
    return data if value is None else f"{data}:{value}"


def notice(choice: Literal["y", "n", "l"], locale: str, payload: str | None) -> str:
    data = f"k:{choice}:{locale}"
    if payload and len(f"{data}:{payload}".encode()) <= MAX_BYTES:
        data = f"{data}:{payload}"
    return data


def language(locale: str) -> str:
    return f"l:{locale}"


def erase(confirmed: bool) -> str:
    return "e:y" if confirmed else "e:n"


def parse(data: str | None) -> Press | None:
    """The press a button's data describes, or None for anything malformed."""
    if not data or len(data.encode()) > MAX_BYTES:
        return None
    if match := _SURVEY.fullmatch(data):
        return SurveyPress(int(match[1]), int(match[2]), _ACTIONS[match[3]], match[4])
    if match := _NOTICE.fullmatch(data):
        choice = {"y": "agree", "n": "decline", "l": "language"}[match[1]]
        return NoticePress(choice, match[2], match[3] or None)  # type: ignore[arg-type]
    if match := _LANGUAGE.fullmatch(data):
        return LanguagePress(match[1])
    if match := _ERASE.fullmatch(data):
        return ErasePress(match[1] == "y")
    return None
