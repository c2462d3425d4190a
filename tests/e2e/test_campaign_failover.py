"""Two bot processes on one PostgreSQL database: one sends, elected by an advisory lock; when
it dies mid-blast the other takes over within seconds, and nobody is invited twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from telegram import Bot

from bot.devtools.emulator import BotApiEmulator
from bot.services.campaigns import Plan
from bot.wiring.app import open_services
from bot.wiring.config import Settings
from bot.wiring.runner import running
from bot.wiring.services import Services
from tests.e2e.campaigning import (
    add_customers,
    daytime_clock,
    invitations,
    use_clock,
    wait_settled,
)
from tests.e2e.conftest import TOKEN


@pytest.fixture
async def second(bot_settings: Settings, services: Services) -> AsyncIterator[Services]:
    """Another process's services on the same database (its own engine and connections)."""
    if not services.db.is_postgres:
        pytest.skip("several sending processes need PostgreSQL")
    other = await open_services(bot_settings)
    yield other
    await other.db.dispose()


async def test_the_sender_fails_over_without_a_second_invitation(
    emulator: BotApiEmulator, services: Services, second: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    use_clock(second, clock)
    users = await add_customers(services, emulator, "JKT01", 60)
    stop_second = asyncio.Event()
    async with Bot(TOKEN, base_url=f"{emulator.api_root}/bot") as bot:
        first_sender = asyncio.create_task(second.sender.run(bot, stop_second))
        for _ in range(100):
            if second.sender.stats.leader:
                break
            await asyncio.sleep(0.05)
        async with running(services):
            await asyncio.sleep(1.5)  # both are up; only one may lead
            assert second.sender.stats.leader and not services.sender.stats.leader
            created = await services.campaigns.create(None, Plan("x", "branch_service", "all"))
            number = created.campaign.id  # type: ignore[union-attr]
            await services.campaigns.launch(None, str(number))
            await users[19].wait_for(lambda m: "about a minute" in m.body, timeout=10)
            first_sender.cancel()  # the sending process dies mid-blast
            await asyncio.gather(first_sender, return_exceptions=True)
            await second.db.dispose()
            died = time.monotonic()
            for _ in range(100):
                if services.sender.stats.leader:
                    break
                await asyncio.sleep(0.05)
            assert time.monotonic() - died < 5  # taken over within seconds
            await wait_settled(services, number, "invite", 60)
    received = [len(invitations(user)) for user in users]
    assert max(received) == 1  # nobody twice
    assert sum(received) >= 60 - 2  # at most the messages on the wire when it died
    assert emulator.count_429 == 0
