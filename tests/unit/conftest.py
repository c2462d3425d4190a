"""Fixtures the unit tests of the transport and the emulator share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.devtools.emulator import BotApiEmulator


@pytest.fixture
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns on every RetryAfter unless it may use timedelta, as it will in PTB 23."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    """An emulator without flood limits, for tests of what it answers."""
    async with BotApiEmulator(global_rate=None, per_chat_rate=None) as emulator:
        yield emulator
