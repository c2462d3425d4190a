"""Nobody is stranded: one live copy of the question per chat, outdated presses and repeated
updates redraw where the customer is, failed replies are retried, and concurrent taps open one
session. The real bot over HTTP to the emulator, a real database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import sqlalchemy as sa

from bench.crashes import live_questions
from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.wiring.config import Settings
from bot.wiring.runner import Webhook, running
from bot.wiring.services import Services
from storage.models import customers, survey_sessions
from tests.e2e.conftest import TOKEN, free_port, has_button, is_question
from tests.e2e.test_customer import button, labelled, step, stored
from tests.e2e.test_webhook import SECRET

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    """Impatient customers tap faster than one chat's flood limit allows."""
    async with BotApiEmulator(token=TOKEN, per_chat_burst=100) as emu:
        yield emu


@pytest.fixture
def bot_settings(settings: Settings, emulator: BotApiEmulator) -> Settings:
    update = {"telegram_api_url": emulator.api_root, "per_chat_burst": 30}
    return settings.model_copy(update=update)


async def noted(services: Services, user: SimUser, message: SimMessage) -> None:
    """Wait until the bot has noted that `message` holds the customer's live question, as it
    has long before a customer could tap anything else."""
    for _ in range(250):
        async with services.db.transaction() as connection:
            live = await connection.scalar(
                sa.select(survey_sessions.c.live_message_id)
                .join(customers, customers.c.id == survey_sessions.c.customer_id)
                .where(customers.c.telegram_id == user.id, survey_sessions.c.status == "open")
            )
        if live == message.message_id:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"message {message.message_id} was never noted as the live one")


async def only_live(user: SimUser, expected: SimMessage) -> bool:
    """Whether `expected` is soon the one message with survey buttons: the reply may reach the
    customer a moment before the bot has noted it and taken the keys off the copy before."""
    for _ in range(100):
        if live_questions(user) == [expected]:
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.usefixtures("bot")
async def test_a_question_sent_anew_takes_the_keyboard_off_the_one_before(
    emulator: BotApiEmulator, consent: Consent
) -> None:
    rina = emulator.user(3001, language_code="en")
    first = await consent(rina, "b_JKT01")
    await rina.send_text("4")  # a typed answer: the next question goes out in a new message
    second = await rina.wait_for(is_question)
    assert "Question 2 of" in second.body and second.message_id != first.message_id
    assert await only_live(rina, second)
    await rina.start()  # a resume
    resumed = await rina.wait_for(is_question)
    assert "continue where you left off" in resumed.body
    assert await only_live(rina, resumed)
    await rina.send_text("/language")  # a language switch asks again in a new message
    menu = await rina.next_reply()
    await rina.press(menu, labelled(menu, "Bahasa Indonesia"))
    again = await rina.wait_for(lambda m: "Pertanyaan 2 dari" in m.body)
    assert await only_live(rina, again)
    done = await step(rina, again, button(again, ":a:9"))
    assert "Pertanyaan 3 dari" in done.body and live_questions(rina) == [again]


@pytest.mark.usefixtures("bot")
async def test_a_press_on_an_outdated_question_redraws_the_current_one(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    sari = emulator.user(3002, language_code="en")
    first = await consent(sari, "b_JKT01")
    old_data = button(first, ":a:5")
    await sari.send_text("4")
    second = await sari.wait_for(is_question)
    await noted(services, sari, second)
    # An old copy pressed anyway (a client that kept the buttons, or a press redelivered).
    update = await sari.press_raw(first.message_id, old_data)
    answer = await sari.wait_for_answer(update)
    assert answer.text is None  # no "no longer active": the customer is shown where they are
    redrawn = await sari.wait_for(lambda m: m.message_id == first.message_id)
    assert "Question 2 of" in redrawn.body
    assert await only_live(sari, redrawn) and not second.button_data
    assert await stored(services, 3002) == {"csat": 4}
    q = await step(sari, redrawn, button(redrawn, ":a:10"))
    assert "Question 3 of" in q.body


@pytest.mark.usefixtures("bot")
async def test_a_failed_edit_is_retried_and_a_lost_one_is_redrawn_by_the_next_tap(
    emulator: BotApiEmulator, services: Services, consent: Consent, caplog: pytest.LogCaptureFixture
) -> None:
    tono = emulator.user(3003, language_code="en")
    q = await consent(tono, "b_JKT01")
    emulator.fail("editMessageText", error_code=502, description="Bad Gateway", times=1)
    emulator.drop_connection("editMessageText", times=1)
    q = await step(tono, q, button(q, ":a:4"))  # two faults, then the edit goes through
    assert "Question 2 of" in q.body
    emulator.fail("editMessageText", error_code=500, times=None)  # Telegram is down for edits
    with caplog.at_level(logging.ERROR):
        update = await tono.press(q, button(q, ":a:8"))
        await tono.wait_for_answer(update)
        for _ in range(100):
            if any("failed" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and str(update["update_id"]) in failures[0].getMessage()
    assert "Question 2 of" in q.body  # the answer is stored, the customer still sees question 2
    emulator.clear_faults()
    again = await tono.press(q, button(q, ":a:8"))  # the customer taps again
    assert (await tono.wait_for_answer(again)).text is None
    q = await tono.wait_for(lambda m: "Question 3 of" in m.body)
    assert await stored(services, 3003) == {"csat": 4, "nps": 8}  # recorded once


@pytest.mark.usefixtures("bot")
async def test_a_redelivered_text_answer_or_start_shows_where_the_customer_is(
    emulator: BotApiEmulator, services: Services, consent: Consent, caplog: pytest.LogCaptureFixture
) -> None:
    umar = emulator.user(3004, language_code="en")
    await consent(umar, "b_JKT01")
    emulator.fail("sendMessage", error_code=500, times=None)  # the reply cannot go out
    with caplog.at_level(logging.ERROR):
        typed = await umar.send_text("4")
        for _ in range(200):  # until the retries give up
            if any(r.levelno >= logging.ERROR for r in caplog.records):
                break
            await asyncio.sleep(0.05)
    emulator.clear_faults()
    assert await stored(services, 3004) == {"csat": 4}
    emulator.redeliver(typed)  # as Telegram does after a crash before the 200
    shown = await umar.wait_for(lambda m: "Question 2 of" in m.body)
    assert await only_live(umar, shown)
    start = await umar.start()
    await umar.wait_for(lambda m: "Question 2 of" in m.body and m.message_id > shown.message_id)
    emulator.redeliver(start)
    latest = await umar.wait_for(lambda m: "Question 2 of" in m.body)
    assert await only_live(umar, latest)
    assert await stored(services, 3004) == {"csat": 4}


async def _sessions_of(services: Services, telegram_id: int) -> list[str]:
    async with services.db.transaction() as connection:
        rows = await connection.execute(
            sa.select(survey_sessions.c.status)
            .join(customers, customers.c.id == survey_sessions.c.customer_id)
            .where(customers.c.telegram_id == telegram_id)
        )
        return [row.status for row in rows]


async def test_concurrent_taps_open_one_session_and_never_fail(
    emulator: BotApiEmulator, services: Services
) -> None:
    port = free_port()
    hook = Webhook(f"http://127.0.0.1:{port}", "127.0.0.1", port, SECRET)
    async with running(services, hook):
        for n in range(4):
            newcomer = emulator.user(3100 + n, language_code="id")
            await newcomer.start("b_JKT01")
            notice = await newcomer.wait_for(has_button("k:y"))
            agree = next(d for d in notice.button_data if d.startswith("k:y"))
            # Ten impatient taps on "I agree" at once.
            await asyncio.gather(*(newcomer.press_raw(notice.message_id, agree) for _ in range(10)))
            await emulator.drained(10)
            await newcomer.wait_for(is_question)
            assert await _sessions_of(services, 3100 + n) == ["open"]
            # Two taps of another branch's link at once.
            await asyncio.gather(newcomer.start("b_MKS01"), newcomer.start("b_MKS01"))
            await emulator.drained(10)
            statuses = await _sessions_of(services, 3100 + n)
            assert statuses.count("open") == 1, statuses
        async with services.db.transaction() as connection:
            rows = await connection.scalar(
                sa.select(sa.func.count())
                .select_from(customers)
                .where(customers.c.telegram_id >= 3100)
            )
        assert rows == 4
    statuses = {attempt.status for attempt in emulator.webhook_log}
    assert statuses == {200}, [a for a in emulator.webhook_log if a.status != 200]
