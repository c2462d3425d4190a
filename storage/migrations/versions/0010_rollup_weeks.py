"""weekly roll-ups beside the daily ones, both keyed branch first and stored in key order;
sessions that ended unfinished counted in them; open sessions indexed by branch and start

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = "day, branch_id, survey_id, metric, question_id, value, count"


def _create(name: str, key: tuple[str, ...], *, clustered: bool) -> None:
    include = {"postgresql_include": ["count"]} if clustered else {}
    stored = {"sqlite_with_rowid": False} if clustered else {}
    op.create_table(
        name,
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=12), nullable=False),
        sa.Column("question_id", sa.String(length=24), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f(f"pk_{name}"), **include),
        **stored,
    )


def _replace_daily(key: tuple[str, ...], *, clustered: bool) -> None:
    """The daily table again with another key, its rows copied across."""
    op.rename_table("rollups", "rollups_before")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rollups_before RENAME CONSTRAINT pk_rollups TO pk_rollups_before")
    _create("rollups", key, clustered=clustered)
    op.execute(f"INSERT INTO rollups ({COLUMNS}) SELECT {COLUMNS} FROM rollups_before")
    op.drop_table("rollups_before")


BRANCH_FIRST = ("branch_id", "day", "metric", "survey_id", "question_id", "value")
DAY_FIRST = ("day", "branch_id", "survey_id", "metric", "question_id", "value")


def _index_sessions(drop: str, create: str, columns: list[str], where: str) -> None:
    with op.batch_alter_table("survey_sessions", schema=None) as batch_op:
        batch_op.drop_index(drop)
        batch_op.create_index(
            create,
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def _count_stopped_sessions() -> None:
    """Sessions that ended unfinished, by the branch-local day they started and the question
    they reached, as `storage.results.record_stops` counts them from now on."""
    ended = (
        " FROM survey_sessions s JOIN branches b ON b.id = s.branch_id"
        " WHERE s.status NOT IN ('completed', 'open') AND s.reached IS NOT NULL"
    )
    insert = f"INSERT INTO rollups ({COLUMNS}) SELECT "
    rest = ", s.branch_id, s.survey_id, 'stopped', s.reached, '', COUNT(*)"
    group = " GROUP BY 1, s.branch_id, s.survey_id, s.reached"
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            insert + "CAST(timezone(b.timezone, s.started_at) AS DATE)" + rest + ended + group
        )
        return
    # SQLite knows no zones; Indonesia's keep one offset all year.
    for (zone,) in bind.execute(sa.text("SELECT DISTINCT timezone FROM branches")).all():
        offset = datetime.now(ZoneInfo(zone)).utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset else 0
        day = f"date(s.started_at, '{minutes:+d} minutes')"
        bind.execute(
            sa.text(insert + day + rest + ended + " AND b.timezone = :zone" + group),
            {"zone": zone},
        )


def upgrade() -> None:
    _index_sessions(
        "ix_survey_sessions_unfinished",
        "ix_survey_sessions_open_started",
        ["branch_id", "started_at"],
        "status = 'open'",
    )
    _replace_daily(BRANCH_FIRST, clustered=True)
    _count_stopped_sessions()
    _create("rollup_weeks", BRANCH_FIRST, clustered=True)
    if op.get_bind().dialect.name == "postgresql":
        monday = "CAST(date_trunc('week', day) AS DATE)"
    else:  # strftime's %w counts from Sunday = 0
        monday = "date(day, '-' || ((CAST(strftime('%w', day) AS INTEGER) + 6) % 7) || ' days')"
    op.execute(
        f"INSERT INTO rollup_weeks ({COLUMNS}) SELECT {monday}, branch_id, survey_id, metric,"
        " question_id, value, SUM(count) FROM rollups"
        f" GROUP BY {monday}, branch_id, survey_id, metric, question_id, value"
    )


def downgrade() -> None:
    op.drop_table("rollup_weeks")
    op.execute("DELETE FROM rollups WHERE metric = 'stopped'")
    _replace_daily(DAY_FIRST, clustered=False)
    _index_sessions(
        "ix_survey_sessions_open_started",
        "ix_survey_sessions_unfinished",
        ["started_at"],
        "status != 'completed'",
    )
