"""roll-ups also indexed by day, then key, with their counts: a scope's whole over a day or a
week is summed in key order, without sorting every branch's rows

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ["day", "survey_id", "metric", "question_id", "value", "branch_id", "count"]


def upgrade() -> None:
    for table in ("rollups", "rollup_weeks"):
        op.create_index(op.f(f"ix_{table}_by_day"), table, COLUMNS, unique=False)


def downgrade() -> None:
    for table in ("rollups", "rollup_weeks"):
        op.drop_index(op.f(f"ix_{table}_by_day"), table_name=table)
