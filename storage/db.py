"""The async engine, transactions and schema upgrades.

SQLite runs in WAL mode with one pooled connection: on two cores one writer beats many
(BASELINES.md), and aiosqlite serialises on its thread anyway. PostgreSQL gets a real pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage.group_commit import GroupCommitter
from storage.unit import note_write, unit_of_work

T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
OVERFLOW = 4  # PostgreSQL connections beyond the pool, opened only while they are needed


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Build the engine; for SQLite create the file's folder and set the pragmas."""
    engine = _engine(url, pool_size)

    @event.listens_for(engine.sync_engine, "before_execute")
    def _core_write(_connection, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if getattr(statement, "is_dml", False):
            note_write()  # a sealed unit refuses it (storage.unit)

    return engine


def _engine(url: str, pool_size: int) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping, which costs a round trip per transaction: `run` retries a unit once on a
        # connection that died with the server, and the pool replaces it. The pool is sized
        # for the work in flight; a few more connections absorb a burst of jobs.
        return create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=OVERFLOW,
            hide_parameters=True,
            pool_recycle=1800,
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # Every use of the one connection ends in a commit or a rollback of its own, so the pool's
    # extra rollback on return would only cost a trip to aiosqlite's thread.
    engine = create_async_engine(
        url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
        pool_reset_on_return=None,
        hide_parameters=True,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return engine


class Database:
    """One engine plus the ways to use it: a transaction, or a unit in a group commit."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._group = GroupCommitter(self.engine)

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run a short unit of work: all of its writes commit together, or none do.

        The unit is one transaction on both databases: group-committed on SQLite's single
        connection (see group_commit), a transaction of its own on PostgreSQL's pool, where
        units already proceed side by side and one shared connection would only queue them.
        On PostgreSQL the transaction begins with the unit's first write (any Core statement,
        or a prepared write, see storage.prepared), so reads before it cost no BEGIN, and a
        unit that writes nothing commits nothing; a first write declared alone commits by
        itself and seals the unit (storage.unit). The result is returned only after the
        commit.
        """
        if not self.is_postgres:
            return await self._group.run(work)
        for attempt in (1, 2):
            try:
                async with self.engine.connect() as connection:
                    with unit_of_work():
                        result = await work(connection)
                    if connection.in_transaction():  # prepared reads alone began none
                        await connection.commit()
                    return result
            except sa.exc.DBAPIError as error:
                if attempt == 2 or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """Commit on success, roll back on any error."""
        async with self.engine.begin() as connection:
            yield connection

    async def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to `revision` with Alembic, on this engine's connection."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_run_alembic, "upgrade", revision)

    async def downgrade(self, revision: str) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(_run_alembic, "downgrade", revision)

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as connection:
            try:
                result = await connection.execute(
                    sa.text("SELECT version_num FROM alembic_version")
                )
            except sa.exc.DBAPIError:
                return None
            return result.scalar_one_or_none()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self._group.close()
        await self.engine.dispose()


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run_alembic(connection: sa.Connection, action: str, revision: str) -> None:
    config = alembic_config(connection)
    getattr(command, action)(config, revision)
