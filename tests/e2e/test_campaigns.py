"""Campaigns through the real bot and emulator: setting one up in chat, the dry run, the paced
blast with its progress message, faults mid-blast, blocked customers, the cooldown."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator
from bot.services.campaigns import Plan
from bot.wiring.services import Services
from storage import campaigns as campaign_store
from storage.models import audit_log, customers
from tests.e2e.campaigning import (
    add_customers,
    admin,
    daytime_clock,
    deliveries_of,
    delivery_counts,
    invitations,
    link_payload,
    use_clock,
    wait_settled,
)
from tests.e2e.conftest import is_question
from tests.e2e.staffing import code

pytestmark = pytest.mark.usefixtures("bot")


def _press_label(message, label: str) -> str:  # type: ignore[no-untyped-def]
    for row in message.buttons:
        for text, data in row:
            if text == label and data:
                return data
    raise AssertionError(f"no button {label!r}: {message.buttons}")


async def _wait_all_invited(users) -> None:  # type: ignore[no-untyped-def]
    for user in users:
        await user.wait_for(lambda m: "takes about a minute" in m.body, timeout=20)


async def test_guided_setup_dry_run_and_a_paced_blast(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    targets = await add_customers(services, emulator, "JKT01", 45)
    await add_customers(services, emulator, "JKT01", 2, opted_out=True)
    await add_customers(services, emulator, "JKT01", 1, blocked=True)
    await add_customers(services, emulator, "JKT01", 3, consent_version=None)
    outside = await add_customers(services, emulator, "MKS01", 2)
    boss = await admin(services, emulator, clock, scope="region:BAR")

    await boss.user.send_text("/campaign_new")
    ask = await boss.user.wait_for(lambda m: "which survey" in m.body)
    await boss.user.press(ask, _press_label(ask, "branch_service"))
    ask = await boss.user.wait_for(lambda m: "which branch or region" in m.body)
    assert "branch:MKS01" not in ask.button_labels  # outside the admin's scope
    await boss.user.press(ask, _press_label(ask, "branch:JKT01"))
    ask = await boss.user.wait_for(lambda m: "When should it start" in m.body)
    await boss.user.press(ask, _press_label(ask, "Now"))
    confirm = await boss.user.wait_for(lambda m: "Launch it now?" in m.body)
    assert "Would invite 45 customers now." in confirm.body
    assert "no consent to the current notice 3" in confirm.body
    assert "opted out 2" in confirm.body and "blocked the bot 1" in confirm.body
    await boss.user.press(confirm, _press_label(confirm, "Launch"))
    launched = await boss.user.wait_for(lambda m: "is launched" in m.body)
    campaign_id = int(launched.body.split("Campaign ")[1].split()[0])

    await _wait_all_invited(targets)
    report = await boss.user.wait_for(lambda m: "invitations done" in m.body, timeout=10)
    assert "Sent 45 · failed 0 · blocked 0 of 45" in report.body
    assert emulator.count_429 == 0
    assert all(len(invitations(user)) == 1 for user in targets)
    assert all(not invitations(user) for user in outside)
    counts = await delivery_counts(services, campaign_id)
    assert counts[("invite", "sent")] == 45 and counts[("remind1", "pending")] == 45

    # The invitation opens the pinned survey.
    payload = link_payload(invitations(targets[0])[0])
    assert payload == f"k_{campaign_id}"
    await targets[0].start(payload)
    assert is_question(await targets[0].wait_for(is_question))

    await boss.user.send_text(f"/campaign {campaign_id}")
    shown = await boss.user.wait_for(lambda m: f"Campaign {campaign_id}" in m.body)
    assert "Invited 45: sent 45, waiting 0, failed 0, blocked 0" in shown.body
    async with services.db.transaction() as connection:
        audited = await connection.scalar(
            sa.select(sa.func.count()).where(
                audit_log.c.action == "campaign.launch", audit_log.c.outcome == "allowed"
            )
        )
    assert audited == 1


async def test_429_403_and_server_errors_mid_blast(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    users = await add_customers(services, emulator, "BDG01", 30)
    gone, broken = users[10], users[20]
    emulator.fail(
        "sendMessage",
        error_code=403,
        description="Forbidden: bot was blocked by the user",
        chat_id=gone.id,
        times=None,
    )
    emulator.fail(
        "sendMessage", error_code=502, description="Bad Gateway", chat_id=broken.id, times=None
    )
    emulator.fail("sendMessage", error_code=429, retry_after=1, chat_id=users[5].id)
    created = await services.campaigns.create(
        None, Plan("faults", "branch_service", "branch:BDG01")
    )
    boss = await admin(services, emulator, clock)
    await boss.user.send_text(f"/campaign_launch {created.campaign.id}")  # type: ignore[union-attr]
    report = await boss.user.wait_for(lambda m: "invitations done" in m.body, timeout=30)
    assert "Sent 28 · failed 1 · blocked 1 of 30" in report.body
    rows = {
        row.customer_id: row
        for row in await deliveries_of(services, created.campaign.id)
        if row.kind == "invite"
    }  # type: ignore[union-attr]
    assert sorted(row.status for row in rows.values()).count("sent") == 28
    assert all(len(invitations(u)) == 1 for u in users if u not in (gone, broken))
    assert len(invitations(users[5])) == 1  # sent once, after the pause the 429 asked for
    assert emulator.calls["sendMessage"] >= 30
    async with services.db.transaction() as connection:
        blocked = await connection.scalar(
            sa.select(customers.c.blocked).where(customers.c.telegram_id == gone.id)
        )
    assert blocked is True
    failed = [row for row in rows.values() if row.status == "failed"]
    assert len(failed) == 1 and failed[0].error == "network"


async def test_blocking_the_bot_takes_a_customer_out_and_unblocking_back(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    users = await add_customers(services, emulator, "JKT01", 3)
    users[0].block()
    await emulator.drained()

    async def dry_run() -> tuple[int, dict[str, int]]:
        created = await services.campaigns.create(None, Plan("x", "branch_service", "branch:JKT01"))
        report = created.report  # type: ignore[union-attr]
        return report.targeted, report.excluded

    for _ in range(50):
        if (await dry_run())[1].get("blocked"):
            break
        await asyncio.sleep(0.05)
    assert await dry_run() == (2, {"blocked": 1})
    users[0].unblock()
    await emulator.drained()
    for _ in range(50):
        if (await dry_run())[0] == 3:
            break
        await asyncio.sleep(0.05)
    assert await dry_run() == (3, {})


async def test_a_customer_is_invited_once_per_cooldown_across_campaigns(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    customers = await add_customers(services, emulator, "JKT01", 4)
    first = await services.campaigns.create(None, Plan("one", "branch_service", "branch:JKT01"))
    boss = await admin(services, emulator, clock)
    await boss.user.send_text(f"/campaign_launch {first.campaign.id}")  # type: ignore[union-attr]
    await wait_settled(services, first.campaign.id, "invite", 4)  # type: ignore[union-attr]
    await customers[0].send_text("/mydata")  # what a customer was sent is their data too
    document = await customers[0].wait_for(lambda m: m.document is not None)
    received = json.loads(document.content or b"")["invitations"]
    assert [(r["campaign"], r["kind"], r["status"]) for r in received] == [
        ("one", "invite", "sent"),
        ("one", "remind1", "pending"),  # planned, and re-checked when due
        ("one", "remind2", "pending"),
    ]
    assert received[0]["sent_at"] is not None and received[1]["sent_at"] is None
    clock.advance(days=10)
    second = await services.campaigns.create(None, Plan("two", "digital_banking", "region:BAR"))
    assert second.report.targeted == 0  # type: ignore[union-attr]
    assert second.report.excluded == {"cooldown": 4}  # type: ignore[union-attr]
    clock.advance(days=21)
    third = await services.campaigns.create(None, Plan("three", "digital_banking", "all"))
    assert third.report.targeted == 4  # type: ignore[union-attr]


async def test_an_invitation_waits_while_a_survey_is_in_progress(
    emulator: BotApiEmulator, services: Services, consent
) -> None:  # type: ignore[no-untyped-def]
    clock = daytime_clock()
    use_clock(services, clock)
    others = await add_customers(services, emulator, "JKT01", 3)
    busy = emulator.user(70_001, language_code="en")
    await consent(busy, "b_JKT01")  # agreed, and now in the middle of the branch survey
    created = await services.campaigns.create(None, Plan("busy", "digital_banking", "branch:JKT01"))
    number = created.campaign.id  # type: ignore[union-attr]
    boss = await admin(services, emulator, clock)
    await boss.user.send_text(f"/campaign_launch {number}")
    await wait_settled(services, number, "invite", 3)
    assert all(len(invitations(user)) == 1 for user in others)
    assert not invitations(busy)
    assert (await delivery_counts(services, number))[("invite", "pending")] == 1

    clock.advance(minutes=61)  # idle for an hour: no longer in progress
    await busy.wait_for(lambda m: "takes about a minute" in m.body, timeout=10)


async def test_launching_to_more_than_a_thousand_needs_a_fresh_code(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    await add_customers(services, emulator, "JKT01", 1001)
    start = (clock() + timedelta(days=1)).astimezone(ZoneInfo("Asia/Jakarta"))
    created = await services.campaigns.create(
        None, Plan("big", "branch_service", "all", start=f"{start:%Y-%m-%dT%H:%M}")
    )
    number = created.campaign.id  # type: ignore[union-attr]
    boss = await admin(services, emulator, clock)
    clock.advance(minutes=6)  # the login code is no longer fresh
    await boss.user.send_text(f"/campaign_launch {number}")
    await boss.user.wait_for(lambda m: "needs a fresh code" in m.body)
    async with services.db.transaction() as connection:
        assert (await campaign_store.get(connection, number)).status == "draft"  # type: ignore[union-attr]
    await boss.user.send_text(code(boss.secret, clock))
    done = await boss.user.wait_for(lambda m: "is launched" in m.body)
    assert "Would invite 1,001 customers now." in done.body  # scheduled: not started yet
    async with services.db.transaction() as connection:
        assert (await campaign_store.get(connection, number)).status == "scheduled"  # type: ignore[union-attr]
