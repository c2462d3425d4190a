"""Webhook mode: Telegram's secret header is checked, and a button press answers its callback
inside the webhook's 200 answer instead of a request of its own."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from bot.emulator import BotApiEmulator, SimMessage, SimUser
from bot.runner import Webhook, running
from bot.services import Services
from bot.web import SECRET_HEADER, WEBHOOK_PATH

SECRET = "webhook-secret_123"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def hook() -> Webhook:
    port = _free_port()
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
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "/start",
                                          "chat": {"id": 5, "type": "private"},
                                          "from": {"id": 5, "is_bot": False, "first_name": "X"}}}
    async with running(services, hook), aiohttp.ClientSession() as http:
        url = hook.public_url + WEBHOOK_PATH
        for headers in ({SECRET_HEADER: "wrong"}, {}):
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 403
        async with http.post(url, data=b"{not json", headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 400
        async with http.get(f"{hook.public_url}/healthz") as response:
            assert response.status == 200 and (await response.json()) == {"status": "ok"}
