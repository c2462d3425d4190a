"""One process of several does a job: it holds a PostgreSQL advisory lock on a connection of
its own, and another takes over within seconds of that connection dying. On SQLite (one
process) the caller is always the one."""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa

from storage.db import Database

# What a database that went away raises: the caller resigns and tries again later.
DATABASE_FAULTS: tuple[type[BaseException], ...] = (sa.exc.DBAPIError, OSError)


class Leadership:
    """`hold()` is True while this process holds `key`; it checks the lock's connection."""

    def __init__(self, db: Database, key: int) -> None:
        self._db = db
        self._key = key
        self._connection: Any = None

    async def hold(self) -> bool:
        if not self._db.is_postgres:
            return True
        if self._connection is not None:
            try:
                await self._connection.execute(sa.text("SELECT 1"))
                return True
            except DATABASE_FAULTS:
                await self.release()
        connection = await self._db.engine.connect()
        try:
            won = await connection.scalar(sa.select(sa.func.pg_try_advisory_lock(self._key)))
            await connection.commit()
        except BaseException:
            await connection.close()
            raise
        if not won:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
