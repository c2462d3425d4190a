"""Staff for end-to-end tests: a clock the services read, real TOTP codes, logged-in staff."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.access import Role, Scope
from bot.services.staff import Invited
from bot.wiring.services import Services
from storage import staff as staff_store

SECRET = re.compile(r"\b[A-Z2-7]{32}\b")


class FakeClock:
    """Aware UTC time that moves only when a test moves it."""

    def __init__(self, start: datetime = datetime(2026, 11, 30, 3, 0, 10, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def code(secret: str, clock: FakeClock, steps: int = 0) -> str:
    """The code an authenticator shows at the clock's time, `steps` time steps away."""
    return pyotp.TOTP(secret).at(clock() + timedelta(seconds=30 * steps))


@dataclass
class StaffUser:
    id: int
    user: SimUser
    secret: str


async def add_staff(
    services: Services,
    user: SimUser,
    role: Role,
    scope: str,
    name: str = "Staf",
    locale: str = "en",
) -> StaffUser:
    """A staff member enrolled straight into the database (enrolment has its own test)."""
    secret = pyotp.random_base32()
    user.started = True  # staff have opened the bot, when they enrolled
    async with services.db.transaction() as connection:
        staff_id = await staff_store.create(
            connection,
            telegram_id=user.id,
            name=name,
            role=role.label,
            scope=scope,
            totp_secret=secret,
            locale=locale,
        )
    return StaffUser(staff_id, user, secret)


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
    """A staff member made the way a real one is: an invitation, the link opened in a private
    chat, and the current code sent back, which enrols and logs in. The user and the secret."""
    role = role if isinstance(role, Role) else Role.parse(role)
    scope = scope if isinstance(scope, Scope) else Scope.parse(scope)
    assert role is not None and scope is not None
    invited = await services.staff.invite_as_system(role, scope, name)
    assert isinstance(invited, Invited), invited
    user = emulator.user(user_id, name, language_code=language_code)
    await user.start(f"s_{invited.token}")
    shown = await user.wait_for(lambda m: SECRET.search(m.body) is not None)
    found = SECRET.search(shown.body)
    assert found is not None
    await user.send_text(code_now(services, found.group()))
    await user.wait_for(lambda m: "logged in" in m.body or "masuk" in m.body)
    return user, found.group()


async def log_in(member: StaffUser, clock: FakeClock) -> SimMessage:
    """Log in through the bot with the current code."""
    await member.user.send_text(f"/login {code(member.secret, clock)}")
    return await member.user.wait_for(lambda m: "logged in as" in m.body)
