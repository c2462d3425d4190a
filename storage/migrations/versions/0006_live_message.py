"""the live question message of a session; one open session per customer

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    with op.batch_alter_table("survey_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("live_message_id", sa.BigInteger(), nullable=True))
    # Before the index can hold, a customer's older open sessions end (abandoned), as a new
    # link would have ended them: only the newest stays open.
    op.execute(
        "UPDATE survey_sessions SET status = 'abandoned', version = version + 1 "
        "WHERE status = 'open' AND id < (SELECT max(newer.id) FROM survey_sessions AS newer "
        "WHERE newer.customer_id = survey_sessions.customer_id AND newer.status = 'open')"
    )
    op.create_index(
        "uq_survey_sessions_open_customer",
        "survey_sessions",
        ["customer_id"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_survey_sessions_open_customer", table_name="survey_sessions")
    with op.batch_alter_table("survey_sessions", schema=None) as batch_op:
        batch_op.drop_column("live_message_id")
