"""daily roll-ups for results, and an index of unfinished sessions for drop-off

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=12), nullable=False),
        sa.Column("question_id", sa.String(length=24), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "branch_id",
            "survey_id",
            "metric",
            "question_id",
            "value",
            name=op.f("pk_rollups"),
        ),
    )
    with op.batch_alter_table("survey_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_survey_sessions_unfinished",
            ["started_at"],
            unique=False,
            sqlite_where=sa.text("status != 'completed'"),
            postgresql_where=sa.text("status != 'completed'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("survey_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_sessions_unfinished")
    op.drop_table("rollups")
