"""Housekeeping jobs are service calls: their effects, with time moved rather than waited."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from bot.services.conversation import UPDATE_MEMORY
from bot.wiring.services import Services
from storage import updates
from storage.models import now, processed_updates


async def _claimed(services: Services) -> set[int]:
    async with services.db.transaction() as connection:
        return set(await connection.scalars(sa.select(processed_updates.c.update_id)))


async def test_claims_of_updates_telegram_cannot_redeliver_are_forgotten(
    services: Services,
) -> None:
    await services.db.run(lambda connection: updates.claim(connection, 41))
    moment = now()
    assert await services.conversations.forget_updates(at=moment + timedelta(days=1)) == 0
    assert await _claimed(services) == {41}
    later = moment + UPDATE_MEMORY + timedelta(minutes=1)
    assert await services.conversations.forget_updates(at=later) == 1
    assert await _claimed(services) == set()
    # forgotten, the update id could be claimed again (Telegram will not send it again)
    assert await services.db.run(lambda connection: updates.claim(connection, 41))
