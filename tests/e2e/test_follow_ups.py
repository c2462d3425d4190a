"""The closed loop, end to end: a detractor finishing alerts the opted-in staff of that branch,
who take it and resolve it with a note; /followups shows the wait; what stays unresolved
escalates once to the region's admins; the outro promises a follow-up only when someone
will make it. Real bot, real emulator, real database; the clock is the test's."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.access import Role
from bot.wiring.services import Services
from flows import load_survey
from storage import orgs
from storage import staff as staff_store
from storage.models import audit_log, follow_ups
from tests.e2e.campaigning import use_clock
from tests.e2e.staffing import FakeClock, StaffUser, add_staff, log_in

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
pytestmark = pytest.mark.usefixtures("bot")

ROOT = Path(__file__).resolve().parents[2]
PROMISE = ("Our team will review your answers", "Tim kami akan mempelajari jawaban Anda")
TICK = 2.5  # seconds: longer than the follow-up job's interval


def is_alert(message: SimMessage) -> bool:
    return "Follow-up #" in message.body and any(d.startswith("fu:") for d in message.button_data)


async def finish_survey(
    user: SimUser, consent: Consent, branch: str, csat: int, nps: int, comment: str | None = None
) -> SimMessage:
    """Answer the branch survey with these scores; the first answer of every other question,
    skipping what may be skipped, and `comment` typed at the last one. The outro."""
    message = await consent(user, f"b_{branch}")
    for value in (csat, nps):
        data = next(d for d in message.button_data if d.endswith(f":a:{value}"))
        await user.press(message, data)
        message = await user.next_reply()
    while message.button_data:
        if comment is not None and ("anything else" in message.body or "hal lain" in message.body):
            await user.send_text(comment)
            return await user.next_reply()
        skip = [d for d in message.button_data if d.endswith(":s")]
        await user.press(message, (skip or message.button_data)[0])
        message = await user.next_reply()
    return message


async def staff(
    services: Services,
    emulator: BotApiEmulator,
    clock: FakeClock,
    user_id: int,
    role: Role,
    scope: str,
    *,
    alerts: bool,
) -> StaffUser:
    member = await add_staff(services, emulator.user(user_id), role, scope)
    await log_in(member, clock)
    if alerts:
        await member.user.send_text("/alerts on")
        reply = await member.user.next_reply()
        assert "Alerts are on" in reply.body
    return member


def is_alert_id(message: SimMessage) -> bool:
    return "Tindak lanjut #" in message.body and "Ambil" in message.button_labels


def promised(outro: SimMessage) -> bool:
    return any(words in outro.body for words in PROMISE)


@pytest.fixture
def clock(services: Services) -> FakeClock:
    clock = FakeClock()
    use_clock(services, clock)
    return clock


async def _audited(services: Services, actor: str) -> list[tuple[str, str | None, str]]:
    async with services.db.transaction() as connection:
        rows = await connection.execute(
            sa.select(audit_log.c.action, audit_log.c.target, audit_log.c.outcome)
            .where(audit_log.c.actor == actor, audit_log.c.action.like("%follow%"))
            .order_by(audit_log.c.id)
        )
        return [tuple(row) for row in rows]


async def _follow_up(services: Services) -> sa.Row:
    async with services.db.transaction() as connection:
        return (await connection.execute(sa.select(follow_ups))).one()


async def test_a_detractor_alerts_the_branch_staff_who_asked_and_they_close_the_loop(
    emulator: BotApiEmulator, services: Services, consent: Consent, clock: FakeClock
) -> None:
    dewi = await staff(services, emulator, clock, 7001, Role.VIEWER, "branch:JKT01", alerts=True)
    sari = await staff(services, emulator, clock, 7002, Role.VIEWER, "branch:JKT01", alerts=False)
    rudi = await staff(services, emulator, clock, 7003, Role.ADMIN, "region:TIM", alerts=True)
    wati = await staff(services, emulator, clock, 7004, Role.ADMIN, "region:BAR", alerts=False)
    async with services.db.transaction() as connection:
        await staff_store.update(connection, wati.id, locale="id")
    await wati.user.send_text("/alerts on")
    assert "Peringatan aktif" in (await wati.user.next_reply()).body
    for member in (dewi, sari, rudi, wati):
        member.user.mark()

    ani = emulator.user(7101, language_code="en")
    outro = await finish_survey(ani, consent, "JKT01", 2, 3, "The queue at the teller was long.")
    assert promised(outro)
    alert = await dewi.user.wait_for(is_alert, timeout=5)
    assert "KC Jakarta Sudirman (JKT01)" in alert.body and "Branch Service Survey" in alert.body
    assert "⚠️ NPS (nps) 3/10" in alert.body and "⚠️ CSAT (csat) 2/5" in alert.body
    assert "«The queue at the teller was long.»" in alert.body
    assert str(ani.id) not in alert.body and (ani.first_name or "-") not in alert.body
    in_indonesian = await wati.user.wait_for(is_alert_id, timeout=5)  # the region's admin
    assert "Cabang: KC Jakarta Sudirman (JKT01)" in in_indonesian.body
    assert "Survei Layanan Kantor Cabang" in in_indonesian.body
    assert "Komentar: «The queue at the teller was long.»" in in_indonesian.body
    await sari.user.expect_silence(TICK)  # alerts off
    await rudi.user.expect_silence(0)  # another region

    dewi.user.mark()
    budi = emulator.user(7102, language_code="en")
    assert promised(await finish_survey(budi, consent, "JKT01", 5, 10, "All good."))
    await dewi.user.expect_silence(TICK)  # a promoter alerts nobody

    take = next(d for d in alert.button_data if d.startswith("fu:t:"))
    number = take.removeprefix("fu:t:")
    await dewi.user.press(alert, take)
    await dewi.user.wait_for(lambda m: f"You took follow-up #{number}" in m.body)
    assert dewi.user.message(alert.message_id).button_labels == ["Resolve"]  # type: ignore[union-attr]

    # Forged presses: another region's admin, bad data, data longer than Telegram allows.
    for data, sentence in (
        (take, "That is outside your scope."),
        ("fu:x:1", "not one of this bot's follow-up buttons"),
        ("fu:t:" + "9" * 70, "not one of this bot's follow-up buttons"),
    ):
        await rudi.user.press_raw(1, data)
        assert sentence in (await rudi.user.next_reply()).body

    clock.advance(hours=3)
    await dewi.user.send_text("/followups")
    listing = (await dewi.user.next_reply()).body
    assert f"#{number} · JKT01 · taken · waiting 3 hours" in listing

    await dewi.user.press(alert, f"fu:r:{number}")
    assert "send a short note" in (await dewi.user.next_reply()).body
    await dewi.user.send_text("Called the customer; a second teller opens at noon.")
    assert f"Follow-up #{number} is resolved" in (await dewi.user.next_reply()).body
    row = await _follow_up(services)
    assert (row.status, row.taken_by, row.resolved_by) == ("resolved", dewi.id, dewi.id)
    assert row.note == "Called the customer; a second teller opens at noon."

    await dewi.user.press_raw(alert.message_id, take)  # from another of her devices
    assert f"Follow-up #{number} is resolved already." in (await dewi.user.next_reply()).body
    await dewi.user.send_text("/followups")
    assert "No open follow-ups" in (await dewi.user.next_reply()).body

    target = f"follow_up:{number}"
    assert await _audited(services, f"staff:{dewi.id}") == [
        ("followup.take", target, "allowed"),
        ("followups.list", None, "allowed"),
        ("followup.resolve", target, "allowed"),  # the press that asks for the note
        ("followup.resolve", target, "allowed"),  # the note
        ("followup.take", target, "refused"),
        ("followups.list", None, "allowed"),
    ]
    assert ("followup.take", target, "refused") in await _audited(services, f"staff:{rudi.id}")
    async with services.db.transaction() as connection:
        toggles = await connection.scalar(
            sa.select(sa.func.count()).where(
                audit_log.c.action == "alerts.set", audit_log.c.target == "on"
            )
        )
    assert toggles == 3  # dewi, rudi and wati

    await ani.send_text("/mydata")  # the customer sees what became of their answers
    document = await ani.wait_for(lambda m: m.document is not None)
    (answered,) = json.loads(document.content or b"")["surveys"]
    handled = answered["follow_up"]
    assert (handled["status"], handled["note"]) == ("resolved", row.note)
    assert handled["opened_at"] < handled["resolved_at"]
    assert answered["may_contact"] is None  # the branch survey does not ask


async def test_an_unresolved_follow_up_escalates_once_to_the_region_admins(
    emulator: BotApiEmulator, services: Services, consent: Consent, clock: FakeClock
) -> None:
    dewi = await staff(services, emulator, clock, 7201, Role.VIEWER, "branch:BDG01", alerts=True)
    bar = await staff(services, emulator, clock, 7202, Role.ADMIN, "region:BAR", alerts=False)
    tim = await staff(services, emulator, clock, 7203, Role.ADMIN, "region:TIM", alerts=False)
    boss = await staff(services, emulator, clock, 7204, Role.SUPER_ADMIN, "all", alerts=False)
    await finish_survey(emulator.user(7301, language_code="id"), consent, "BDG01", 1, 0)
    await dewi.user.wait_for(is_alert, timeout=5)
    for member in (bar, tim, boss):
        member.user.mark()

    clock.advance(hours=47)
    await bar.user.expect_silence(TICK)
    clock.advance(hours=2)
    escalated = await bar.user.wait_for(lambda m: "has waited" in m.body, timeout=5)
    assert "has waited 2 days without being resolved" in escalated.body
    assert "KC Bandung Asia Afrika (BDG01)" in escalated.body
    bar.user.mark()
    await bar.user.expect_silence(TICK)  # once only
    await tim.user.expect_silence(0)
    await boss.user.expect_silence(0)  # the region has its own admin

    async with services.db.transaction() as connection:
        rows = (
            await connection.execute(
                sa.select(audit_log.c.actor, audit_log.c.details).where(
                    audit_log.c.action == "followup.escalate"
                )
            )
        ).all()
    assert [(actor, details) for actor, details in rows] == [
        ("system", f'{{"to":["staff:{bar.id}"]}}')
    ]
    # The admin takes it from the escalation itself, once logged in again (days went by).
    await log_in(bar, clock)
    take = next(d for d in escalated.button_data if d.startswith("fu:t:"))
    await bar.user.press(escalated, take)
    await bar.user.wait_for(lambda m: "You took follow-up" in m.body)


async def test_without_a_region_admin_escalation_reaches_the_super_admins(
    emulator: BotApiEmulator, services: Services, consent: Consent, clock: FakeClock
) -> None:
    await staff(services, emulator, clock, 7401, Role.VIEWER, "branch:MKS01", alerts=True)
    boss = await staff(services, emulator, clock, 7402, Role.SUPER_ADMIN, "all", alerts=False)
    await finish_survey(emulator.user(7501, language_code="en"), consent, "MKS01", 1, 2)
    clock.advance(hours=49)
    found = await boss.user.wait_for(lambda m: "has waited" in m.body, timeout=5)
    assert "KC Makassar Panakkukang (MKS01)" in found.body


async def test_the_outro_promises_a_follow_up_only_while_someone_takes_alerts(
    emulator: BotApiEmulator, services: Services, consent: Consent, clock: FakeClock
) -> None:
    customers = iter(range(7601, 7690))

    async def outro(branch: str) -> SimMessage:
        user = emulator.user(next(customers), language_code="id")
        return await finish_survey(user, consent, branch, 1, 1, "Lama sekali.")

    assert not promised(await outro("JKT01"))
    dewi = await staff(services, emulator, clock, 7699, Role.VIEWER, "branch:JKT01", alerts=True)
    assert promised(await outro("JKT01"))
    assert not promised(await outro("MKS01"))  # nobody there takes alerts
    await dewi.user.send_text("/alerts")
    assert "Alerts are on" in (await dewi.user.next_reply()).body
    await dewi.user.send_text("/alerts off")
    assert "Alerts are off" in (await dewi.user.next_reply()).body
    assert not promised(await outro("JKT01"))
    await dewi.user.send_text("/alerts maybe")
    assert "Usage: /alerts [on|off]" in (await dewi.user.next_reply()).body
    async with services.db.transaction() as connection:
        count = await connection.scalar(sa.select(sa.func.count()).select_from(follow_ups))
    assert count == 1  # only the one answered while alerts were on


async def test_thresholds_from_the_survey_file_decide_what_alerts(
    emulator: BotApiEmulator, services: Services, consent: Consent, clock: FakeClock
) -> None:
    text = (ROOT / "surveys" / "branch_service.yaml").read_text(encoding="utf-8")
    text = text.replace("\nquestions:", "\nalerts: {nps: {lte: 3}}\nquestions:", 1)
    await services.catalog.register(load_survey(text), text)
    async with services.db.transaction() as connection:
        await orgs.set_survey(connection, ["JKT01"], "branch_service")
    dewi = await staff(services, emulator, clock, 7801, Role.VIEWER, "branch:JKT01", alerts=True)
    dewi.user.mark()

    # CSAT 1 and NPS 5 would alert by the default rule; this file alerts on NPS 0-3 only.
    await finish_survey(emulator.user(7802, language_code="en"), consent, "JKT01", 1, 5)
    await dewi.user.expect_silence(TICK)
    await finish_survey(emulator.user(7803, language_code="en"), consent, "JKT01", 5, 3)
    alert = await dewi.user.wait_for(is_alert, timeout=5)
    assert "⚠️ NPS (nps) 3/10" in alert.body and "⚠️ CSAT" not in alert.body
