"""Migrations are the only way the schema changes: each one goes up, down and up again, and
the head matches the models exactly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.db import Database, alembic_config
from storage.models import metadata


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def test_stairway_up_down_up(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    try:
        previous = "base"
        for revision in _revisions():
            await database.upgrade(revision)
            await database.downgrade(previous)
            await database.upgrade(revision)
            assert await database.current_revision() == revision
            previous = revision
    finally:
        await database.dispose()


async def test_head_matches_models(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    try:
        await database.upgrade()
        async with database.engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": False}), metadata
                )
            )
        assert diff == []
    finally:
        await database.dispose()


async def test_sqlite_runs_in_wal_mode(db: Database) -> None:
    if db.is_postgres:
        pytest.skip("WAL is a SQLite setting")
    async with db.engine.connect() as connection:
        mode = await connection.scalar(sa.text("PRAGMA journal_mode"))
    assert mode == "wal"
