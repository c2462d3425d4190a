"""Group commit: units share a transaction, yet one failing unit never takes others along."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import updates
from storage.db import Database
from storage.models import now, processed_updates


async def _count(db: Database) -> int:
    async with db.transaction() as connection:
        return int(
            await connection.scalar(sa.select(sa.func.count()).select_from(processed_updates)) or 0
        )


async def test_concurrent_units_commit_together_and_fail_alone(db: Database) -> None:
    async def claim(update_id: int, fail: bool = False):  # type: ignore[no-untyped-def]
        async def work(connection: AsyncConnection) -> bool:
            claimed = await updates.claim(connection, update_id, now())
            if fail:
                raise RuntimeError("this unit fails after writing")
            return claimed

        return await db.run(work)

    results = await asyncio.gather(
        *(claim(n) for n in range(1, 40)),
        claim(1000, fail=True),
        claim(5),
        return_exceptions=True,
    )
    assert results[:4] + results[5:39] == [True] * 38
    assert isinstance(results[39], RuntimeError)
    # The same update id twice: exactly one claim wins. On PostgreSQL units run side by side,
    # so either may be first.
    assert sorted([results[4], results[40]]) == [False, True]
    assert await _count(db) == 39  # the failing unit's write was rolled back


async def test_a_result_is_only_returned_after_commit(db: Database) -> None:
    async def work(connection: AsyncConnection) -> int:
        await updates.claim(connection, 77, now())
        return 77

    assert await db.run(work) == 77
    assert await _count(db) == 1
    with pytest.raises(ZeroDivisionError):
        await db.run(lambda connection: asyncio.sleep(0, 1 / 0))
