"""A database outage through the webhook: a locked table fails the update fast with 500
(Telegram delivers it again), the log says so once with a count instead of a traceback per
update, and the customer goes on once the lock is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.devtools.example import load_example
from bot.wiring.app import open_services
from bot.wiring.config import Settings
from bot.wiring.runner import running
from storage.crypto import set_keyring
from tests.conftest import BACKEND
from tests.e2e.conftest import TOKEN, free_port
from tests.e2e.test_webhook import SECRET

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's lock_timeout")


async def test_a_locked_table_fails_fast_and_is_logged_once(
    settings: Settings, consent: Consent, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.wiring.runner import Webhook

    caplog.set_level(logging.INFO)
    async with BotApiEmulator(token=TOKEN, webhook_retry_delays=(0.3,) * 20) as emulator:
        fast = settings.model_copy(
            update={"telegram_api_url": emulator.api_root, "db_lock_timeout": 0.2}
        )
        services = await open_services(fast)
        try:
            async with services.db.transaction() as connection:
                await load_example(connection)
            port = free_port()
            hook = Webhook(f"http://127.0.0.1:{port}", "127.0.0.1", port, SECRET)
            async with running(services, hook):
                users = [emulator.user(6100 + n, language_code="id") for n in range(5)]
                questions = [await consent(user, "b_JKT01") for user in users]
                async with services.db.engine.connect() as holder, holder.begin():
                    await holder.execute(
                        sa.text("LOCK TABLE survey_sessions IN ACCESS EXCLUSIVE MODE")
                    )
                    for user, question in zip(users, questions, strict=True):
                        await user.press(question, question.button_data[3])
                    for _ in range(100):
                        if sum(a.status == 500 for a in emulator.webhook_log) >= 5:
                            break
                        await asyncio.sleep(0.05)
                for user in users:  # Telegram's next delivery goes through
                    following = await user.wait_for(lambda m: "Pertanyaan 2 dari" in m.body, 10)
                    assert following is not None
        finally:
            await services.db.dispose()
            set_keyring(None)
    assert sum(a.status == 500 for a in emulator.webhook_log) >= 5
    outage = [r for r in caplog.records if "database is unavailable" in r.getMessage()]
    assert 1 <= len(outage) <= 2
    assert not [r for r in caplog.records if r.exc_info]
