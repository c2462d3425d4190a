"""Hot statements, compiled once and run on the database driver beneath SQLAlchemy.

On the answer path SQLAlchemy's async execution costs several times the SQL itself: per call an
execution context and a result object, and on SQLite four hand-offs to aiosqlite's thread where
the driver needs one (bench/RESULTS.md). These statements are still written in Core, so tables
and column types are defined in one place: each is compiled once per dialect, its parameters
pass through the columns' own bind processors (encryption, UTC) and its rows through their
result processors.

They run on the driver connection under the caller's `AsyncConnection`:

- SQLite: always inside the caller's transaction (a group commit's batch).
- PostgreSQL: a write (INSERT, UPDATE, DELETE) begins the caller's transaction if none has
  begun, exactly as a Core statement does, so every write of a unit of work commits with the
  rest or not at all (`Database.run`). A read before the first write runs outside any
  transaction, which costs nothing. A write declared `alone` may commit by itself as its
  unit's first write (see storage.unit). When SQLAlchemy has begun a transaction that has not
  reached the driver yet, the statement first sends its BEGIN, as SQLAlchemy would.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import sqlite_connection_broken
from storage.unit import note_write

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Form:
    """One statement as one dialect runs it: SQL text, argument order, converters."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    row: type

    @classmethod
    def compile(cls, statement: sa.Executable, dialect: sa.Dialect) -> _Form:
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        if any(binds[name].expanding for name in names):
            raise ValueError("IN lists cannot be prepared once; use a Core statement")
        columns = list(getattr(statement, "exported_columns", ()))
        return cls(
            sql=str(compiled),
            names=names,
            defaults={name: binds[name].effective_value for name in names},
            binds=tuple(_bind_processor(binds[name].type, dialect) for name in names),
            results=tuple(_result_processor(column.type, dialect) for column in columns),
            row=namedtuple("Row", [column.name for column in columns]),  # type: ignore[misc]
        )

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = [params.get(name, self.defaults[name]) for name in self.names]
        return [v if p is None else p(v) for p, v in zip(self.binds, values, strict=True)]

    def to_row(self, record: Sequence[Any]) -> Any:
        values = zip(self.results, record, strict=True)
        return self.row(*(v if p is None else p(v) for p, v in values))


def _bind_processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Processor:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _result_processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Processor:
    return type_.dialect_impl(dialect).result_processor(dialect, None)


class Prepared:
    """A Core statement run straight on the driver; rows come back as named tuples.

    Give the statement, or for one spelled differently per database (an upsert) a function of
    the dialect's name that builds it. A write begins the caller's transaction if none has
    begun, so that the rest of the unit commits with it. `alone` declares a write atomic by
    itself, which may commit alone as its unit's first write; only storage/ decides that.
    """

    def __init__(
        self, statement: sa.Executable | Callable[[str], sa.Executable], *, alone: bool = False
    ) -> None:
        self._build = statement if callable(statement) else lambda _dialect: statement
        self._alone = alone
        self._forms: dict[str, tuple[sa.Executable, _Form]] = {}

    def _form(self, dialect: sa.Dialect) -> tuple[sa.Executable, _Form]:
        found = self._forms.get(dialect.name)
        if found is None:
            statement = self._build(dialect.name)
            found = self._forms[dialect.name] = (statement, _Form.compile(statement, dialect))
        return found

    async def _target(self, connection: AsyncConnection) -> tuple[_Form, _SQLite | _Postgres]:
        """The compiled form and the driver to run it on; a write begins the unit's
        transaction if none has begun, unless it may commit alone."""
        statement, form = self._form(connection.dialect)
        if statement.is_dml:
            alone = note_write(alone=self._alone)
            if not alone and not connection.in_transaction():
                await connection.begin()
        return form, await _driver(connection)

    async def rows(self, connection: AsyncConnection, **params: Any) -> list[Any]:
        """Run the statement (a SELECT, or a write with RETURNING) and return its rows."""
        form, driver = await self._target(connection)
        records = await driver.fetch(connection, form.sql, form.arguments(params))
        return [form.to_row(record) for record in records]

    async def first(self, connection: AsyncConnection, **params: Any) -> Any | None:
        rows = await self.rows(connection, **params)
        return rows[0] if rows else None

    async def many(self, connection: AsyncConnection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a write once per parameter set, in one call to the driver."""
        if not params:
            return
        form, driver = await self._target(connection)
        await driver.executemany(connection, form.sql, [form.arguments(each) for each in params])


class _SQLite:
    """The sqlite3 connection under aiosqlite, called on the event loop's own thread.

    A point read or write on a cached page takes microseconds; the hand-off to aiosqlite's
    thread and back costs ten times that (bench/RESULTS.md). Only these statements run inline,
    while their caller holds the pool's single connection, so nothing else uses it meanwhile;
    the commit, which may checkpoint the WAL, still goes through aiosqlite's thread. SQLite
    serves one process, so a write never waits here for another's lock.
    """

    def __init__(self, driver: Any) -> None:
        self._sqlite = driver._conn  # aiosqlite keeps it private; it was opened for any thread

    async def fetch(self, connection: AsyncConnection, sql: str, arguments: list[Any]) -> Any:
        try:
            return self._sqlite.execute(sql, arguments).fetchall()
        except sqlite3.Error as error:
            await _replace_if_broken(connection, sql, error)
            raise

    async def executemany(
        self, connection: AsyncConnection, sql: str, arguments: list[list[Any]]
    ) -> None:
        try:
            self._sqlite.executemany(sql, arguments).close()
        except sqlite3.Error as error:
            await _replace_if_broken(connection, sql, error)
            raise


async def _replace_if_broken(connection: AsyncConnection, sql: str, error: Exception) -> None:
    """A connection that is of no further use (see storage.db) is invalidated, as SQLAlchemy
    does on its own path, so that the pool opens a fresh one and writes resume by themselves."""
    if sqlite_connection_broken(error):
        await connection.invalidate()
        raise sa.exc.DBAPIError(sql, None, error, connection_invalidated=True) from error


class _Postgres:
    """asyncpg, which prepares and caches each statement on its connection by itself."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def fetch(self, connection: AsyncConnection, sql: str, arguments: list[Any]) -> Any:
        return await self._guarded(connection, sql, self.driver.fetch(sql, *arguments))

    async def executemany(
        self, connection: AsyncConnection, sql: str, arguments: list[list[Any]]
    ) -> None:
        await self._guarded(connection, sql, self.driver.executemany(sql, arguments))

    async def begin(self, connection: AsyncConnection, adapter: Any) -> None:
        """Send the BEGIN of the transaction SQLAlchemy has begun, as its asyncpg adapter
        would with its first statement, so that statement need not go through SQLAlchemy."""
        await self._guarded(connection, "BEGIN", adapter._start_transaction())

    async def _guarded(self, connection: AsyncConnection, sql: str, call: Awaitable[Any]) -> Any:
        """A connection the server dropped is invalidated, as SQLAlchemy would, so that the
        pool replaces it and the caller may retry (`Database.run` does, once)."""
        try:
            return await call
        except Exception as error:
            if self.driver.is_closed():
                await connection.invalidate()
                raise sa.exc.DBAPIError(sql, None, error, connection_invalidated=True) from error
            raise


async def _driver(connection: AsyncConnection) -> _SQLite | _Postgres:
    """The driver beneath `connection`, inside the transaction SQLAlchemy has begun, if any."""
    sync = connection.sync_connection
    if sync is not None and not sync.invalidated and not sync.closed:
        raw = sync.connection  # checked out already: a plain attribute, no trip to a greenlet
    else:
        raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if connection.dialect.name != "postgresql":
        return _SQLite(driver)
    postgres = _Postgres(driver)
    if connection.in_transaction() and not driver.is_in_transaction():
        await postgres.begin(connection, raw.dbapi_connection)
    return postgres
