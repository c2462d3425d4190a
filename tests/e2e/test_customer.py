"""A customer's conversation, end to end: python-telegram-bot over HTTP to the emulator, a real
database, nothing mocked but Telegram's servers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.conversation import answers_so_far
from bot.wiring.runner import running
from bot.wiring.services import Services
from storage import orgs
from storage import sessions as session_store
from storage.models import consents, customers, rollups, survey_sessions
from storage.surveys import create_link, links
from tests.e2e.conftest import has_button, is_question
from tests.e2e.staffing import FakeClock

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
pytestmark = pytest.mark.usefixtures("bot")


def button(message: SimMessage, suffix: str) -> str:
    """The callback data on `message` ending with `suffix` (e.g. ':a:5', ':b', ':d')."""
    found = [data for data in message.button_data if data.endswith(suffix)]
    assert found, f"no button ending {suffix!r} on {message.body!r}: {message.button_data}"
    return found[0]


def labelled(message: SimMessage, label: str) -> str:
    for row in message.buttons:
        for text, data in row:
            if label in text and data:
                return data
    raise AssertionError(f"no button labelled {label!r}: {message.buttons}")


async def step(user: SimUser, message: SimMessage, data: str) -> SimMessage:
    """Press and return the bot's next new or edited message."""
    await user.press(message, data)
    return await user.next_reply()


async def answer_as_promoter(user: SimUser, question: SimMessage) -> SimMessage:
    """The branch survey from its first question: 5 and 10, Yes, both optional ones skipped.
    The outro."""
    question = await step(user, question, button(question, ":a:5"))
    question = await step(user, question, button(question, ":a:10"))
    question = await step(user, question, labelled(question, "Yes"))
    question = await step(user, question, labelled(question, "Skip"))
    return await step(user, question, labelled(question, "Skip"))


def _latest_session(telegram_id: int) -> sa.Select[tuple[int, str]]:
    return (
        sa.select(survey_sessions.c.id, survey_sessions.c.status)
        .join(customers, customers.c.id == survey_sessions.c.customer_id)
        .where(customers.c.telegram_id == telegram_id)
        .order_by(survey_sessions.c.id.desc())
        .limit(1)
    )


async def stored(services: Services, telegram_id: int) -> dict[str, object]:
    """The answers of the customer's latest session, as the engine normalised them."""
    async with services.db.transaction() as connection:
        session_id, _ = (await connection.execute(_latest_session(telegram_id))).one()
        session = await session_store.get(connection, session_id)
        assert session is not None
        return await answers_so_far(connection, session)


async def status_of(services: Services, telegram_id: int) -> str:
    async with services.db.transaction() as connection:
        return (await connection.execute(_latest_session(telegram_id))).one().status


@pytest.fixture
async def digital_link(services: Services) -> str:
    """The deep-link payload of the example organisation's digital-banking survey."""
    async with services.db.transaction() as connection:
        found = [link for link in await links(connection) if link.survey_key == "digital_banking"]
    return f"c_{found[0].token}"


async def test_branch_survey_in_indonesian_with_detractor_follow_up(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    ani = emulator.user(1001, first_name="Ani", language_code="id")
    q = await consent(ani, "b_JKT01")
    assert "Terima kasih sudah berkunjung" in q.body and "Pertanyaan 1 dari" in q.body
    q = await step(ani, q, button(q, ":a:2"))
    assert "Pertanyaan 2 dari" in q.body and "merekomendasikan" in q.body
    q = await step(ani, q, button(q, ":a:3"))
    assert "alasan utama" in q.body
    q = await step(ani, q, labelled(q, "Antrean terlalu lama"))
    q = await step(ani, q, labelled(q, "Tidak"))
    assert "tingkatkan" in q.body
    q = await step(ani, q, labelled(q, "Waktu tunggu"))
    assert "☑️ Waktu tunggu" in str(q.buttons)
    q = await step(ani, q, labelled(q, "Area parkir"))
    q = await step(ani, q, button(q, ":d"))
    assert "Ada hal lain" in q.body
    await ani.send_text("Antrean di teller terlalu lama, mohon ditambah petugas.")
    outro = await ani.next_reply()
    assert "Terima kasih atas waktu" in outro.body and not outro.button_data

    assert await stored(services, 1001) == {
        "csat": 2,
        "nps": 3,
        "main_reason": "waiting",
        "resolved": False,
        "improve": ["waiting_time", "parking"],
        "comment": "Antrean di teller terlalu lama, mohon ditambah petugas.",
    }
    assert await status_of(services, 1001) == "completed"


async def test_branch_survey_in_english_skips_optional_questions(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    bob = emulator.user(1002, first_name="Bob", language_code="en")
    q = await consent(bob, "b_MKS01")
    assert "Thank you for visiting" in q.body and "Question 1 of" in q.body
    q = await step(bob, q, button(q, ":a:5"))
    q = await step(bob, q, button(q, ":a:10"))
    assert "Was the matter" in q.body  # no follow-up for a promoter
    q = await step(bob, q, labelled(q, "Yes"))
    q = await step(bob, q, labelled(q, "Skip"))
    assert "anything else" in q.body
    q = await step(bob, q, labelled(q, "Skip"))
    assert "Thank you for your time" in q.body
    assert await stored(services, 1002) == {
        "csat": 5,
        "nps": 10,
        "resolved": True,
        "improve": None,
        "comment": None,
    }


async def test_back_changes_an_answer_and_the_path(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    cici = emulator.user(1003, language_code="id")
    q = await consent(cici, "b_BDG01")
    q = await step(cici, q, button(q, ":a:4"))
    q = await step(cici, q, button(q, ":a:2"))
    assert "alasan utama" in q.body
    q = await step(cici, q, labelled(q, "Kembali"))
    assert "merekomendasikan" in q.body and "Pertanyaan 2 dari" in q.body
    q = await step(cici, q, button(q, ":a:9"))
    assert "terselesaikan" in q.body  # the detractor question is gone
    q = await step(cici, q, labelled(q, "Ya"))
    q = await step(cici, q, labelled(q, "Lewati"))
    q = await step(cici, q, labelled(q, "Lewati"))
    assert "Terima kasih atas waktu" in q.body
    answers_now = await stored(services, 1003)
    assert "main_reason" not in answers_now and answers_now["nps"] == 9


async def test_digital_survey_by_campaign_link_validates_numbers(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    async with services.db.transaction() as connection:
        from storage.surveys import links

        token = next(
            link.token for link in await links(connection) if link.survey_key == "digital_banking"
        )
    dewi = emulator.user(1004, language_code="en")
    q = await consent(dewi, f"c_{token}")
    q = await step(dewi, q, labelled(q, "Mobile banking app"))
    q = await step(dewi, q, button(q, ":a:2"))  # hard: the problem question will follow
    q = await step(dewi, q, labelled(q, "No"))
    assert "Which problem" in q.body
    q = await step(dewi, q, labelled(q, "OTP"))
    assert "how many times a month" in q.body
    for typed, complaint in (
        ("often", "type a number"),
        ("250", "from 0 to 100"),
        ("2.5", "whole number"),
    ):
        await dewi.send_text(typed)
        assert complaint in (await dewi.next_reply()).body
    await dewi.send_text("12")
    q = await dewi.next_reply()
    assert "one thing" in q.body
    await dewi.send_text("Faster OTP, please.")
    assert "Thank you" in (await dewi.next_reply()).body
    assert await stored(services, 1004) == {
        "channel": "mobile_app",
        "ease": 2,
        "had_problem": False,
        "problem_kind": "otp",
        "monthly_use": 12,
        "suggestion": "Faster OTP, please.",
    }


async def test_a_restarted_bot_continues_at_the_same_question(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    eka = emulator.user(1005, language_code="id")
    q = await consent(eka, "b_JKT01")
    q = await step(eka, q, button(q, ":a:5"))
    assert "Pertanyaan 2 dari" in q.body
    old_question = q
    # A second application on the same database: what a restart or another process sees.
    async with running(services):
        await eka.start()
        resumed = await eka.wait_for(is_question)
        assert "Mari lanjutkan" in resumed.body and "Pertanyaan 2 dari" in resumed.body
        assert not old_question.button_data  # one live copy: the old one lost its buttons
        q = await step(eka, resumed, button(resumed, ":a:10"))
        assert "Pertanyaan 3 dari" in q.body


async def test_declining_stores_only_the_decision(
    emulator: BotApiEmulator, services: Services
) -> None:
    fajar = emulator.user(1006, language_code="id")
    await fajar.start("b_JKT01")
    notice = await fajar.wait_for(has_button("k:n"))
    assert "Pemberitahuan Privasi" in notice.body
    await fajar.press(notice, button(notice, "k:n:id:b_JKT01"))
    reply = await fajar.wait_for(lambda m: m.message_id != notice.message_id)
    assert "Tidak ada yang disimpan" in reply.body
    async with services.db.transaction() as connection:
        row = (
            await connection.execute(sa.select(customers).where(customers.c.telegram_id == 1006))
        ).one()
        decisions = (await connection.execute(sa.select(consents.c.decision))).scalars().all()
        count = await connection.scalar(sa.select(sa.func.count()).select_from(survey_sessions))
    assert row.consent_version is None and row.branch_id is None and row.name is None
    assert decisions == ["decline"] and count == 0


async def test_the_notice_switches_language_before_anything_is_stored(
    emulator: BotApiEmulator, services: Services
) -> None:
    gita = emulator.user(1007, language_code="id")
    await gita.start("b_JKT01")
    notice = await gita.wait_for(has_button("k:y"))
    edited = await step(gita, notice, labelled(notice, "English"))
    assert "Privacy Notice" in edited.body and "I agree" in str(edited.buttons)
    q = await step(gita, edited, labelled(edited, "I agree"))
    q = await gita.wait_for(is_question)
    assert "Question 1 of" in q.body
    async with services.db.transaction() as connection:
        locale = await connection.scalar(
            sa.select(customers.c.locale).where(customers.c.telegram_id == 1007)
        )
    assert locale == "en"


async def test_language_command_switches_mid_survey(
    emulator: BotApiEmulator, consent: Consent
) -> None:
    hana = emulator.user(1008, language_code="id")
    await consent(hana, "b_JKT01")
    await hana.send_text("/language")
    menu = await hana.next_reply()
    await hana.press(menu, labelled(menu, "English"))
    again = await hana.wait_for(is_question)
    assert "Question 1 of" in again.body and "How satisfied" in again.body


async def test_forged_and_stale_presses_change_nothing(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    ika = emulator.user(1009, language_code="en")
    joko = emulator.user(1010, language_code="en")
    q = await consent(ika, "b_JKT01")
    other = await consent(joko, "b_JKT01")
    session_id = int(button(q, ":a:5").split(":")[1])
    forged = [
        (ika, q.message_id, button(other, ":a:5")),  # someone else's session
        (ika, q.message_id, f"q:{session_id}:2:a:3"),  # drawn for a version not yet reached
        (ika, q.message_id, f"q:{session_id}:1:a:9"),  # out of range for a 1-5 rating
        (ika, q.message_id, f"q:{session_id}:1:a:" + "9" * 40),  # not a valid value at all
        (ika, q.message_id, "q:" + "1" * 70),  # more than 64 bytes
        (ika, q.message_id, "zz:nonsense"),
    ]
    for user, message_id, data in forged:
        update = await user.press_raw(message_id, data)
        answer = await user.wait_for_answer(update)
        assert answer.text and "no longer active" in answer.text and answer.show_alert
    q = await step(ika, q, button(q, ":a:4"))
    stale = await ika.press_raw(q.message_id, f"q:{session_id}:1:a:1")  # question 1 again
    assert (await ika.wait_for_answer(stale)).text is None  # it shows the current question
    assert "Question 2 of" in q.body and q.button_data
    assert await stored(services, 1009) == {"csat": 4}
    assert await stored(services, 1010) == {}


async def test_a_redelivered_update_records_one_answer(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    lia = emulator.user(1011, language_code="id")
    q = await consent(lia, "b_JKT01")
    update = await lia.press(q, button(q, ":a:3"))
    await lia.next_reply()
    emulator.redeliver(update)
    emulator.redeliver(update)
    await lia.expect_silence(0.5)
    async with services.db.transaction() as connection:
        version = await connection.scalar(sa.select(survey_sessions.c.version))
    assert version == 2  # one step taken, however often the press arrived
    assert await stored(services, 1011) == {"csat": 3}


async def test_commands_and_stray_input_get_one_sentence(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    mira = emulator.user(1012, language_code="id")
    await mira.send_text("/frobnicate")
    assert "tidak mengenal perintah" in (await mira.next_reply()).body
    await mira.send_text("halo")
    assert "/start" in (await mira.next_reply()).body
    await mira.start("b_NOPE99")
    notice = await mira.wait_for(has_button("k:y"))
    await mira.press(notice, button(notice, "k:y:id:b_NOPE99"))
    reply = await mira.wait_for(lambda m: m.message_id != notice.message_id)
    assert "tidak berlaku" in reply.body
    await mira.send_text("/help")
    assert "/language" in (await mira.next_reply()).body
    await mira.send_text("/privacy")
    assert "UU No. 27 Tahun 2022" in (await mira.next_reply()).body
    await mira.send_text("/stop")
    assert "tidak akan menerima" in (await mira.next_reply()).body
    async with services.db.transaction() as connection:
        opted_out = await connection.scalar(
            sa.select(customers.c.opted_out).where(customers.c.telegram_id == 1012)
        )
    assert opted_out is True
    await mira.start()
    await mira.next_reply()
    async with services.db.transaction() as connection:
        opted_out = await connection.scalar(
            sa.select(customers.c.opted_out).where(customers.c.telegram_id == 1012)
        )
    assert opted_out is False


async def test_digital_survey_in_indonesian_by_typing(
    emulator: BotApiEmulator, services: Services, consent: Consent, digital_link: str
) -> None:
    nur = emulator.user(1013, language_code="id")
    q = await consent(nur, digital_link)
    assert "Pertanyaan 1 dari" in q.body
    await nur.send_text("Internet banking (situs web)")  # an option may be typed too
    q = await nur.next_reply()
    assert "Pertanyaan 2 dari" in q.body
    q = await step(nur, q, button(q, ":a:6"))
    q = await step(nur, q, labelled(q, "Ya"))
    assert "Kendala apa" in q.body
    q = await step(nur, q, labelled(q, "Menu membingungkan"))
    await nur.send_text("1.500")
    assert "tanpa pemisah ribuan" in (await nur.next_reply()).body
    await nur.send_text("8")
    q = await nur.next_reply()
    q = await step(nur, q, labelled(q, "Lewati"))
    assert "Terima kasih" in q.body
    assert await stored(services, 1013) == {
        "channel": "internet_banking",
        "ease": 6,
        "had_problem": True,
        "problem_kind": "confusing",
        "monthly_use": 8,
        "suggestion": None,
    }


async def test_the_conversation_keeps_the_time_of_its_clock(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    """Years away from real time: the response's moments and roll-up day, a link's expiry and
    the re-survey guard all follow the clock the service was given."""
    clock = FakeClock(datetime(2031, 7, 14, 20, 30, tzinfo=UTC))  # 15 July in Makassar (WITA)
    services.conversations.clock = clock
    async with services.db.transaction() as connection:
        branch = await orgs.branch_by_code(connection, "MKS01")
        assert branch is not None
        # Valid for years by real time, expired a day ago by the clock.
        lapsed = await create_link(
            connection, "branch_service", branch.id, expires_at=clock() - timedelta(days=1)
        )
    bob = emulator.user(1090, language_code="en")
    q = await consent(bob, "b_MKS01")
    clock.advance(minutes=3)  # answered three minutes after opening
    q = await answer_as_promoter(bob, q)
    assert "Thank you for your time" in q.body
    async with services.db.transaction() as connection:
        started, completed = (
            await connection.execute(
                sa.select(survey_sessions.c.started_at, survey_sessions.c.completed_at).where(
                    survey_sessions.c.branch_id == branch.id
                )
            )
        ).one()
        active = await connection.scalar(
            sa.select(customers.c.last_active_at).where(customers.c.telegram_id == 1090)
        )
        days = set(
            await connection.scalars(
                sa.select(rollups.c.day).where(rollups.c.branch_id == branch.id)
            )
        )
    assert started == clock() - timedelta(minutes=3) and completed == active == clock()
    assert days == {date(2031, 7, 15)}  # the branch's local day by the clock

    await bob.start(f"c_{lapsed.token}")
    assert "not valid or has expired" in (await bob.next_reply()).body
    clock.advance(hours=23)
    await bob.start("b_MKS01")
    assert "already answered this survey recently" in (await bob.next_reply()).body
    clock.advance(hours=2)  # 25 hours after the response: it may be given again
    await bob.start("b_MKS01")
    assert is_question(await bob.next_reply())
