"""Invitations and response rates in `/results`: a campaign invites customers through the
running bot, some answer through their invitation, and staff read invitations and the
response rate for a period and for `campaign <id>`, in Bahasa Indonesia and in English; a
campaign outside the reader's scope is refused and audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.access import Role
from bot.services.campaigns import CampaignView, Plan
from bot.wiring.services import Services
from storage.models import audit_log
from tests.e2e.campaigning import (
    add_customers,
    daytime_clock,
    invitations,
    link_payload,
    use_clock,
    wait_settled,
)
from tests.e2e.conftest import is_question
from tests.e2e.staffing import add_staff, code, log_in

pytestmark = pytest.mark.usefixtures("bot")


def _data(message: SimMessage, suffix: str) -> str:
    return next(d for d in message.button_data if d.endswith(suffix))


async def _answer_invitation(user: SimUser, nps: str) -> None:
    await user.start(link_payload(invitations(user)[0]))
    q = await user.wait_for(is_question)
    for suffix in (":a:5", f":a:{nps}", ":a:no"):
        await user.press(q, _data(q, suffix))
        q = await user.next_reply()
    await user.press(q, _data(q, ":s"))  # what to improve and the comment are optional
    q = await user.next_reply()
    await user.press(q, _data(q, ":s"))
    await user.wait_for(lambda m: "Thank you" in m.body)


async def _launch(services: Services, scope: str) -> int:
    created = await services.campaigns.create(
        None, Plan(name=f"Q4 {scope}", survey_key="branch_service", scope=scope)
    )
    assert isinstance(created, CampaignView)
    launched = await services.campaigns.launch(None, str(created.campaign.id))
    assert isinstance(launched, CampaignView)
    return created.campaign.id


async def test_invitations_and_response_rate_for_a_period_and_a_campaign(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    customers = await add_customers(services, emulator, "JKT01", 3)
    east = await add_customers(services, emulator, "MKS01", 1)
    number = await _launch(services, "region:BAR")
    await wait_settled(services, number, "invite", 3)
    other = await _launch(services, "region:TIM")
    await wait_settled(services, other, "invite", 1)
    assert invitations(east[0])
    await _answer_invitation(customers[0], "10")
    await _answer_invitation(customers[1], "9")

    viewer = await add_staff(
        services, emulator.user(880, "Vina"), Role.VIEWER, "branch:JKT01", locale="id"
    )
    await viewer.user.send_text(f"/login {code(viewer.secret, clock)}")
    await viewer.user.wait_for(lambda m: "masuk sebagai" in m.body)

    await viewer.user.send_text("/results")
    text = (await viewer.user.wait_for(lambda m: "Hasil untuk" in m.body)).body
    assert "3 undangan terkirim, tingkat respons 66,7%" in text
    assert "2 respons (periode sebelumnya: 0)" in text

    await viewer.user.send_text(f"/results campaign {number}")
    text = (await viewer.user.wait_for(lambda m: f"kampanye {number}" in m.body)).body
    assert f"Hasil untuk cabang JKT01, kampanye {number} “Q4 region:BAR”" in text
    assert "3 undangan terkirim, tingkat respons 66,7%" in text and "2 respons" in text
    assert "periode sebelumnya" not in text
    await viewer.user.wait_for(lambda m: m.photo is not None)  # the chart comes with it

    await viewer.user.send_text(f"/results campaign {other}")
    assert "di luar cakupan" in (await viewer.user.next_reply()).body
    await viewer.user.send_text("/results campaign 999")
    assert "Tidak ada kampanye nomor 999" in (await viewer.user.next_reply()).body
    await viewer.user.send_text("/results campaign satu")
    assert "Cara pakai: /results" in (await viewer.user.next_reply()).body

    boss = await add_staff(services, emulator.user(881, "Adi"), Role.ADMIN, "all")
    await log_in(boss, clock)
    await boss.user.send_text(f"/results all campaign {number}")
    text = (await boss.user.wait_for(lambda m: f"campaign {number}" in m.body)).body
    assert "3 invitations sent, response rate 66.7%" in text
    assert "JKT01 KC Jakarta Sudirman: NPS 100.0, CSAT top-2 100.0%, 2 responses" in text
    assert "response rate 66.7% (small sample, not ranked)" in text
    await boss.user.send_text("/results all 30d")
    text = (await boss.user.wait_for(lambda m: "Results for" in m.body)).body
    assert "4 invitations sent, response rate 50.0%" in text  # MKS01's one is unanswered

    async with services.db.transaction() as connection:
        outcomes = (
            await connection.execute(
                sa.select(audit_log.c.actor, audit_log.c.target, audit_log.c.outcome).where(
                    audit_log.c.action == "results.read"
                )
            )
        ).all()
    me = f"staff:{viewer.id}"
    mine = [(target, outcome) for actor, target, outcome in outcomes if actor == me]
    assert mine == [
        (None, "allowed"),
        (f"campaign {number}", "allowed"),
        (f"campaign {other}", "refused"),
        ("campaign 999", "refused"),
        ("campaign satu", "refused"),
    ]
