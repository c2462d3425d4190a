"""The survey library in chat, through the real bot over HTTP: uploads validated and versioned,
/surveys within scope, /survey_use only inside an admin's scope, previews that record nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from telegram.ext import Application

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.library import MAX_SURVEY_BYTES
from bot.wiring.services import Services
from storage import audit, orgs
from storage import surveys as survey_store
from storage.models import answers, customers, meta, survey_sessions
from tests.e2e.conftest import has_button, is_question
from tests.e2e.staffing import code_now, staff_member

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "fixtures" / "surveys" / "broken"

LOBBY = b"""spec: 1
id: lobby
default_locale: id
locales: [id, en]
title: {id: Lobi, en: Lobby}
intro: {id: Halo, en: Hello there}
outro: {id: Terima kasih, en: Thanks for trying}
questions:
  - id: score
    type: rating
    scale: 5
    text: {id: "Nilai?", en: "Your score?"}
  - id: why
    type: text
    text: {id: "Kenapa?", en: Tell us why}
"""


def _reply_to(user: SimUser) -> Callable[[SimMessage], bool]:
    return lambda message: message.chat_id == user.id


async def _count(services: Services, table: sa.Table) -> int:
    async with services.db.transaction() as connection:
        return int(await connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def _latest(services: Services, key: str) -> int | None:
    async with services.db.transaction() as connection:
        found = await survey_store.latest(connection, key)
    return None if found is None else found.version


async def _audit(services: Services, action: str) -> list[audit.AuditEntry]:
    async with services.db.transaction() as connection:
        rows = await audit.entries(connection, limit=200)
    return [row for row in rows if row.action == action]


async def test_an_editor_uploads_surveys_and_sees_every_problem(
    bot: Application, emulator: BotApiEmulator, services: Services
) -> None:
    editor, _ = await staff_member(services, emulator, 501, "editor", "all")

    await editor.send_document(LOBBY, "lobby.yaml")
    stored = await editor.next_reply()
    assert "Survey lobby stored as version 1" in stored.body
    await editor.send_document(LOBBY, "lobby.yaml")
    assert "unchanged" in (await editor.next_reply()).body
    await editor.send_document(LOBBY.replace(b"Your score?", b"Your mark?"), "lobby.yaml")
    assert "version 2" in (await editor.next_reply()).body
    assert await _latest(services, "lobby") == 2

    broken = BROKEN / "unknown_keys.yaml"
    await editor.send_document(broken.read_bytes(), "unknown_keys.yaml")
    report = (await editor.next_reply()).body
    expected = (BROKEN / "unknown_keys.errors").read_text(encoding="utf-8").splitlines()
    assert f"nothing was stored. Problems: {len(expected)}" in report
    for line in expected:
        assert line in report

    await editor.send_document(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.png")
    assert "the file is not UTF-8 text" in (await editor.next_reply()).body
    await editor.send_document(b"id: [unclosed\nquestions: {", "notes.txt")
    assert "the text is not valid YAML" in (await editor.next_reply()).body
    big = LOBBY + b"#" * MAX_SURVEY_BYTES
    await editor.send_document(big, "big.yaml")
    assert "too large" in (await editor.next_reply()).body
    assert await _latest(services, "lobby") == 2

    uploads = await _audit(services, "survey.upload")
    assert len(uploads) == 7
    assert [row.outcome for row in uploads].count("refused") == 1  # the oversized file


async def test_problems_are_listed_in_the_readers_language(
    bot: Application, emulator: BotApiEmulator, services: Services
) -> None:
    editor, _ = await staff_member(
        services, emulator, 502, "editor", "all", language_code="id", name="Editor"
    )
    await editor.send_document((BROKEN / "wrong_types.yaml").read_bytes(), "wrong_types.yaml")
    report = (await editor.next_reply()).body
    assert "bukan survei yang sah" in report
    english = (BROKEN / "wrong_types.errors").read_text(encoding="utf-8").splitlines()
    paths = [line.split(": ", 1)[0] for line in english]
    for path, line in zip(paths, english, strict=True):
        assert f"{path}: " in report  # every problem, at its path
        assert line not in report  # and not in English


async def test_a_new_version_never_changes_a_session_in_flight(
    bot: Application,
    emulator: BotApiEmulator,
    services: Services,
    consent: Callable[[SimUser, str | None], Awaitable[SimMessage]],
) -> None:
    editor, _ = await staff_member(services, emulator, 503, "editor", "all")
    customer = emulator.user(9001, "Budi")
    first = await consent(customer, "b_JKT01")
    assert is_question(first)

    source = (ROOT / "surveys" / "branch_service.yaml").read_bytes()
    changed = source.replace(
        b"Seberapa besar kemungkinan Anda", b"PERTANYAAN BARU: seberapa mungkin Anda"
    )
    await editor.send_document(changed, "branch_service.yaml")
    assert "stored as version 2" in (await editor.next_reply()).body

    await customer.press(first, next(d for d in first.button_data if d.endswith(":a:5")))
    second = await customer.wait_for(lambda m: "kemungkinan" in m.body or "BARU" in m.body)
    assert "Seberapa besar kemungkinan Anda" in second.body
    assert "BARU" not in second.body

    newcomer = emulator.user(9002, "Citra")
    first_new = await consent(newcomer, "b_JKT01")
    await newcomer.press(first_new, next(d for d in first_new.button_data if d.endswith(":a:5")))
    assert "PERTANYAAN BARU" in (await newcomer.wait_for(is_question)).body


async def test_a_customers_document_is_not_a_survey(
    bot: Application, emulator: BotApiEmulator, services: Services
) -> None:
    customer = emulator.user(9003, "Dewi", language_code="en")
    await customer.send_document(LOBBY, "lobby.yaml")
    reply = await customer.next_reply()
    assert reply.body == "Please answer with the buttons, or type your answer as text."
    assert await _latest(services, "lobby") is None
    assert await _audit(services, "survey.upload") == []

    forged = await customer.press_raw(reply.message_id, "q:0:1:a:5")  # a preview's button
    assert (await customer.wait_for_answer(forged)).text is not None
    assert await _count(services, survey_sessions) == 0
    assert await _count(services, answers) == 0


async def test_a_viewer_may_not_upload_or_list_and_an_editor_lists_within_scope(
    bot: Application, emulator: BotApiEmulator, services: Services
) -> None:
    viewer, _ = await staff_member(services, emulator, 504, "viewer", "all")
    await viewer.send_document(LOBBY, "lobby.yaml")
    assert (await viewer.next_reply()).body == "Your role does not allow this."
    await viewer.send_text("/surveys")
    assert (await viewer.next_reply()).body == "Your role does not allow this."
    await viewer.send_text("/survey_preview branch_service")
    assert (await viewer.next_reply()).body == "Your role does not allow this."
    assert await _latest(services, "lobby") is None

    editor, _ = await staff_member(services, emulator, 505, "editor", "region:TIM")
    await editor.send_text("/surveys")
    listing = (await editor.next_reply()).body
    assert "branch_service, version 1; branches: JYP01, MKS01" in listing
    assert "digital_banking, version 1; branches: (none)" in listing
    assert "JKT01" not in listing  # outside the editor's region
    await editor.send_text("/surveys now")
    assert (await editor.next_reply()).body == "Usage: /surveys"


async def test_survey_use_only_inside_the_admins_scope(
    bot: Application,
    emulator: BotApiEmulator,
    services: Services,
    consent: Callable[[SimUser, str | None], Awaitable[SimMessage]],
) -> None:
    admin, _ = await staff_member(services, emulator, 506, "admin", "region:BAR")
    await admin.send_text("/survey_use digital_banking branch:JKT01")
    assert (await admin.next_reply()).body == (
        "Survey digital_banking now opens from the QR codes of branch JKT01: JKT01."
    )
    await admin.send_text("/survey_use digital_banking branch:MKS01")
    assert (await admin.next_reply()).body == "That is outside your scope."
    await admin.send_text("/survey_use digital_banking all")
    assert (await admin.next_reply()).body == "That is outside your scope."
    await admin.send_text("/survey_use no_such_survey region:BAR")
    assert "There is no survey no_such_survey" in (await admin.next_reply()).body
    await admin.send_text("/survey_use digital_banking")
    assert (await admin.next_reply()).body == "Usage: /survey_use <survey> <scope>"

    async with services.db.transaction() as connection:
        branches = {b.code: b.survey_key for b in await orgs.all_branches(connection)}
    assert branches == {"JKT01": "digital_banking", "BDG01": None, "MKS01": None, "JYP01": None}
    refusals = [r for r in await _audit(services, "survey.use") if r.outcome == "refused"]
    assert [r.details["reason"] for r in refusals] == ["usage", "unknown_survey", "scope", "scope"]
    assert all(r.actor.startswith("staff:") for r in refusals)

    editor, _ = await staff_member(services, emulator, 507, "editor", "all")
    await editor.send_text("/survey_use branch_service region:TIM")
    assert (await editor.next_reply()).body == "Your role does not allow this."

    customer = emulator.user(9004, "Eko", language_code="en")
    first = await consent(customer, "b_JKT01")
    assert "digital" in first.body.lower() or "app" in first.body.lower()
    async with services.db.transaction() as connection:
        pinned = await connection.scalar(sa.select(survey_sessions.c.survey_id))
        assert (await survey_store.by_id(connection, pinned)).key == "digital_banking"


async def test_a_preview_runs_the_survey_and_records_nothing(
    bot: Application, emulator: BotApiEmulator, services: Services
) -> None:
    editor, _ = await staff_member(services, emulator, 508, "editor", "all")
    await editor.send_document(LOBBY, "lobby.yaml")
    await editor.next_reply()
    customers_before = await _count(services, customers)

    await editor.send_text("/survey_preview lobby")
    note = await editor.next_reply()
    assert note.body == "Preview: your answers are not recorded."
    first = await editor.wait_for(has_button("q:0:"))
    assert "Hello there" in first.body and "Your score?" in first.body
    await editor.press(first, "q:0:1:a:4")
    second = await editor.wait_for(lambda m: "Tell us why" in m.body)
    assert second.message_id == first.message_id  # edited in place, like a customer's

    await editor.send_text("The queue was short")
    assert "Thanks for trying" in (await editor.next_reply()).body
    assert (await editor.next_reply()).body == "End of the preview. Nothing was recorded."

    await editor.press_raw(first.message_id, "q:0:1:a:5")  # a press after the end
    assert await _count(services, survey_sessions) == 0
    assert await _count(services, answers) == 0
    assert await _count(services, customers) == customers_before == 0
    async with services.db.transaction() as connection:
        kept = await connection.scalars(sa.select(meta.c.value))
    assert not any("queue" in value for value in kept)

    await editor.send_text("/survey_preview no_such_survey")
    assert "There is no survey no_such_survey" in (await editor.next_reply()).body
    assert [r.outcome for r in await _audit(services, "survey.preview")] == [
        "refused",
        "allowed",
    ]


async def test_a_long_report_fits_one_message_and_staff_without_a_session_are_sent_to_login(
    bot: Application, emulator: BotApiEmulator, services: Services
) -> None:
    editor, _ = await staff_member(services, emulator, 509, "editor", "all")
    questions = "".join(
        f"  - {{id: Bad-Id-{n}, type: yesno, text: {{id: Ya, en: Yes}}}}\n" for n in range(300)
    )
    many = LOBBY.split(b"questions:")[0] + b"questions:\n" + questions.encode()
    await editor.send_document(many, "many.yaml")
    report = (await editor.next_reply()).body
    assert "Problems: 300" in report
    assert len(report) <= 4096 and report.endswith("more.")

    await editor.send_text("/logout")
    await editor.next_reply()
    await editor.send_document(LOBBY, "lobby.yaml")
    assert "/login" in (await editor.next_reply()).body
    assert await _latest(services, "lobby") is None


async def test_a_login_code_reaches_login_while_a_preview_is_open(
    bot: Application, emulator: BotApiEmulator, services: Services
) -> None:
    editor, secret = await staff_member(services, emulator, 510, "editor", "all")
    await editor.send_text("/survey_preview branch_service")
    await editor.wait_for(has_button("q:0:"))
    await editor.send_text("/logout")
    await editor.next_reply()

    later = services.staff.clock() + timedelta(seconds=60)  # the next time step
    services.staff.clock = lambda: later
    await editor.send_text("/login")
    assert "6-digit code" in (await editor.next_reply()).body
    await editor.send_text(code_now(services, secret))
    assert "You are logged in" in (await editor.next_reply()).body
