"""customer lists: the bank's customer number, personal links, imported rows

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = ("ref", "ref_hash", "link_hash", "row_hash")


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ref_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("link_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("row_hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_customers_ref_hash", ["ref_hash"], unique=True)
        batch_op.create_index("ix_customers_link_hash", ["link_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_link_hash")
        batch_op.drop_index("ix_customers_ref_hash")
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
