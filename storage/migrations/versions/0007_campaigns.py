"""campaigns and their deliveries

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("setup", sa.String(length=12), nullable=True),
        _when("start_at"),
        sa.Column("reminders", sa.String(length=40), server_default="24,72", nullable=False),
        sa.Column("expires_hours", sa.Integer(), server_default="168", nullable=False),
        sa.Column("quiet_start", sa.String(length=5), server_default="21:00", nullable=False),
        sa.Column("quiet_end", sa.String(length=5), server_default="08:00", nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("report_chat", sa.BigInteger(), nullable=True),
        sa.Column("report_message", sa.BigInteger(), nullable=True),
        sa.Column("session_mark", sa.Integer(), nullable=True),
        sa.Column("excluded", sa.Text(), nullable=True),
        _when("created_at", False),
        _when("started_at"),
        _when("expires_at"),
        _when("ended_at"),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["surveys.id"], name=op.f("fk_campaigns_survey_id_surveys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_status", "campaigns", ["status"])
    op.create_table(
        "campaign_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        _when("due_at", False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _when("sent_at"),
        sa.Column("error", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_deliveries_campaign_id_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_campaign_deliveries_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_deliveries")),
        sa.UniqueConstraint(
            "campaign_id", "customer_id", "kind", name="uq_campaign_deliveries_campaign_id"
        ),
    )
    op.create_index("ix_campaign_deliveries_customer_id", "campaign_deliveries", ["customer_id"])
    op.create_index(
        "ix_campaign_deliveries_status_due", "campaign_deliveries", ["status", "due_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_deliveries_status_due", table_name="campaign_deliveries")
    op.drop_index("ix_campaign_deliveries_customer_id", table_name="campaign_deliveries")
    op.drop_table("campaign_deliveries")
    op.drop_index("ix_campaigns_status", table_name="campaigns")
    op.drop_table("campaigns")
