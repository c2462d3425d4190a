"""Migrations are the only way the schema changes: each one goes up, down and up again, and
the head matches the models exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.db import Database, alembic_config
from storage.models import metadata

ROOT = Path(__file__).resolve().parents[2]


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


def _alembic(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_alembic_command_reads_database_url(empty_database_url: str) -> None:
    """`alembic upgrade head` as an operator runs it: DATABASE_URL, read by storage alone."""
    upgraded = _alembic("upgrade", "head", env={"DATABASE_URL": empty_database_url})
    assert upgraded.returncode == 0, upgraded.stderr
    database = Database(empty_database_url)
    try:
        assert await database.current_revision() == _revisions()[-1]
    finally:
        await database.dispose()
    bad = _alembic("upgrade", "head", env={"DATABASE_URL": "mysql://nope"})
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (
        "Setting DATABASE_URL is invalid: must start with sqlite+aiosqlite:// or "
        "postgresql+asyncpg://."
    )
