"""Databases that recover: a broken SQLite connection is replaced so writes resume by
themselves, PostgreSQL fails fast on a lock instead of hanging, and an outage is logged once
per interval with a count rather than a traceback per update."""

from __future__ import annotations

import logging
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.wiring.logs import FaultTally
from storage import meta, updates
from storage.db import Database, Timeouts, is_outage
from storage.models import now
from tests.conftest import BACKEND


async def _write(connection: AsyncConnection) -> None:
    await meta.put(connection, "probe", str(time.time()))


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's one connection")
async def test_a_sqlite_connection_that_takes_no_writes_is_replaced(db: Database) -> None:
    """As if it had been opened while the file was read-only: each write fails on it."""
    async with db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute("PRAGMA query_only = ON")  # type: ignore[union-attr]
    with pytest.raises(sa.exc.OperationalError, match="readonly") as caught:
        async with db.transaction() as connection:
            await _write(connection)
    assert is_outage(caught.value)
    await db.run(_write)  # a fresh connection: writes resume by themselves
    await db.check_writable()


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's one connection")
async def test_a_broken_sqlite_connection_is_replaced_on_the_prepared_path(db: Database) -> None:
    """The answer path's statements run on the driver itself (storage.prepared)."""
    async with db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute("PRAGMA query_only = ON")  # type: ignore[union-attr]
    with pytest.raises(sa.exc.DBAPIError) as caught:
        async with db.transaction() as connection:
            await updates.claim(connection, 1, now())
    assert is_outage(caught.value)
    assert await db.run(lambda connection: updates.claim(connection, 1, now()))


@pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's lock_timeout")
async def test_a_locked_table_fails_fast_on_postgresql(database_url: str, db: Database) -> None:
    fast = Database(database_url, timeouts=Timeouts(statement=5, lock=0.2))
    try:
        async with db.engine.connect() as holder, holder.begin():
            await holder.execute(sa.text("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            with pytest.raises(sa.exc.DBAPIError) as caught:
                await fast.run(_write)
            assert time.monotonic() - started < 3
            assert is_outage(caught.value)
        await fast.run(_write)  # the lock is gone
    finally:
        await fast.dispose()


def test_an_outage_is_logged_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = logging.getLogger("suara")
    tally = FaultTally(log, "the database is unavailable", 10, lambda: now[0])
    with caplog.at_level(logging.ERROR, "suara"):
        for _ in range(960):  # 48 failed updates a second for 20 seconds
            tally.record("connection refused")
            now[0] += 20 / 960
        now[0] += 60  # quiet for a minute, then a new outage
        tally.record("connection refused")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("the database is unavailable (connection refused)")
    assert "failures in the last 10 s" in lines[1]
    counted = sum(int(line.split(": ")[1].split()[0]) for line in lines[1:3])
    assert counted == 959  # every failure after the first is counted once
    assert not any(record.exc_info for record in caplog.records)
    assert lines[3].startswith("the database is unavailable (connection refused)")
