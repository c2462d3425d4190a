"""Fixtures the unit tests share: the transport's and the emulator's, and the command line's
environment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.devtools.emulator import BotApiEmulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns on every RetryAfter unless it may use timedelta, as it will in PTB 23."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    """An emulator without flood limits, for tests of what it answers."""
    async with BotApiEmulator(global_rate=None, per_chat_rate=None) as emulator:
        yield emulator


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    """The settings `run_bot.py`'s commands read: this test's database, no bot token."""
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KEY_FILE", str(tmp_path / "suara.key"))
    monkeypatch.setenv("SURVEYS_DIR", str(ROOT / "surveys"))
    monkeypatch.setenv("PRIVACY_NOTICE_FILE", str(ROOT / "locales" / "privacy_notice.yaml"))
