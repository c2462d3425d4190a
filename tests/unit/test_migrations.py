"""Migrations are the only way the schema changes: each one goes up, down and up again, and
the head matches the models exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.db import Database, alembic_config
from storage.models import metadata, rollup_weeks, rollups
from storage.results import week_of

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


async def test_weekly_rollups_are_summed_from_the_daily_ones(empty_database_url: str) -> None:
    """Upgrading sums the existing daily roll-ups into ISO weeks (Monday first), across a
    year's end, exactly as the answer path keeps them."""
    database = Database(empty_database_url)
    days = [date(2026, 12, 27), date(2026, 12, 28), date(2026, 12, 31), date(2027, 1, 3)]
    days += [date(2027, 1, 4), date(2026, 11, 30)]
    try:
        await database.upgrade("0007")
        async with database.engine.begin() as connection:
            for n, day in enumerate(days):
                for metric, value in (("completed", ""), ("nps", "9")):
                    await connection.execute(
                        sa.text(
                            "INSERT INTO rollups (day, branch_id, survey_id, metric,"
                            " question_id, value, count) VALUES (:day, 1, 1, :metric, :q, :v, :n)"
                        ),
                        {
                            "day": day,
                            "metric": metric,
                            "q": "q" if value else "",
                            "v": value,
                            "n": n + 1,
                        },
                    )
        await database.upgrade()
        async with database.engine.connect() as connection:
            weeks = {
                (row.day, row.metric): row.count
                for row in await connection.execute(sa.select(rollup_weeks))
            }
            daily = await connection.execute(sa.select(sa.func.count()).select_from(rollups))
        expected: Counter[tuple[date, str]] = Counter()
        for n, day in enumerate(days):
            for metric in ("completed", "nps"):
                expected[week_of(day), metric] += n + 1
        assert weeks == dict(expected)
        assert weeks[date(2026, 12, 28), "nps"] == 2 + 3 + 4  # Mon 28 Dec to Sun 3 Jan
        assert daily.scalar() == 2 * len(days)
    finally:
        await database.dispose()
