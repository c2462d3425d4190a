"""Injected faults: error answers, slow answers and connections closed without an answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.devtools.emulator.errors import ApiError

FaultKind = Literal["fail", "delay", "drop"]


@dataclass
class Fault:
    """One rule; ``times`` None means until cleared, ``method`` ``"*"`` matches every method."""

    kind: FaultKind
    method: str
    times: int | None = 1
    chat_id: int | None = None
    after: bool = False
    seconds: float = 0.0
    error: ApiError | None = None

    def matches(self, method: str, chat_id: int | None) -> bool:
        if self.method not in ("*", method):
            return False
        return self.chat_id is None or self.chat_id == chat_id


class Faults:
    """The active rules; each matching call uses up one of a rule's ``times``."""

    def __init__(self) -> None:
        self._rules: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._rules.append(fault)

    def clear(self) -> None:
        self._rules.clear()

    def take(self, method: str, chat_id: int | None) -> dict[FaultKind, Fault]:
        """The first matching rule of each kind for this call, consuming one use of each."""
        if not self._rules:
            return {}
        chosen: dict[FaultKind, Fault] = {}
        for rule in self._rules:
            if rule.kind not in chosen and rule.matches(method, chat_id):
                chosen[rule.kind] = rule
                if rule.times is not None:
                    rule.times -= 1
        self._rules = [r for r in self._rules if r.times is None or r.times > 0]
        return chosen
