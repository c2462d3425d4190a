"""The permission matrix, generated from the one permission table: every staff command × every
role × a target in scope and out of scope, through the real bot, allowed or refused exactly as
`PERMISSIONS` says, and audited either way."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator
from bot.services.access import PERMISSIONS, Role
from bot.services.i18n import gettext, use_locale
from bot.wiring.services import Services
from handlers.staff.commands import COMMANDS
from handlers.staff.render import REFUSED
from storage import campaigns as campaign_store
from storage.models import audit_log, surveys
from tests.e2e.staffing import FakeClock, add_staff, log_in

pytestmark = pytest.mark.usefixtures("bot")

ACTOR_SCOPE = "region:BAR"  # JKT01 and BDG01 are in it; MKS01 and JYP01 are not
TARGET_SCOPE = {True: "branch:JKT01", False: "branch:MKS01"}

# How each command is called against a target staff member `n`, in or out of the actor's
# scope. A command missing here fails the test: every command must be in the matrix.
Recipe = Callable[[int, bool], str]
RECIPES: dict[str, tuple[bool, Recipe]] = {
    "whoami": (False, lambda n, inside: ""),
    "logout": (False, lambda n, inside: ""),
    "staff": (False, lambda n, inside: ""),
    "audit": (False, lambda n, inside: "5"),
    "staff_invite": (True, lambda n, inside: f"viewer {TARGET_SCOPE[inside]}"),
    "staff_role": (True, lambda n, inside: f"{n} editor"),
    "staff_scope": (True, lambda n, inside: f"{n} {'branch:BDG01' if inside else 'branch:JYP01'}"),
    "staff_off": (True, lambda n, inside: f"{n}"),
    "staff_on": (True, lambda n, inside: f"{n}"),
    "staff_reset": (True, lambda n, inside: f"{n}"),
    "results": (True, lambda n, inside: "JKT01 7d" if inside else "MKS01 7d"),
    "export": (True, lambda n, inside: "JKT01 7d csv" if inside else "MKS01 7d csv"),
    "surveys": (False, lambda n, inside: ""),
    "survey_preview": (False, lambda n, inside: "branch_service"),
    "survey_use": (True, lambda n, inside: f"branch_service {TARGET_SCOPE[inside]}"),
    "qr": (True, lambda n, inside: TARGET_SCOPE[inside].removeprefix("branch:")),
    "campaigns": (False, lambda n, inside: ""),
    "campaign_new": (False, lambda n, inside: ""),
    "campaign": (True, lambda n, inside: f"{n}"),
    "campaign_launch": (True, lambda n, inside: f"{n}"),
    "campaign_pause": (True, lambda n, inside: f"{n}"),
    "campaign_resume": (True, lambda n, inside: f"{n}"),
    "campaign_cancel": (True, lambda n, inside: f"{n}"),
    "alerts": (False, lambda n, inside: "on"),
    "followups": (False, lambda n, inside: ""),
}
# Commands on a campaign get `n`, a campaign made for the call in the target's scope, in the
# state the command acts on.
CAMPAIGN_STATES = {
    "campaign": "draft",
    "campaign_launch": "draft",
    "campaign_pause": "running",
    "campaign_resume": "paused",
    "campaign_cancel": "draft",
}


async def _campaign(services: Services, scope: str, status: str) -> int:
    async with services.db.transaction() as connection:
        survey_id = await connection.scalar(sa.select(sa.func.min(surveys.c.id)))
        return await campaign_store.create(
            connection,
            name="matrix",
            survey_id=survey_id,
            scope=scope,
            status=status,
            created_by="system",
            created_at=datetime.now(UTC),
        )


def _refusal(reason: str) -> str:
    with use_locale("en"):
        return gettext(REFUSED[reason])


async def test_every_command_for_every_role_in_and_out_of_scope(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = FakeClock()
    services.staff.clock = clock
    refused_role, refused_scope = _refusal("role"), _refusal("scope")
    missing = [c.name for c in COMMANDS if c.name not in RECIPES]
    assert not missing, f"commands without a matrix recipe: {missing}"

    mismatches = []
    user_ids = itertools.count(10_000)
    for command, role, inside in itertools.product(COMMANDS, Role, (True, False)):
        targeted, recipe = RECIPES[command.name]
        actor = await add_staff(services, emulator.user(next(user_ids)), role, ACTOR_SCOPE)
        target = await add_staff(
            services, emulator.user(next(user_ids)), Role.VIEWER, TARGET_SCOPE[inside]
        )
        await log_in(actor, clock)
        n = target.id
        if command.name in CAMPAIGN_STATES:
            n = await _campaign(services, TARGET_SCOPE[inside], CAMPAIGN_STATES[command.name])
        await actor.user.send_text(f"/{command.name} {recipe(n, inside)}".strip())
        reply = (await actor.user.next_reply()).body

        expected = role >= PERMISSIONS[command.action] and (inside or not targeted)
        allowed = reply not in (refused_role, refused_scope)
        async with services.db.transaction() as connection:
            outcome = await connection.scalar(
                sa.select(audit_log.c.outcome)
                .where(
                    audit_log.c.actor == f"staff:{actor.id}",
                    audit_log.c.action == command.action,
                )
                .order_by(audit_log.c.id.desc())
                .limit(1)
            )
        if allowed != expected or outcome != ("allowed" if expected else "refused"):
            mismatches.append((command.name, role.label, inside, reply, outcome))
    assert mismatches == []
