"""End-to-end fixtures: the real bot (python-telegram-bot over HTTP) against the emulator."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from telegram.ext import Application

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.devtools.example import load_example
from bot.wiring.app import open_services
from bot.wiring.config import Settings
from bot.wiring.runner import running
from bot.wiring.services import Services
from storage.crypto import set_keyring

TOKEN = "123456:TEST-TOKEN"


def free_port() -> int:
    """A TCP port nobody listens on now, for a webhook server under test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator(token=TOKEN, per_chat_burst=20) as emu:
        yield emu


@pytest.fixture
def bot_settings(settings: Settings, emulator: BotApiEmulator) -> Settings:
    return settings.model_copy(update={"telegram_api_url": emulator.api_root})


@pytest.fixture
async def services(bot_settings: Settings) -> AsyncIterator[Services]:
    opened = await open_services(bot_settings)
    async with opened.db.transaction() as connection:
        await load_example(connection)
    yield opened
    await opened.db.dispose()
    set_keyring(None)


@pytest.fixture
async def bot(services: Services) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    async with running(services) as app:
        yield app


def has_button(prefix: str) -> Callable[[SimMessage], bool]:
    return lambda message: any(data.startswith(prefix) for data in message.button_data)


def is_question(message: SimMessage) -> bool:
    return (
        any(data.startswith("q:") for data in message.button_data)
        or "Pertanyaan" in (message.body)
        or "Question" in message.body
    )


@pytest.fixture
def consent() -> Callable[[SimUser, str | None], Awaitable[SimMessage]]:
    """Open a deep link, agree to the notice, and return the first reply after agreeing."""

    async def agree(user: SimUser, payload: str | None) -> SimMessage:
        await user.start(payload)
        notice = await user.wait_for(has_button("k:y"))
        await user.press(notice, next(d for d in notice.button_data if d.startswith("k:y")))
        return await user.wait_for(lambda m: m.message_id != notice.message_id)

    return agree
