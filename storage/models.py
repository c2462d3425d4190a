"""The schema, as SQLAlchemy Core tables.

Core, not the ORM: the answer path runs a handful of statements per update and Core costs about
30 % less CPU there. Repositories return plain dataclasses. Personal data (names, phones,
free-text answers, survey state that may hold free text) uses `EncryptedText`. Only Alembic
migrations change the database; this module is what they are checked against.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from storage.crypto import EncryptedText

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UTC_NOW = sa.func.current_timestamp()
OPEN_ONLY = sa.text("status = 'open'")  # the open sessions: one per customer


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite would otherwise hand back naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)


def _when(name: str, **kwargs: object) -> sa.Column:
    return sa.Column(name, UtcDateTime, **kwargs)


meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

regions = sa.Table(
    "regions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(16), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
)

branches = sa.Table(
    "branches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(16), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("region_id", sa.ForeignKey("regions.id"), nullable=False, index=True),
    sa.Column("timezone", sa.String(40), nullable=False, server_default="Asia/Jakarta"),
    sa.Column("survey_key", sa.String(32), nullable=True),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("telegram_id", sa.BigInteger, nullable=True, unique=True),
    sa.Column("locale", sa.String(8), nullable=False, server_default="id"),
    sa.Column("branch_id", sa.ForeignKey("branches.id"), nullable=True, index=True),
    sa.Column("name", EncryptedText, nullable=True),
    sa.Column("phone", EncryptedText, nullable=True),
    sa.Column("phone_hash", sa.String(64), nullable=True, index=True),
    sa.Column("consent_version", sa.String(32), nullable=True),
    _when("consent_at", nullable=True),
    sa.Column("opted_out", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("blocked", sa.Boolean, nullable=False, server_default=sa.false()),
    _when("created_at", nullable=False, server_default=UTC_NOW),
    _when("last_active_at", nullable=False, server_default=UTC_NOW),
    _when("erased_at", nullable=True),
    # From the bank's customer lists: the customer number (encrypted) and keyed hashes of it,
    # of the personal link's token and of the imported row (to see what a re-import changes).
    sa.Column("ref", EncryptedText, nullable=True),
    sa.Column("ref_hash", sa.String(64), nullable=True),
    sa.Column("link_hash", sa.String(64), nullable=True),
    sa.Column("row_hash", sa.String(64), nullable=True),
    sa.Index("ix_customers_ref_hash", "ref_hash", unique=True),
    sa.Index("ix_customers_link_hash", "link_hash", unique=True),
)

consents = sa.Table(
    "consents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),  # agree | decline | withdraw
    _when("at", nullable=False, server_default=UTC_NOW),
)

surveys = sa.Table(
    "surveys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    _when("created_at", nullable=False, server_default=UTC_NOW),
    sa.UniqueConstraint("key", "version", name="uq_surveys_key_version"),
    sa.UniqueConstraint("key", "checksum", name="uq_surveys_key_checksum"),
)

survey_links = sa.Table(
    "survey_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token", sa.String(40), nullable=False, unique=True),
    sa.Column("survey_key", sa.String(32), nullable=False),
    sa.Column("branch_id", sa.ForeignKey("branches.id"), nullable=True),
    _when("created_at", nullable=False, server_default=UTC_NOW),
    _when("expires_at", nullable=True),
)

survey_sessions = sa.Table(
    "survey_sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=True, index=True),
    sa.Column("survey_id", sa.ForeignKey("surveys.id"), nullable=False),
    sa.Column("branch_id", sa.ForeignKey("branches.id"), nullable=True, index=True),
    sa.Column("status", sa.String(12), nullable=False),  # open | completed | abandoned
    sa.Column("state", EncryptedText, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    # How far the session got (the last question shown), kept after it ends: no personal
    # data, and what drop-off counts.
    sa.Column("reached", sa.String(24), nullable=True),
    _when("started_at", nullable=False, server_default=UTC_NOW),
    _when("updated_at", nullable=False, server_default=UTC_NOW),
    _when("completed_at", nullable=True),
    # The message that shows the session's current question with live buttons, so a question
    # sent anew can take the keyboard off the one before (one live copy per chat).
    sa.Column("live_message_id", sa.BigInteger, nullable=True),
    # Whether the customer agreed, at the survey's end, to be contacted about the answers
    # (None: the survey did not ask); it decides whether exports name who answered.
    sa.Column("contact_consent", sa.Boolean, nullable=True),
    # The campaign whose invitation opened the session (None: a branch QR or a survey link).
    sa.Column("campaign_id", sa.Integer, nullable=True, index=True),
    sa.Index("ix_survey_sessions_customer_status", "customer_id", "status"),
    # Drop-off reads a scope's open sessions by branch and start (those that ended unfinished
    # are in the roll-ups). Neither column changes after the insert, so a press stays cheap.
    sa.Index(
        "ix_survey_sessions_open_started",
        "branch_id",
        "started_at",
        sqlite_where=OPEN_ONLY,
        postgresql_where=OPEN_ONLY,
    ),
    # One open session per customer, whichever process or tap opens it.
    sa.Index(
        "uq_survey_sessions_open_customer",
        "customer_id",
        unique=True,
        sqlite_where=OPEN_ONLY,
        postgresql_where=OPEN_ONLY,
    ),
)

answers = sa.Table(
    "answers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("session_id", sa.ForeignKey("survey_sessions.id"), nullable=False),
    sa.Column("question_id", sa.String(24), nullable=False),
    sa.Column("question_type", sa.String(8), nullable=False),
    sa.Column("value_number", sa.Float, nullable=True),
    sa.Column("value_choice", sa.String(400), nullable=True),  # option id, or ids joined by ","
    sa.Column("value_text", EncryptedText, nullable=True),
    sa.Column("skipped", sa.Boolean, nullable=False, server_default=sa.false()),
    _when("answered_at", nullable=False, server_default=UTC_NOW),
    sa.UniqueConstraint("session_id", "question_id", name="uq_answers_session_question"),
)


# Results read counts, not rows: per branch-local day, survey version, metric (started,
# completed, nps, rating, ces, choice; invited and responded, with the campaign's id as the
# question), question and value. Kept in the transaction that
# starts or completes a session, and rebuilt exactly from sessions and answers by
# `run_bot.py rebuild-rollups`. `rollup_weeks` holds the same counts per branch-local ISO week
# (`day` is its Monday), so a period reads whole weeks there and only its edge days here. The
# branch leads the key and the rows are stored in key order (SQLite: WITHOUT ROWID; PostgreSQL:
# the count rides in the key's index), so a scope reads each branch's run of days in one sweep.
def _rollup_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("branch_id", sa.Integer, nullable=False),
        sa.Column("survey_id", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(12), nullable=False),
        sa.Column("question_id", sa.String(24), nullable=False),
        sa.Column("value", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(
            "branch_id",
            "day",
            "metric",
            "survey_id",
            "question_id",
            "value",
            postgresql_include=["count"],
        ),
        # A scope's whole over one day or week, summed in key order with the counts at hand.
        sa.Index(
            f"ix_{name}_by_day",
            "day",
            "survey_id",
            "metric",
            "question_id",
            "value",
            "branch_id",
            "count",
        ),
        sqlite_with_rowid=False,
    )


rollups = _rollup_table("rollups")
rollup_weeks = _rollup_table("rollup_weeks")

processed_updates = sa.Table(
    "processed_updates",
    metadata,
    sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
    _when("processed_at", nullable=False, server_default=UTC_NOW),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    _when("at", nullable=False),
    sa.Column("actor", sa.String(40), nullable=False),  # customer:<id> | staff:<id> | system
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("target", sa.String(80), nullable=True),
    sa.Column("outcome", sa.String(12), nullable=False),  # allowed | refused | done
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
)

# -- staff ---------------------------------------------------------------------------------
# role: super_admin | admin | editor | viewer; scope: all | region:<code> | branch:<code>.
# `pending` holds what the next code a staff member types is for: a login, or a risky action
# waiting for its step-up code (JSON, no secrets). TOTP secrets are encrypted; the last accepted
# time step makes every code single-use.

staff = sa.Table(
    "staff",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("telegram_id", sa.BigInteger, nullable=True, unique=True),
    sa.Column("name", EncryptedText, nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("scope", sa.String(40), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_by", sa.ForeignKey("staff.id"), nullable=True),
    sa.Column("locale", sa.String(8), nullable=False, server_default="id"),
    sa.Column("totp_secret", EncryptedText, nullable=True),
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),
    _when("totp_last_at", nullable=True),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    _when("locked_until", nullable=True),
    sa.Column("pending", sa.Text, nullable=True),
    _when("pending_at", nullable=True),
    _when("created_at", nullable=False, server_default=UTC_NOW),
    _when("last_login_at", nullable=True),
    # Detractor alerts of the branches in scope reach this member (`/alerts on|off`).
    sa.Column("alerts", sa.Boolean, nullable=False, server_default=sa.false()),
    # The follow-up whose resolution note this member's next text is, and since when.
    sa.Column("note_for", sa.Integer, nullable=True),
    _when("note_asked_at", nullable=True),
    sa.Index(
        "ix_staff_alerting_scope",
        "scope",
        # Written as each database's compiler writes `alerts AND active`, so the planner uses it.
        sqlite_where=sa.text("alerts = 1 AND active = 1"),
        postgresql_where=sa.text("alerts AND active"),
    ),
)

staff_invitations = sa.Table(
    "staff_invitations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("scope", sa.String(40), nullable=False),
    sa.Column("name", EncryptedText, nullable=True),
    sa.Column("staff_id", sa.ForeignKey("staff.id"), nullable=True),  # a reset re-enrols them
    sa.Column("created_by", sa.ForeignKey("staff.id"), nullable=True),  # None: the command line
    _when("created_at", nullable=False, server_default=UTC_NOW),
    _when("expires_at", nullable=False),
    sa.Column("opened_by", sa.BigInteger, nullable=True),  # the Telegram user enrolling
    sa.Column("pending_secret", EncryptedText, nullable=True),
    sa.Column("secret_messages", sa.Text, nullable=False, server_default="[]"),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    _when("used_at", nullable=True),
)

staff_sessions = sa.Table(
    "staff_sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("staff_id", sa.ForeignKey("staff.id"), nullable=False, index=True),
    _when("opened_at", nullable=False),
    _when("expires_at", nullable=False),
    _when("closed_at", nullable=True),
    sa.Column("closed_reason", sa.String(12), nullable=True),  # logout | expired | revoked
)

# -- campaigns -----------------------------------------------------------------------------
# A campaign pins a survey version and targets the customers of a scope. status: draft |
# scheduled | running | paused | finished | cancelled. `setup` names the next question of the
# guided chat conversation while a draft is being built there. Each message to a customer is
# one delivery row (kind invite | remind1 | remind2), unique per campaign, customer and kind,
# moving pending -> sending -> sent | failed | blocked (or skipped, when no longer due).

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("survey_id", sa.ForeignKey("surveys.id"), nullable=True),
    sa.Column("scope", sa.String(40), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("setup", sa.String(12), nullable=True),
    _when("start_at", nullable=True),  # None: when launched
    sa.Column("reminders", sa.String(40), nullable=False, server_default="24,72"),  # hours
    sa.Column("expires_hours", sa.Integer, nullable=False, server_default="168"),
    sa.Column("quiet_start", sa.String(5), nullable=False, server_default="21:00"),
    sa.Column("quiet_end", sa.String(5), nullable=False, server_default="08:00"),
    sa.Column("created_by", sa.String(40), nullable=False),
    sa.Column("report_chat", sa.BigInteger, nullable=True),  # the launcher's chat, for progress
    sa.Column("report_message", sa.BigInteger, nullable=True),
    sa.Column("session_mark", sa.Integer, nullable=True),  # sessions after this id are its own
    sa.Column("excluded", sa.Text, nullable=True),  # JSON: reason -> customers left out at start
    sa.Column("by_list", sa.Boolean, nullable=False, server_default=sa.false()),  # see targets
    _when("created_at", nullable=False),
    _when("started_at", nullable=True),
    _when("expires_at", nullable=True),
    _when("ended_at", nullable=True),
    sa.Index("ix_campaigns_status", "status"),
)

# The customer refs (keyed hashes, never the refs) of the lists a campaign targets.
campaign_targets = sa.Table(
    "campaign_targets",
    metadata,
    sa.Column("campaign_id", sa.ForeignKey("campaigns.id"), primary_key=True),
    sa.Column("ref_hash", sa.String(64), primary_key=True),
)

campaign_deliveries = sa.Table(
    "campaign_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign_id", sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    _when("due_at", nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    _when("sent_at", nullable=True),
    sa.Column("error", sa.String(40), nullable=True),
    # The customer's branch when the invitation was sent: what results count it under.
    sa.Column("branch_id", sa.Integer, nullable=True),
    sa.UniqueConstraint(
        "campaign_id", "customer_id", "kind", name="uq_campaign_deliveries_campaign_id"
    ),
    sa.Index("ix_campaign_deliveries_status_due", "status", "due_at"),
)

# -- follow-ups (closed loop) --------------------------------------------------------------
# A finished response at or below its survey's alert thresholds, at a branch whose staff take
# alerts, becomes one follow-up in the transaction that completes it. status: open | taken |
# resolved. `alerted_at` is set when the alert is claimed for sending (at most once), and
# `escalated_at` when it went to the region's admins. The note may hold personal data.

follow_ups = sa.Table(
    "follow_ups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("session_id", sa.ForeignKey("survey_sessions.id"), nullable=False, unique=True),
    sa.Column("branch_id", sa.ForeignKey("branches.id"), nullable=False, index=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("taken_by", sa.ForeignKey("staff.id"), nullable=True),
    sa.Column("resolved_by", sa.ForeignKey("staff.id"), nullable=True),
    sa.Column("note", EncryptedText, nullable=True),
    _when("created_at", nullable=False),
    _when("alerted_at", nullable=True),
    _when("taken_at", nullable=True),
    _when("resolved_at", nullable=True),
    _when("escalated_at", nullable=True),
    sa.Index("ix_follow_ups_status_created", "status", "created_at"),
)
