"""Making a logged-in staff member the way a real one is made: an invitation from the command
line's service call, the link opened in a private chat, and the current TOTP code (computed
with pyotp for the staff service's clock) sent back, which confirms enrolment and logs in."""

from __future__ import annotations

import re

import pyotp

from bot.devtools.emulator import BotApiEmulator, SimUser
from bot.services.access import Role, Scope
from bot.services.staff import Invited
from bot.wiring.services import Services

_SECRET = re.compile(r"<code>([A-Z2-7]{16,})</code>|\b([A-Z2-7]{32})\b")


def code_now(services: Services, secret: str) -> str:
    """The code an authenticator app shows at the staff service's current time."""
    return pyotp.TOTP(secret).at(services.staff.clock())


async def staff_member(
    services: Services,
    emulator: BotApiEmulator,
    user_id: int,
    role: Role | str,
    scope: Scope | str = "all",
    *,
    language_code: str = "en",
    name: str = "Staff",
) -> tuple[SimUser, str]:
    """A staff member with a live session, and their TOTP secret."""
    role = role if isinstance(role, Role) else Role.parse(role)
    scope = scope if isinstance(scope, Scope) else Scope.parse(scope)
    assert role is not None and scope is not None
    invited = await services.staff.invite_as_system(role, scope, name)
    assert isinstance(invited, Invited), invited
    user = emulator.user(user_id, name, language_code=language_code)
    await user.start(f"s_{invited.token}")
    shown = await user.wait_for(lambda m: _SECRET.search(m.body) is not None)
    found = _SECRET.search(shown.body)
    assert found is not None
    secret = found.group(1) or found.group(2)
    await user.send_text(code_now(services, secret))
    await user.wait_for(lambda m: "logged in" in m.body or "masuk" in m.body)
    return user, secret
