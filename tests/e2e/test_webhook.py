"""Webhook mode: Telegram's secret header is checked, and a button press answers its callback
inside the webhook's 200 answer instead of a request of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.transport.web import SECRET_HEADER, WEBHOOK_PATH
from bot.wiring.runner import Webhook, running
from bot.wiring.services import Services
from tests.e2e.conftest import TOKEN, free_port

SECRET = "webhook-secret_123"


@pytest.fixture
def hook() -> Webhook:
    port = free_port()
    return Webhook(f"http://127.0.0.1:{port}", "127.0.0.1", port, SECRET)


async def test_a_survey_over_the_webhook(
    emulator: BotApiEmulator,
    services: Services,
    hook: Webhook,
    consent: Callable[[SimUser, str | None], Awaitable[SimMessage]],
) -> None:
    async with running(services, hook):
        assert emulator.webhook.config is not None
        assert emulator.webhook.config.url == hook.public_url + WEBHOOK_PATH
        nina = emulator.user(2001, language_code="id")
        question = await consent(nina, "b_JKT01")
        update = await nina.press(question, question.button_data[3])  # 4 stars
        answer = await nina.wait_for_answer(update)
        nxt = await nina.next_reply()
        assert "Pertanyaan 2 dari" in nxt.body and answer.text is None
        replies = [a.reply_method for a in emulator.webhook_log if a.status == 200]
        assert "answerCallbackQuery" in replies
        assert all(a.secret_sent for a in emulator.webhook_log)


async def test_wrong_or_missing_secret_is_refused(services: Services, hook: Webhook) -> None:
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "text": "/start",
            "chat": {"id": 5, "type": "private"},
            "from": {"id": 5, "is_bot": False, "first_name": "X"},
        },
    }
    async with running(services, hook), aiohttp.ClientSession() as http:
        url = hook.public_url + WEBHOOK_PATH
        for headers in ({SECRET_HEADER: "wrong"}, {}):
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 403
        async with http.post(url, data=b"{not json", headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 400
        async with http.post(url, json=[update], headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 400  # JSON, but not an update
        async with http.get(f"{hook.public_url}/healthz") as response:
            assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_a_failed_update_is_answered_500_and_delivered_again(
    services: Services,
    hook: Webhook,
    consent: Callable[[SimUser, str | None], Awaitable[SimMessage]],
) -> None:
    async with BotApiEmulator(token=TOKEN, webhook_retry_delays=(0.5, 1.0, 2.0)) as emulator:
        settings = services.settings.model_copy(update={"telegram_api_url": emulator.api_root})
        retried = replace(services, settings=settings)
        async with running(retried, hook):
            omar = emulator.user(2002, language_code="id")
            question = await consent(omar, "b_JKT01")
            await emulator.drained()  # the bot is done with the consent
            async with services.db.transaction() as connection:  # the database fails...
                await connection.execute(sa.text("ALTER TABLE survey_sessions RENAME TO away"))
            update = await omar.press(question, question.button_data[3])
            for _ in range(250):  # the first delivery is refused with 500
                if any(a.status == 500 for a in emulator.webhook_log):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the failed update was not answered with 500")
            async with services.db.transaction() as connection:  # ...and comes back
                await connection.execute(sa.text("ALTER TABLE away RENAME TO survey_sessions"))
            following = await omar.wait_for(lambda m: "Pertanyaan 2 dari" in m.body, 10)
            assert following.message_id == question.message_id
    attempts = [a.status for a in emulator.webhook_log if a.update_id == update["update_id"]]
    assert attempts[0] == 500 and attempts[-1] == 200
    assert "Maaf" not in " ".join(m.body for m in omar.messages)  # no apology for a retry


async def test_the_database_pool_fits_the_updates_in_flight(services: Services) -> None:
    """Each update in flight holds a connection for its unit: a smaller PostgreSQL pool would
    open and close connections under load. SQLite has its one writer."""
    pool = services.db.engine.pool
    expected = services.settings.concurrent_updates + 4 if services.db.is_postgres else 1
    assert pool.size() == expected
