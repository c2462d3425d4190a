"""Migrations are the only way the schema changes: each one goes up, down and up again, and
the head matches the models exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.crypto import Keyring
from storage.db import Database, alembic_config
from storage.models import (
    branches,
    metadata,
    regions,
    rollup_weeks,
    rollups,
    survey_sessions,
    surveys,
)
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


async def test_sessions_that_ended_unfinished_are_counted_by_the_upgrade(
    empty_database_url: str, keyring: Keyring
) -> None:
    """Drop-off of sessions ended before the upgrade moves into the roll-ups: by the day each
    started in its branch's zone (WIT here, a day ahead of UTC's), where it stopped."""
    database = Database(empty_database_url)
    start = datetime(2026, 11, 1, 16, 30, tzinfo=UTC)  # 01:30 on 2 November in Jayapura
    try:
        await database.upgrade("0007")
        async with database.engine.begin() as connection:
            await connection.execute(sa.insert(regions).values(id=1, code="TIM", name="Timur"))
            await connection.execute(
                sa.insert(branches).values(
                    id=1, code="JYP01", name="Jayapura", region_id=1, timezone="Asia/Jayapura"
                )
            )
            await connection.execute(
                sa.insert(surveys).values(id=1, key="s", version=1, source="-", checksum="c")
            )
            for status, reached in (("abandoned", "nps"), ("abandoned", "nps"), ("open", "csat")):
                await connection.execute(
                    sa.insert(survey_sessions).values(
                        survey_id=1,
                        branch_id=1,
                        status=status,
                        state="{}",
                        reached=reached,
                        started_at=start,
                        updated_at=start,
                    )
                )
        await database.upgrade()
        async with database.engine.connect() as connection:
            days = (await connection.execute(sa.select(rollups))).all()
            weeks = (await connection.execute(sa.select(rollup_weeks))).all()
        assert [(r.day, r.metric, r.question_id, r.count) for r in days] == [
            (date(2026, 11, 2), "stopped", "nps", 2)
        ]
        assert [(r.day, r.metric, r.question_id, r.count) for r in weeks] == [
            (date(2026, 11, 2), "stopped", "nps", 2)  # a Monday: its own week
        ]
    finally:
        await database.dispose()
