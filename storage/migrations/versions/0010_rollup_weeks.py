"""weekly roll-ups beside the daily ones; both keyed branch first and stored in key order;
unfinished sessions indexed by branch and start

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
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


def _index_unfinished(*columns: str) -> None:
    with op.batch_alter_table("survey_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_sessions_unfinished")
        batch_op.create_index(
            "ix_survey_sessions_unfinished",
            list(columns),
            unique=False,
            sqlite_where=sa.text("status != 'completed'"),
            postgresql_where=sa.text("status != 'completed'"),
        )


def upgrade() -> None:
    _index_unfinished("branch_id", "started_at")
    _replace_daily(BRANCH_FIRST, clustered=True)
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
    _replace_daily(DAY_FIRST, clustered=False)
    _index_unfinished("started_at")
