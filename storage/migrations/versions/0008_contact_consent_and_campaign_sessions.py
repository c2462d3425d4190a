"""contact consent on responses; sessions opened by a campaign; the branch an invitation went to

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("survey_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_consent", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_survey_sessions_campaign_id", ["campaign_id"], unique=False)
    with op.batch_alter_table("campaign_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("branch_id", sa.Integer(), nullable=True))
    # Invitations sent before now count under their customer's branch of today; run
    # `run_bot.py rebuild-rollups` after upgrading to count them in results.
    op.execute(
        "UPDATE campaign_deliveries SET branch_id = (SELECT customers.branch_id FROM customers "
        "WHERE customers.id = campaign_deliveries.customer_id) WHERE status = 'sent'"
    )


def downgrade() -> None:
    with op.batch_alter_table("campaign_deliveries", schema=None) as batch_op:
        batch_op.drop_column("branch_id")
    with op.batch_alter_table("survey_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_sessions_campaign_id")
        batch_op.drop_column("campaign_id")
        batch_op.drop_column("contact_consent")
