"""The async engine, transactions and schema upgrades.

SQLite runs in WAL mode with one pooled connection: on two cores one writer beats many
(BASELINES.md), and aiosqlite serialises on its thread anyway. PostgreSQL gets a real pool.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
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
# SQLite errors after which its connection is of no further use (the pool opens another).
_BROKEN_SQLITE = re.compile(
    r"readonly database|disk I/O error|database disk image is malformed|unable to open database"
    r"|closed database",
    re.IGNORECASE,
)
# PostgreSQL error classes of an outage: connection, resources, operator intervention (also
# statement_timeout), system; and a lock not available (lock_timeout), a read-only server.
_OUTAGE_SQLSTATES = ("08", "53", "57", "58", "55P03", "25006")
UNREACHABLE = (OSError, sa.exc.DBAPIError)  # connecting failed: refused, no such host, no db


def sqlite_connection_broken(error: BaseException) -> bool:
    """After this SQLite error its connection is of no further use: opened while the file was
    read-only, or past a disk error. The pool should open a fresh one."""
    return bool(_BROKEN_SQLITE.search(str(error)))


def unreachable(url: str, error: BaseException) -> str:
    """One sentence for a database that cannot be reached, without the password."""
    return (
        f"The database at {_shown(url)} cannot be reached ({describe(error)}): "
        "check DATABASE_URL and that the server is running."
    )


def unwritable(url: str, error: BaseException) -> str:
    """One sentence for a database that answers but takes no writes."""
    return (
        f"The database at {_shown(url)} takes no writes ({describe(error)}): check the file's "
        "permissions and the free disk space, or the server's state."
    )


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def is_outage(error: BaseException) -> bool:
    """A fault of the database, not of the work: unreachable, locked, read-only, out of space,
    timed out. The same work may succeed once the database recovers. Prepared statements
    (storage.prepared) raise the drivers' own errors, so those count too."""
    if isinstance(error, OSError | TimeoutError | sqlite3.OperationalError):
        return True
    if isinstance(error, sa.exc.DBAPIError):
        if error.connection_invalidated or isinstance(
            error, sa.exc.OperationalError | sa.exc.InterfaceError
        ):
            return True
        error = error.orig if error.orig is not None else error
    for candidate in (error, error.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str) and state.startswith(_OUTAGE_SQLSTATES):
            return True
    return False


def describe(error: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's wrapping (no SQL, no parameters)."""
    cause = error.orig if isinstance(error, sa.exc.DBAPIError) and error.orig else error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


@dataclass(frozen=True)
class Timeouts:
    """PostgreSQL's limits per statement and per lock wait, in seconds (0: none), so that a
    locked table or a stuck query fails the update fast (Telegram delivers it again)
    instead of holding it, and a connection, for as long as the lock lasts."""

    statement: float = 30.0
    lock: float = 5.0

    def server_settings(self) -> dict[str, str]:
        return {
            "statement_timeout": str(round(self.statement * 1000)),
            "lock_timeout": str(round(self.lock * 1000)),
        }


def create_engine(url: str, *, pool_size: int = 10, timeouts: Timeouts = Timeouts()) -> AsyncEngine:
    """Build the engine; for SQLite create the file's folder and set the pragmas."""
    engine = _engine(url, pool_size, timeouts)

    @event.listens_for(engine.sync_engine, "before_execute")
    def _core_write(_connection, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if getattr(statement, "is_dml", False):
            note_write()  # a sealed unit refuses it (storage.unit)

    return engine


def _engine(url: str, pool_size: int, timeouts: Timeouts) -> AsyncEngine:
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
            connect_args={"server_settings": timeouts.server_settings()},
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

    @event.listens_for(engine.sync_engine, "handle_error")
    def _replace_broken(context: sa.engine.ExceptionContext) -> None:
        # A connection opened while the file was read-only, or that met a disk error, fails
        # every write from then on: let the pool throw it away and open a fresh one.
        if sqlite_connection_broken(context.original_exception):
            context.is_disconnect = True

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

    def __init__(self, url: str, *, pool_size: int = 10, timeouts: Timeouts = Timeouts()) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, timeouts=timeouts)
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
            await _no_timeouts(connection)
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

    async def check_writable(self) -> None:
        """Write a row and roll it back: raises when the database takes no writes now."""
        async with self.engine.connect() as connection, connection.begin() as transaction:
            await connection.execute(
                sa.text("INSERT INTO meta (key, value) VALUES ('write_probe', '')")
            )
            await transaction.rollback()

    async def dispose(self) -> None:
        await self._group.close()
        await self.engine.dispose()


async def _no_timeouts(connection: AsyncConnection) -> None:
    """A migration may rewrite a large table and wait for traffic to drain: no limits."""
    if connection.dialect.name == "postgresql":
        await connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
        await connection.execute(sa.text("SET LOCAL lock_timeout = 0"))


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run_alembic(connection: sa.Connection, action: str, revision: str) -> None:
    config = alembic_config(connection)
    getattr(command, action)(config, revision)
