"""A bot process killed with SIGKILL mid-blast and started again: the blast resumes and nobody
gets the same invitation twice."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from bot.devtools.emulator import BotApiEmulator
from bot.services.campaigns import Plan
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage import campaigns as campaign_store
from tests.e2e.campaigning import add_customers, invitations, wait_settled
from tests.e2e.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]


async def _bot_process(settings: Settings) -> asyncio.subprocess.Process:
    env = {
        "PATH": "/usr/bin:/bin",
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": settings.telegram_api_url,
        "DATABASE_URL": settings.database_url,
        "KEY_FILE": str(settings.key_file),
        "SURVEYS_DIR": str(settings.surveys_dir),
        "PRIVACY_NOTICE_FILE": str(settings.privacy_notice_file),
        "LOG_LEVEL": "WARNING",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "run_bot.py"),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_a_killed_sender_resumes_without_a_second_invitation(
    emulator: BotApiEmulator, services: Services, bot_settings: Settings
) -> None:
    users = await add_customers(services, emulator, "JKT01", 90)
    created = await services.campaigns.create(None, Plan("crash", "branch_service", "all"))
    number = created.campaign.id  # type: ignore[union-attr]
    async with services.db.transaction() as connection:  # the processes run on real time
        await campaign_store.update(connection, number, quiet_start="00:00", quiet_end="00:00")
    await services.campaigns.launch(None, str(number))

    first = await _bot_process(bot_settings)
    try:
        await users[30].wait_for(lambda m: "about a minute" in m.body, timeout=30)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert sum(len(invitations(user)) for user in users) < 90  # killed mid-blast

    second = await _bot_process(bot_settings)
    try:
        await wait_settled(services, number, "invite", 90)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 20)
    received = [len(invitations(user)) for user in users]
    assert max(received) == 1  # nobody twice
    assert sum(received) >= 89  # at most the one message on the wire at the kill is lost
    assert emulator.count_429 == 0
