"""No poison updates: an update the bot cannot use is acknowledged once (200, or 400 for a body
that is not an update), never failed on every delivery until Telegram gives up; one that keeps
failing with a fault of its own is answered 500 only a few times. Webhook and polling."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from telegram import Update
from telegram.ext import Application, TypeHandler

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.transport.web import REDELIVERY_CAP, SECRET_HEADER, WEBHOOK_PATH
from bot.wiring.runner import Webhook, running
from bot.wiring.services import Services
from storage import sessions as session_store
from storage.models import customers, survey_sessions
from tests.e2e.conftest import TOKEN, free_port
from tests.e2e.test_webhook import SECRET

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
SENDER = {"id": 7001, "is_bot": False, "first_name": "Tia"}
CHAT = {"id": 7001, "type": "private", "first_name": "Tia"}


def _message(**fields: Any) -> dict[str, Any]:
    return {"message_id": 1, "date": 1_700_000_000, "chat": CHAT, "text": "hi", **fields}


UNUSABLE = {
    "edited message": {"edited_message": _message(**{"from": SENDER})},
    "message without a sender": {"message": _message()},
    "message that is a string": {"message": "x"},
    "update_id of 2^63": {"update_id": 2**63, "message": _message(**{"from": SENDER})},
    "sender id of 2^64": {"message": _message(**{"from": {**SENDER, "id": 2**64}})},
}


@asynccontextmanager
async def _bot(
    services: Services, emulator: BotApiEmulator, mode: str
) -> AsyncIterator[tuple[Application, Webhook | None]]:  # type: ignore[type-arg]
    settings = services.settings.model_copy(update={"telegram_api_url": emulator.api_root})
    hook = None
    if mode == "webhook":
        port = free_port()
        hook = Webhook(f"http://127.0.0.1:{port}", "127.0.0.1", port, SECRET)
    async with running(replace(services, settings=settings), hook) as app:
        yield app, hook


async def _comment_question(user: SimUser, consent: Consent) -> SimMessage:
    """A promoter's path through the branch survey to its free-text question."""
    message = await consent(user, "b_MKS01")
    for label in (":a:5", ":a:10"):
        await user.press(message, next(d for d in message.button_data if d.endswith(label)))
        message = await user.next_reply()
    for label in ("Yes", "Skip"):
        data = next(d for row in message.buttons for text, d in row if label in text and d)
        await user.press(message, data)
        message = await user.next_reply()
    assert "anything else" in message.body
    return message


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_a_lone_surrogate_in_a_typed_answer_is_stored_mended(
    services: Services, consent: Consent, mode: str
) -> None:
    async with BotApiEmulator(token=TOKEN) as emulator, _bot(services, emulator, mode):
        tia = emulator.user(7002, language_code="en")
        await _comment_question(tia, consent)
        update = await tia.send_text("ok \ud800 fine")
        outro = await tia.next_reply()
        assert "Thank you for your time" in outro.body
    if mode == "webhook":
        assert [a.status for a in emulator.webhook_log if a.update_id == update["update_id"]] == [
            200
        ]
    async with services.db.transaction() as connection:
        session_id = (
            await connection.execute(
                survey_sessions.select()
                .with_only_columns(survey_sessions.c.id)
                .join(customers, customers.c.id == survey_sessions.c.customer_id)
                .where(customers.c.telegram_id == 7002)
            )
        ).scalar_one()
        session = await session_store.get(connection, session_id)
        assert session is not None and session.status == "completed"
        from bot.services.conversation import answers_so_far

        assert (await answers_so_far(connection, session))["comment"] == "ok \ufffd fine"


async def test_updates_the_bot_cannot_use_are_acknowledged_once_on_the_webhook(
    services: Services,
    emulator: BotApiEmulator,
    consent: Consent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with _bot(services, emulator, "webhook") as (_, hook), aiohttp.ClientSession() as http:
        assert hook is not None
        url = hook.public_url + WEBHOOK_PATH
        for number, (name, body) in enumerate(UNUSABLE.items(), start=500):
            update = {"update_id": number, **body}
            async with http.post(url, json=update, headers={SECRET_HEADER: SECRET}) as response:
                assert response.status in (200, 400), name
        ani = emulator.user(7003, language_code="id")
        question = await consent(ani, "b_JKT01")  # the bot goes on serving customers
        assert "Pertanyaan 1 dari" in question.body
    unused = [r for r in caplog.records if "acknowledged unused" in r.getMessage()]
    assert len(unused) >= len(UNUSABLE) - 1  # "message": "x" may be refused as no update
    assert not [r for r in caplog.records if r.exc_info]  # no traceback


async def test_updates_the_bot_cannot_use_do_not_stop_polling(
    services: Services,
    emulator: BotApiEmulator,
    consent: Consent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with _bot(services, emulator, "polling"):
        for body in UNUSABLE.values():
            if "update_id" not in body:  # an id of 2^63 would move the emulator's ids past it
                emulator.inject_update(dict(body))
        ani = emulator.user(7003, language_code="id")
        question = await consent(ani, "b_JKT01")  # polling goes on
        assert "Pertanyaan 1 dari" in question.body
        emulator.inject_update(dict(UNUSABLE["update_id of 2^63"]))
        for _ in range(100):
            if any("out of range" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
    unused = [r for r in caplog.records if "acknowledged unused" in r.getMessage()]
    assert len(unused) >= 3
    assert not [r for r in caplog.records if r.exc_info]  # no traceback


async def test_a_body_nested_thousands_deep_is_refused_with_400(
    services: Services, emulator: BotApiEmulator
) -> None:
    deep = b'{"update_id": 5, "message": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    async with _bot(services, emulator, "webhook") as (_, hook), aiohttp.ClientSession() as http:
        assert hook is not None
        url = hook.public_url + WEBHOOK_PATH
        async with http.post(url, data=deep, headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 400


async def test_an_update_that_keeps_failing_is_acknowledged_after_a_few_deliveries(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug that raises for one update (here a handler that always raises for it)."""
    emulator = BotApiEmulator(token=TOKEN, webhook_retry_delays=(0.02,) * 8)
    async with emulator, _bot(services, emulator, "webhook") as (app, _):
        poisoned_id = 10_000

        async def bug(update: Update, _context: object) -> None:
            if update.update_id == poisoned_id:
                raise RuntimeError("a bug that this update triggers")

        app.add_handler(TypeHandler(Update, bug), group=-1)
        emulator.inject_update({"update_id": poisoned_id, "message": _message(**{"from": SENDER})})
        for _ in range(250):
            attempts = [a.status for a in emulator.webhook_log if a.update_id == poisoned_id]
            if attempts and attempts[-1] == 200:
                break
            await asyncio.sleep(0.02)
    assert attempts == [500] * REDELIVERY_CAP + [200]
    assert any("acknowledged so that Telegram stops" in r.getMessage() for r in caplog.records)


RAW_SENDER = json.dumps(SENDER)
RAW_CHAT = json.dumps(CHAT)
# Updates as getUpdates' JSON text writes them: their members besides update_id.
POLLED_POISON = {
    "JSON nested 50,000 deep": '"message":' + "[" * 50_000 + "]" * 50_000,
    "a lone surrogate in text": (
        f'"message":{{"message_id":1,"date":1700000000,"chat":{RAW_CHAT},'
        f'"from":{RAW_SENDER},"text":"\\ud800"}}'
    ),
    "edited message": f'"edited_message":{json.dumps(_message(**{"from": SENDER}))}',
    "message without a sender": f'"message":{json.dumps(_message())}',
    "message that is a string": '"message":"x"',
}


async def _polled_until_drained(emulator: BotApiEmulator) -> None:
    for _ in range(200):  # the poller's offset confirms every update it was given
        if not emulator.updates.pending:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{emulator.updates.pending} updates are served again and again")


@pytest.mark.parametrize("poison", list(POLLED_POISON))
async def test_a_polled_poison_update_is_skipped_once_and_polling_goes_on(
    services: Services,
    emulator: BotApiEmulator,
    consent: Consent,
    caplog: pytest.LogCaptureFixture,
    poison: str,
) -> None:
    """Telegram returns an update until an offset passes it: the poller must move past it,
    in the same batch as a customer's /start, and serve the updates that follow."""
    caplog.set_level(logging.WARNING)
    emulator.user(SENDER["id"], first_name=SENDER["first_name"])  # the poison's chat exists
    emulator.put_raw_update(POLLED_POISON[poison])
    ani = emulator.user(7004, language_code="id")
    await ani.start("b_JKT01")  # in the same getUpdates answer as the poison
    async with _bot(services, emulator, "polling"):
        notice = await ani.wait_for(lambda m: any(d.startswith("k:y") for d in m.button_data))
        await ani.press(notice, next(d for d in notice.button_data if d.startswith("k:y")))
        question = await ani.wait_for(lambda m: m.message_id != notice.message_id)
        assert "Pertanyaan 1 dari" in question.body
        budi = emulator.user(7005, language_code="id")
        assert "Pertanyaan 1 dari" in (await consent(budi, "b_JKT01")).body
        await _polled_until_drained(emulator)
    skipped = [r for r in caplog.records if r.name == "bot.transport.request"]
    assert len(skipped) == (0 if "surrogate" in poison else 1)  # logged once, if at all
    assert not [r for r in caplog.records if r.exc_info]  # no traceback


async def test_a_polled_update_id_of_2_63_is_skipped_once(
    services: Services,
    emulator: BotApiEmulator,
    consent: Consent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The update before it in the same batch is served; every id after it would be as far
    out of range, so the last update Telegram hands out here is this one."""
    caplog.set_level(logging.WARNING)
    emulator.user(SENDER["id"], first_name=SENDER["first_name"])
    ani = emulator.user(7006, language_code="id")
    await ani.start("b_JKT01")
    emulator.put_raw_update(
        f'"message":{json.dumps(_message(**{"from": SENDER}))}', update_id=2**63
    )
    async with _bot(services, emulator, "polling"):
        assert await ani.wait_for(lambda m: any(d.startswith("k:y") for d in m.button_data))
        await _polled_until_drained(emulator)
    skipped = [r for r in caplog.records if r.name == "bot.transport.request"]
    assert len(skipped) == 1
    assert not [r for r in caplog.records if r.exc_info]
