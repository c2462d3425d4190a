"""Housekeeping jobs are service calls: their effects, with time moved rather than waited."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from bot.services.conversation import UPDATE_MEMORY
from bot.wiring.services import Services
from storage import updates
from storage.models import processed_updates
from tests.e2e.staffing import FakeClock


async def _claimed(services: Services) -> set[int]:
    async with services.db.transaction() as connection:
        return set(await connection.scalars(sa.select(processed_updates.c.update_id)))


async def test_claims_of_updates_telegram_cannot_redeliver_are_forgotten(
    services: Services,
) -> None:
    clock = FakeClock()
    services.conversations.clock = clock
    claimed_at = clock()
    await services.db.run(lambda connection: updates.claim(connection, 41, claimed_at))
    clock.advance(days=1)
    assert await services.conversations.forget_updates() == 0
    assert await _claimed(services) == {41}
    clock.now = claimed_at + UPDATE_MEMORY + timedelta(minutes=1)
    assert await services.conversations.forget_updates() == 1
    assert await _claimed(services) == set()
    # forgotten, the update id could be claimed again (Telegram will not send it again)
    assert await services.db.run(lambda connection: updates.claim(connection, 41, clock()))
