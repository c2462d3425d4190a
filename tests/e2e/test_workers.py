"""Several webhook processes on one port (WORKERS): the real `run_bot.py --webhook`, spawned."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage.models import survey_sessions
from tests.conftest import BACKEND
from tests.e2e.conftest import TOKEN, free_port

ROOT = Path(__file__).resolve().parents[2]
Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": settings.telegram_api_url,
        "DATABASE_URL": settings.database_url,
        "KEY_FILE": str(settings.key_file),
        "SURVEYS_DIR": str(settings.surveys_dir),
        "PRIVACY_NOTICE_FILE": str(settings.privacy_notice_file),
        **extra,
    }


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "run_bot.py"),
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_several_workers_need_the_webhook_and_postgresql(bot_settings: Settings) -> None:
    code, err = await _cli(env=_env(bot_settings, WORKERS="2"))  # polling
    assert code == 2 and err.strip() == (
        "suara: Setting WORKERS above 1 needs --webhook: polling runs one process."
    )
    sqlite = f"sqlite+aiosqlite:///{bot_settings.key_file.parent}/w.db"
    hook = {"WORKERS": "2", "WEBHOOK_URL": "http://127.0.0.1:9", "DATABASE_URL": sqlite}
    code, err = await _cli("--webhook", env=_env(bot_settings, **hook))
    assert code == 2 and err.strip() == (
        "suara: Setting WORKERS above 1 needs PostgreSQL: SQLite serves one process."
    )


@pytest.mark.skipif(BACKEND != "postgres", reason="several processes need PostgreSQL")
async def test_two_workers_serve_customers_through_one_port(
    emulator: BotApiEmulator, bot_settings: Settings, services: Services, consent: Consent
) -> None:
    port = free_port()
    env = _env(
        bot_settings,
        WORKERS="2",
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        LISTEN_HOST="127.0.0.1",
        LISTEN_PORT=str(port),
        WEBHOOK_SECRET="workers-secret",
        LOG_LEVEL="INFO",
        CONCURRENT_UPDATES="8",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "run_bot.py"),
        "--webhook",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # both workers answer on the shared port once started
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        users = [emulator.user(5000 + n, language_code="id") for n in range(12)]

        async def answer_all(user: SimUser) -> None:
            question = await consent(user, "b_JKT01")
            while question.button_data:  # the outro has none
                skip = [d for d in question.button_data if d.endswith(":s")]
                data = (skip or [d for d in question.button_data if ":a:" in d])[0]
                await user.press(question, data)
                shown = (question.message_id, question.body)
                question = await user.wait_for(
                    lambda m, shown=shown: (m.message_id, m.body) != shown
                )

        await asyncio.wait_for(asyncio.gather(*(answer_all(u) for u in users)), 60)
        async with services.db.transaction() as connection:
            completed = await connection.scalar(
                sa.select(sa.func.count())
                .select_from(survey_sessions)
                .where(survey_sessions.c.status == "completed")
            )
        assert completed == len(users)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    log = err.decode()
    assert process.returncode == 0, log
    assert "worker 1 of 2" in log and "worker 2 of 2" in log
    assert "Traceback" not in log
