"""campaigns targeted by an imported list: the list's customer refs, as keyed hashes

Revision ID: 0011
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("by_list", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "campaign_targets",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("ref_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_targets_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", "ref_hash", name=op.f("pk_campaign_targets")),
    )


def downgrade() -> None:
    op.drop_table("campaign_targets")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("by_list")
