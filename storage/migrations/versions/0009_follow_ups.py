"""closed loop: staff who take detractor alerts, and the follow-ups the alerts open

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Written as each database's compiler writes `alerts AND active`, so the planner uses it.
_ALERTING_SQLITE = sa.text("alerts = 1 AND active = 1")
_ALERTING_PG = sa.text("alerts AND active")


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("alerts", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("note_for", sa.Integer(), nullable=True))
        batch_op.add_column(_when("note_asked_at"))
    op.create_index(
        "ix_staff_alerting_scope",
        "staff",
        ["scope"],
        unique=False,
        sqlite_where=_ALERTING_SQLITE,
        postgresql_where=_ALERTING_PG,
    )
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("branch_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("taken_by", sa.Integer(), nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _when("created_at", False),
        _when("alerted_at"),
        _when("taken_at"),
        _when("resolved_at"),
        _when("escalated_at"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["survey_sessions.id"],
            name=op.f("fk_follow_ups_session_id_survey_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_follow_ups_branch_id_branches")
        ),
        sa.ForeignKeyConstraint(
            ["taken_by"], ["staff.id"], name=op.f("fk_follow_ups_taken_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"], ["staff.id"], name=op.f("fk_follow_ups_resolved_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_ups")),
        sa.UniqueConstraint("session_id", name=op.f("uq_follow_ups_session_id")),
    )
    op.create_index("ix_follow_ups_branch_id", "follow_ups", ["branch_id"])
    op.create_index("ix_follow_ups_status_created", "follow_ups", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_follow_ups_status_created", table_name="follow_ups")
    op.drop_index("ix_follow_ups_branch_id", table_name="follow_ups")
    op.drop_table("follow_ups")
    op.drop_index("ix_staff_alerting_scope", table_name="staff")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("note_asked_at")
        batch_op.drop_column("note_for")
        batch_op.drop_column("alerts")
