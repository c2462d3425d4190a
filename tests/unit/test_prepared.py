"""Prepared statements on the driver: same rows, same types, same transactions as Core."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from storage.db import Database
from storage.models import customers, survey_sessions, surveys
from storage.prepared import Prepared

_SESSION = Prepared(
    sa.select(survey_sessions.c.id, survey_sessions.c.state, survey_sessions.c.completed_at).where(
        survey_sessions.c.id == sa.bindparam("session_id")
    )
)
_FINISH = Prepared(
    sa.update(survey_sessions)
    .where(survey_sessions.c.id == sa.bindparam("session_id"))
    .values(state=sa.bindparam("state"), completed_at=sa.bindparam("at"), status="completed")
    .returning(survey_sessions.c.id)
)
_SET_LOCALE = (
    sa.update(customers)
    .where(customers.c.id == sa.bindparam("customer_id"))
    .values(locale=sa.bindparam("locale"))
)
_TOUCH = Prepared(_SET_LOCALE)
MOMENT = datetime(2026, 11, 22, 3, 4, 5, tzinfo=UTC)


async def _seed(db: Database) -> None:
    async with db.transaction() as connection:
        await connection.execute(sa.insert(customers).values(id=1, telegram_id=5, locale="id"))
        await connection.execute(
            sa.insert(surveys).values(id=1, key="s", version=1, source="x", checksum="c")
        )
        await connection.execute(
            sa.insert(survey_sessions).values(
                id=1, customer_id=1, survey_id=1, status="open", state="{}", version=1
            )
        )


async def _state(db: Database) -> tuple[str, str]:
    async with db.transaction() as connection:
        state = await connection.scalar(sa.select(survey_sessions.c.state))
        locale = await connection.scalar(sa.select(customers.c.locale))
        return state, locale


async def test_rows_pass_through_the_columns_types(db: Database) -> None:
    await _seed(db)

    async def work(connection: sa.ext.asyncio.AsyncConnection) -> object:
        changed = await _FINISH.rows(connection, session_id=1, state='{"a":1}', at=MOMENT)
        return changed, await _SESSION.first(connection, session_id=1)

    changed, row = await db.run(work)
    assert [r.id for r in changed] == [1]
    assert (row.state, row.completed_at) == ('{"a":1}', MOMENT)  # decrypted, aware UTC
    async with db.engine.connect() as connection:
        raw = await connection.scalar(sa.text("SELECT state FROM survey_sessions"))
    assert raw.startswith("gAAAAA") and '"a"' not in raw  # a Fernet token: the column's type


async def test_a_missing_row_is_none(db: Database) -> None:
    await _seed(db)
    assert await db.run(lambda connection: _SESSION.first(connection, session_id=99)) is None


@pytest.mark.parametrize("begin", ["run", "transaction"])
async def test_a_failed_unit_leaves_nothing_behind(db: Database, begin: str) -> None:
    await _seed(db)

    async def work(connection: sa.ext.asyncio.AsyncConnection) -> None:
        await _FINISH.rows(connection, session_id=1, state='{"b":2}', at=MOMENT)
        await _TOUCH.many(connection, [{"customer_id": 1, "locale": "en"}])
        raise RuntimeError("the unit fails after writing")

    with pytest.raises(RuntimeError):
        if begin == "run":
            await db.run(work)
        else:
            async with db.transaction() as connection:
                await work(connection)
    assert await _state(db) == ("{}", "id")


async def test_a_core_statement_first_puts_the_driver_in_its_transaction(db: Database) -> None:
    await _seed(db)
    with pytest.raises(RuntimeError):
        async with db.transaction() as connection:
            await _TOUCH.many(connection, [{"customer_id": 1, "locale": "en"}])
            await connection.execute(sa.update(customers).values(opted_out=True))
            await _FINISH.rows(connection, session_id=1, state='{"c":3}', at=MOMENT)
            raise RuntimeError("roll back all three")
    assert await _state(db) == ("{}", "id")
    async with db.transaction() as connection:
        await _TOUCH.many(connection, [{"customer_id": 1, "locale": "en"}])
        await _FINISH.rows(connection, session_id=1, state='{"c":3}', at=MOMENT)
    assert await _state(db) == ('{"c":3}', "en")


@pytest.mark.parametrize("fail", [True, False])
async def test_a_prepared_write_first_commits_with_what_follows_or_not_at_all(
    db: Database, fail: bool
) -> None:
    await _seed(db)

    async def work(connection: sa.ext.asyncio.AsyncConnection) -> None:
        await _TOUCH.many(connection, [{"customer_id": 1, "locale": "en"}])
        await _FINISH.rows(connection, session_id=1, state='{"d":4}', at=MOMENT)
        if fail:
            raise RuntimeError("the unit fails after both writes")

    if fail:
        with pytest.raises(RuntimeError):
            await db.run(work)
        assert await _state(db) == ("{}", "id")
    else:
        await db.run(work)
        assert await _state(db) == ('{"d":4}', "en")


async def test_prepared_and_core_writes_share_the_unit(db: Database) -> None:
    await _seed(db)

    async def work(connection: sa.ext.asyncio.AsyncConnection, fail: bool) -> None:
        await _FINISH.rows(connection, session_id=1, state='{"e":5}', at=MOMENT)
        await connection.execute(sa.update(customers).values(locale="en"))
        if fail:
            raise RuntimeError("roll back the prepared and the Core write")

    with pytest.raises(RuntimeError):
        await db.run(lambda connection: work(connection, True))
    assert await _state(db) == ("{}", "id")
    await db.run(lambda connection: work(connection, False))
    assert await _state(db) == ('{"e":5}', "en")


def test_in_lists_are_refused() -> None:
    ids = sa.bindparam("ids", expanding=True)
    statement = sa.select(customers.c.id).where(customers.c.id.in_(ids))
    with pytest.raises(ValueError, match="IN lists"):
        Prepared(statement)._form(sa.create_engine("sqlite://").dialect)
