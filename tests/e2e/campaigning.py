"""Campaign test helpers: customers who can be invited, an admin, the invitation's link."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.access import Role
from bot.wiring.services import Services
from storage import campaigns as campaign_store
from storage import orgs
from storage.models import campaign_deliveries, customers
from tests.e2e.staffing import FakeClock, StaffUser, add_staff, log_in

INVITATION = "The survey takes about a minute"


def daytime_clock(hour: int = 3) -> FakeClock:
    """A clock at `hour` UTC on a Monday: 3 is 10:00 in Jakarta, 11:00 in Makassar, 12:00 in
    Jayapura."""
    return FakeClock(datetime(2026, 11, 30, hour, 0, 10, tzinfo=UTC))


def use_clock(services: Services, clock: FakeClock) -> None:
    """Every service on `clock`: staff, campaigns, the sender and the customers' side."""
    services.staff.clock = clock
    services.campaigns.clock = clock
    services.sender.clock = clock
    services.conversations.clock = clock
    services.personal_data.clock = clock
    services.follow_ups.clock = clock
    services.customer_lists.clock = clock


_ids = itertools.count(50_000)


async def add_customers(
    services: Services,
    emulator: BotApiEmulator,
    branch: str,
    count: int,
    *,
    locale: str = "en",
    **columns: object,
) -> list[SimUser]:
    """Customers of `branch` who agreed to the current notice and have opened the bot."""
    users = [emulator.user(next(_ids), language_code=locale, started=True) for _ in range(count)]
    async with services.db.transaction() as connection:
        found = await orgs.branch_by_code(connection, branch)
        assert found is not None
        values = {
            "locale": locale,
            "branch_id": found.id,
            "consent_version": services.conversations.notice.version,
            "consent_at": datetime.now(UTC),
            **columns,
        }
        await connection.execute(
            sa.insert(customers), [{"telegram_id": user.id, **values} for user in users]
        )
    return users


async def admin(
    services: Services, emulator: BotApiEmulator, clock: FakeClock, scope: str = "all"
) -> StaffUser:
    member = await add_staff(services, emulator.user(next(_ids)), Role.ADMIN, scope)
    await log_in(member, clock)
    return member


def invitations(user: SimUser) -> list[SimMessage]:
    return [
        m
        for m in user.messages
        if INVITATION in m.body or "reminder" in m.body.lower() or "part-way" in m.body
    ]


def link_payload(message: SimMessage) -> str:
    """The `?start=` payload of the message's link button."""
    url = (message.reply_markup or {})["inline_keyboard"][0][0]["url"]
    return str(url).split("start=", 1)[1]


async def delivery_counts(services: Services, campaign_id: int) -> dict[tuple[str, str], int]:
    async with services.db.transaction() as connection:
        return await campaign_store.counts(connection, campaign_id)


async def wait_settled(services: Services, campaign_id: int, kind: str, count: int) -> None:
    """Until `count` deliveries of `kind` are settled (the customer may see a message a moment
    before its batch is committed)."""
    for _ in range(400):
        counts = await delivery_counts(services, campaign_id)
        done = sum(
            n for (k, s), n in counts.items() if k == kind and s not in ("pending", "sending")
        )
        if done >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries not settled: {counts}")


async def deliveries_of(services: Services, campaign_id: int) -> list[sa.Row]:
    async with services.db.transaction() as connection:
        rows = await connection.execute(
            sa.select(campaign_deliveries).where(campaign_deliveries.c.campaign_id == campaign_id)
        )
        return list(rows)
