"""Campaign time under a controllable clock: reminders only to those who have not finished,
worded for each, held through each branch's quiet hours in its own time zone; expiry closes
the campaign's open sessions; a customer answering during a blast is answered ahead of it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimUser
from bot.services.campaigns import Plan
from bot.wiring.services import Services
from storage.models import campaigns, customers, survey_sessions
from tests.e2e.campaigning import (
    add_customers,
    admin,
    daytime_clock,
    delivery_counts,
    invitations,
    link_payload,
    use_clock,
    wait_settled,
)
from tests.e2e.conftest import is_question
from tests.e2e.test_customer import answer_as_promoter, button, step

pytestmark = pytest.mark.usefixtures("bot")


async def _open_invitation(user: SimUser) -> None:
    await user.start(link_payload(invitations(user)[-1]))


async def _session_status(services: Services, user: SimUser) -> str:
    async with services.db.transaction() as connection:
        return str(
            await connection.scalar(
                sa.select(survey_sessions.c.status)
                .join(customers, customers.c.id == survey_sessions.c.customer_id)
                .where(customers.c.telegram_id == user.id)
                .order_by(survey_sessions.c.id.desc())
                .limit(1)
            )
        )


async def test_reminders_reach_non_finishers_outside_quiet_hours_in_each_zone(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock(hour=2)  # 09:00 WIB, 10:00 WITA, 11:00 WIT
    use_clock(services, clock)
    done, halfway, silent = await add_customers(services, emulator, "JKT01", 3)
    (makassar,) = await add_customers(services, emulator, "MKS01", 1)
    (jayapura,) = await add_customers(services, emulator, "JYP01", 1)
    everyone = [done, halfway, silent, makassar, jayapura]
    created = await services.campaigns.create(None, Plan("zones", "branch_service", "all"))
    number = created.campaign.id  # type: ignore[union-attr]
    boss = await admin(services, emulator, clock)
    await boss.user.send_text(f"/campaign_launch {number}")
    await wait_settled(services, number, "invite", 5)
    assert all(len(invitations(user)) == 1 for user in everyone)

    await _open_invitation(done)
    q = await done.wait_for(is_question)
    q = await answer_as_promoter(done, q)
    assert "Thank you for your time" in q.body
    await _open_invitation(halfway)
    q = await halfway.wait_for(is_question)
    await step(halfway, q, button(q, ":a:4"))  # then stops

    # A day and a half later, 13:30 UTC: 20:30 in Jakarta, but 21:30 in Makassar and 22:30 in
    # Jayapura, inside their quiet hours.
    clock.advance(hours=35, minutes=30)
    part = await halfway.wait_for(lambda m: "part-way" in m.body, timeout=10)
    assert "Continue the survey" in part.button_labels
    never = await silent.wait_for(lambda m: "reminder" in m.body.lower(), timeout=10)
    assert "Start the survey" in never.button_labels
    await wait_settled(services, number, "remind1", 3)
    counts = await delivery_counts(services, number)
    assert counts[("remind1", "sent")] == 2 and counts[("remind1", "skipped")] == 1
    assert counts[("remind1", "pending")] == 2  # Makassar and Jayapura wait
    assert len(invitations(makassar)) == len(invitations(jayapura)) == 1
    assert len(invitations(done)) == 1  # finished: no reminder

    # 00:30 UTC: 07:30 in Jakarta (quiet), 08:30 in Makassar and 09:30 in Jayapura.
    clock.advance(hours=11)
    for user in (makassar, jayapura):
        await user.wait_for(lambda m: "reminder" in m.body.lower(), timeout=10)
    await wait_settled(services, number, "remind1", 5)
    assert (await delivery_counts(services, number))[("remind1", "sent")] == 4

    # Those who stopped part-way continue where they stopped.
    await _open_invitation(halfway)
    resumed = await halfway.wait_for(is_question)
    assert "Question 2 of" in resumed.body

    # Past the expiry: the campaign ends, its open session is closed, the rest is skipped.
    clock.advance(days=7)
    for _ in range(100):
        async with services.db.transaction() as connection:
            status = await connection.scalar(
                sa.select(campaigns.c.status).where(campaigns.c.id == number)
            )
        if status == "finished":
            break
        await halfway.expect_silence(0.05)
    assert status == "finished"
    assert await _session_status(services, halfway) == "abandoned"
    assert await _session_status(services, done) == "completed"
    counts = await delivery_counts(services, number)
    assert counts.get(("remind2", "sent"), 0) == 0 and counts[("remind2", "skipped")] == 5


async def test_a_customer_answering_during_a_blast_is_answered_ahead_of_it(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    crowd = await add_customers(services, emulator, "BDG01", 120)
    (asker,) = await add_customers(services, emulator, "JKT01", 1)
    created = await services.campaigns.create(None, Plan("big", "branch_service", "branch:BDG01"))
    boss = await admin(services, emulator, clock)
    await boss.user.send_text(f"/campaign_launch {created.campaign.id}")  # type: ignore[union-attr]
    await crowd[30].wait_for(lambda m: "about a minute" in m.body, timeout=10)

    before = emulator.calls["sendMessage"]
    await asker.send_text("/help")
    await asker.next_reply(timeout=5)
    between = emulator.calls["sendMessage"] - before
    assert between <= 3, f"{between} messages went out before the reply"
    assert not invitations(crowd[-1])  # the blast was still going
    await crowd[-1].wait_for(lambda m: "about a minute" in m.body, timeout=15)
    assert emulator.count_429 == 0
    # The launcher watched one message: a progress bar edited every few seconds, then the report.
    report = await boss.user.wait_for(lambda m: "invitations done" in m.body, timeout=10)
    assert report.edits >= 1 and "Sent 120 · failed 0 · blocked 0 of 120" in report.body
    assert len([m for m in boss.user.messages if "Sent " in m.body]) == 1
