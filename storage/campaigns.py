"""Campaigns and their deliveries: the rows the campaign service and the sender share.

The database is the truth about what is due: a delivery is claimed (`pending -> sending`) before
it is sent and settled after, so ticks in any process may look for work at any time. On
PostgreSQL the claim skips rows another process holds (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import invitations
from storage import results as rollups
from storage.models import (
    campaign_deliveries,
    campaign_targets,
    campaigns,
    customers,
    survey_sessions,
    surveys,
)
from storage.prepared import Prepared

# Campaign statuses
DRAFT, SCHEDULED, RUNNING, PAUSED = "draft", "scheduled", "running", "paused"
FINISHED, CANCELLED = "finished", "cancelled"
ENDED = (FINISHED, CANCELLED)
# Delivery statuses and kinds
PENDING, SENDING, SENT, FAILED, BLOCKED, SKIPPED = (
    "pending",
    "sending",
    "sent",
    "failed",
    "blocked",
    "skipped",
)
INVITE = "invite"
REMINDERS = ("remind1", "remind2")


@dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    survey_id: int | None
    scope: str
    status: str
    setup: str | None
    start_at: datetime | None
    reminders: tuple[int, ...]  # hours after the start
    expires_hours: int
    quiet_start: str
    quiet_end: str
    created_by: str
    report_chat: int | None
    report_message: int | None
    session_mark: int | None
    excluded: dict[str, int] | None
    created_at: datetime
    started_at: datetime | None
    expires_at: datetime | None
    by_list: bool = False  # only the customers of its imported lists (campaign_targets)


def _campaign(row: sa.Row) -> Campaign:
    return Campaign(
        row.id,
        row.name,
        row.survey_id,
        row.scope,
        row.status,
        row.setup,
        row.start_at,
        tuple(int(h) for h in row.reminders.split(",") if h),
        row.expires_hours,
        row.quiet_start,
        row.quiet_end,
        row.created_by,
        row.report_chat,
        row.report_message,
        row.session_mark,
        None if row.excluded is None else json.loads(row.excluded),
        row.created_at,
        row.started_at,
        row.expires_at,
        bool(row.by_list),
    )


async def create(connection: AsyncConnection, **values: object) -> int:
    result = await connection.execute(
        sa.insert(campaigns).values(**values).returning(campaigns.c.id)
    )
    return int(result.scalar_one())


async def get(
    connection: AsyncConnection, campaign_id: int, *, lock: bool = False
) -> Campaign | None:
    statement = sa.select(campaigns).where(campaigns.c.id == campaign_id)
    if lock and connection.dialect.name == "postgresql":
        statement = statement.with_for_update()
    row = (await connection.execute(statement)).first()
    return None if row is None else _campaign(row)


async def listed(connection: AsyncConnection, limit: int = 50) -> list[Campaign]:
    """The latest campaigns, newest first (drafts still being set up in chat are left out)."""
    rows = await connection.execute(
        sa.select(campaigns)
        .where(campaigns.c.setup.is_(None))
        .order_by(campaigns.c.id.desc())
        .limit(limit)
    )
    return [_campaign(row) for row in rows]


async def update(connection: AsyncConnection, campaign_id: int, **values: object) -> None:
    await connection.execute(
        sa.update(campaigns).where(campaigns.c.id == campaign_id).values(**values)
    )


async def awaiting_list(
    connection: AsyncConnection, created_by: str, since: datetime
) -> int | None:
    """The newest draft `created_by` began since `since` that waits for its list's file."""
    return await connection.scalar(
        sa.select(campaigns.c.id)
        .where(
            campaigns.c.created_by == created_by,
            campaigns.c.status == DRAFT,
            campaigns.c.setup == "list",
            campaigns.c.created_at >= since,
        )
        .order_by(campaigns.c.id.desc())
        .limit(1)
    )


async def in_status(
    connection: AsyncConnection, statuses: Sequence[str], *, lock: bool = False
) -> list[Campaign]:
    statement = sa.select(campaigns).where(campaigns.c.status.in_(statuses))
    if lock and connection.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return [_campaign(row) for row in await connection.execute(statement)]


# -- the audience ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """Who a campaign would invite, and how many are left out for each reason."""

    targeted: tuple[int, ...]
    excluded: dict[str, int]


async def audience(
    connection: AsyncConnection,
    branch_ids: Iterable[int] | None,
    notice_version: str,
    cooldown_since: datetime | None,
    campaign_id: int | None = None,
    *,
    by_list: bool = False,
) -> Audience:
    """The customers of the branches (None: every customer) who can be invited now; with
    `by_list`, only those of the campaign's imported lists.

    A customer is left out, for the first reason that applies, when a list names a ref no
    customer has (`unknown_ref`) or a customer outside the branches (`not_in_scope`), when the
    bot cannot message them (no Telegram account, no consent to the current notice, opted out,
    blocked the bot) or another campaign invited them since `cooldown_since`.
    """
    columns = (
        customers.c.id,
        customers.c.branch_id,
        customers.c.telegram_id,
        customers.c.consent_version,
        customers.c.opted_out,
        customers.c.blocked,
    )
    inside = None if branch_ids is None else set(branch_ids)
    if by_list:
        statement = (
            sa.select(*columns)
            .select_from(
                campaign_targets.outerjoin(
                    customers,
                    sa.and_(
                        customers.c.ref_hash == campaign_targets.c.ref_hash,
                        customers.c.erased_at.is_(None),
                    ),
                )
            )
            .where(campaign_targets.c.campaign_id == campaign_id)
        )
    else:
        statement = sa.select(*columns).where(customers.c.erased_at.is_(None))
        if inside is not None:
            statement = statement.where(customers.c.branch_id.in_(sorted(inside)))
    recent: set[int] = set()
    if cooldown_since is not None:
        invited = sa.select(campaign_deliveries.c.customer_id).where(
            campaign_deliveries.c.kind == INVITE,
            campaign_deliveries.c.status == SENT,
            campaign_deliveries.c.sent_at >= cooldown_since,
        )
        if campaign_id is not None:
            invited = invited.where(campaign_deliveries.c.campaign_id != campaign_id)
        recent = set((await connection.scalars(invited)).all())
    targeted: list[int] = []
    excluded: Counter[str] = Counter()
    for row in await connection.execute(statement.order_by(customers.c.id)):
        if row.id is None:
            excluded["unknown_ref"] += 1
        elif inside is not None and row.branch_id not in inside:
            excluded["not_in_scope"] += 1
        elif row.telegram_id is None:
            excluded["no_telegram"] += 1
        elif row.consent_version != notice_version:
            excluded["no_consent"] += 1
        elif row.opted_out:
            excluded["opted_out"] += 1
        elif row.blocked:
            excluded["blocked"] += 1
        elif row.id in recent:
            excluded["cooldown"] += 1
        else:
            targeted.append(row.id)
    return Audience(tuple(targeted), dict(excluded))


async def add_targets(
    connection: AsyncConnection, campaign_id: int, ref_hashes: Sequence[str]
) -> int:
    """Add a list's customer refs (keyed hashes) to the campaign's; a ref already there counts
    once. How many were new."""
    existing = set(
        (
            await connection.scalars(
                sa.select(campaign_targets.c.ref_hash).where(
                    campaign_targets.c.campaign_id == campaign_id
                )
            )
        ).all()
    )
    rows = [
        {"campaign_id": campaign_id, "ref_hash": ref_hash}
        for ref_hash in dict.fromkeys(ref_hashes)
        if ref_hash not in existing
    ]
    for start in range(0, len(rows), 1000):
        await connection.execute(sa.insert(campaign_targets), rows[start : start + 1000])
    await update(connection, campaign_id, by_list=True)
    return len(rows)


async def add_deliveries(
    connection: AsyncConnection,
    campaign_id: int,
    customer_ids: Sequence[int],
    kind: str,
    due_at: datetime,
) -> None:
    """One delivery per customer; the unique key keeps a customer to one of each kind."""
    existing = set(
        (
            await connection.scalars(
                sa.select(campaign_deliveries.c.customer_id).where(
                    campaign_deliveries.c.campaign_id == campaign_id,
                    campaign_deliveries.c.kind == kind,
                )
            )
        ).all()
    )
    rows = [
        {
            "campaign_id": campaign_id,
            "customer_id": customer_id,
            "kind": kind,
            "status": PENDING,
            "due_at": due_at,
        }
        for customer_id in dict.fromkeys(customer_ids)
        if customer_id not in existing
    ]
    for start in range(0, len(rows), 1000):
        await connection.execute(sa.insert(campaign_deliveries), rows[start : start + 1000])


async def open_survey(connection: AsyncConnection, number: str) -> int | None:
    """The survey version a running (or paused) campaign pins, for its invitation link."""
    if not number.isdigit() or len(number) > 9:
        return None
    return await connection.scalar(
        sa.select(campaigns.c.survey_id).where(
            campaigns.c.id == int(number), campaigns.c.status.in_((RUNNING, PAUSED))
        )
    )


async def survey_keys(connection: AsyncConnection) -> list[str]:
    keys = await connection.scalars(sa.select(surveys.c.key).distinct().order_by(surveys.c.key))
    return list(keys.all())


async def last_session_id(connection: AsyncConnection) -> int:
    return int(await connection.scalar(sa.select(sa.func.max(survey_sessions.c.id))) or 0)


# -- counts ----------------------------------------------------------------------------------


async def counts(connection: AsyncConnection, campaign_id: int) -> dict[tuple[str, str], int]:
    """(kind, status) -> how many deliveries."""
    rows = await connection.execute(
        sa.select(campaign_deliveries.c.kind, campaign_deliveries.c.status, sa.func.count())
        .where(campaign_deliveries.c.campaign_id == campaign_id)
        .group_by(campaign_deliveries.c.kind, campaign_deliveries.c.status)
    )
    return {(row[0], row[1]): int(row[2]) for row in rows}


def _own_sessions(campaign: Campaign) -> sa.Select:
    """Sessions of the campaign's invitees on its pinned survey since it started, however they
    were opened: a reminder does not go to someone who answered through a branch's link."""
    invitees = sa.select(campaign_deliveries.c.customer_id).where(
        campaign_deliveries.c.campaign_id == campaign.id,
        campaign_deliveries.c.kind == INVITE,
        campaign_deliveries.c.status == SENT,
    )
    return sa.select(survey_sessions.c.customer_id, survey_sessions.c.status).where(
        survey_sessions.c.survey_id == campaign.survey_id,
        survey_sessions.c.id > (campaign.session_mark or 0),
        survey_sessions.c.customer_id.in_(invitees),
    )


def _answered(campaign: Campaign) -> sa.Select:
    """Customers who completed a session opened from the campaign's invitation: its responses,
    counted as results count them (`storage.invitations`)."""
    return (
        sa.select(survey_sessions.c.customer_id)
        .where(
            survey_sessions.c.campaign_id == campaign.id,
            survey_sessions.c.status == "completed",
        )
        .distinct()
    )


async def responses(connection: AsyncConnection, campaign: Campaign) -> int:
    """Invitees who completed the survey their invitation opened."""
    own = _answered(campaign).subquery()
    count = await connection.scalar(sa.select(sa.func.count()).select_from(own))
    return int(count or 0)


async def by_branch(
    connection: AsyncConnection, campaign: Campaign
) -> list[tuple[int | None, int, int]]:
    """(branch id, invitations sent, responses) for each branch the campaign invited in."""
    sent = (
        sa.select(customers.c.branch_id, sa.func.count().label("n"))
        .select_from(campaign_deliveries.join(customers))
        .where(
            campaign_deliveries.c.campaign_id == campaign.id,
            campaign_deliveries.c.kind == INVITE,
            campaign_deliveries.c.status == SENT,
        )
        .group_by(customers.c.branch_id)
    )
    own = _answered(campaign).subquery()
    answered = (
        sa.select(customers.c.branch_id, sa.func.count())
        .select_from(own.join(customers, customers.c.id == own.c.customer_id))
        .group_by(customers.c.branch_id)
    )
    responses = {row[0]: int(row[1]) for row in await connection.execute(answered)}
    rows = await connection.execute(sent)
    return [(row[0], int(row[1]), responses.get(row[0], 0)) for row in rows]


async def progress_of(
    connection: AsyncConnection, campaign: Campaign, customer_ids: Sequence[int]
) -> dict[int, str]:
    """customer -> `completed` or `started` for those who opened the campaign's survey."""
    rows = await connection.execute(
        _own_sessions(campaign).where(survey_sessions.c.customer_id.in_(list(customer_ids)))
    )
    found: dict[int, str] = {}
    for customer_id, status in rows:
        if status == "completed" or customer_id not in found:
            found[customer_id] = "completed" if status == "completed" else "started"
    return found


async def invite_status(
    connection: AsyncConnection, campaign_id: int, customer_ids: Sequence[int]
) -> dict[int, str]:
    rows = await connection.execute(
        sa.select(campaign_deliveries.c.customer_id, campaign_deliveries.c.status).where(
            campaign_deliveries.c.campaign_id == campaign_id,
            campaign_deliveries.c.kind == INVITE,
            campaign_deliveries.c.customer_id.in_(list(customer_ids)),
        )
    )
    return {int(row[0]): str(row[1]) for row in rows}


@dataclass(frozen=True)
class Received:
    """One campaign message meant for a customer, as their data export shows it."""

    campaign: str
    kind: str
    status: str
    due_at: datetime
    sent_at: datetime | None


async def received_by(connection: AsyncConnection, customer_id: int) -> list[Received]:
    """Every invitation and reminder meant for this customer, oldest first."""
    d = campaign_deliveries.c
    rows = await connection.execute(
        sa.select(campaigns.c.name, d.kind, d.status, d.due_at, d.sent_at)
        .join_from(campaign_deliveries, campaigns, campaigns.c.id == d.campaign_id)
        .where(d.customer_id == customer_id)
        .order_by(d.due_at, d.id)
    )
    return [Received(*row) for row in rows]


# -- claiming and settling -------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """A claimed delivery with what sending it needs."""

    id: int
    campaign_id: int
    customer_id: int
    kind: str
    attempts: int
    telegram_id: int | None
    locale: str
    branch_id: int | None
    consent_version: str | None
    opted_out: bool
    blocked: bool


def _mark_statement(dialect: str) -> sa.Update:
    """`pending -> sending` for a list of ids given as one parameter (a JSON array on SQLite,
    an array on PostgreSQL), so the statement is compiled once and runs on the driver."""
    d = campaign_deliveries.c
    if dialect == "postgresql":
        chosen = d.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Integer)))
    else:
        listed = sa.func.json_each(sa.bindparam("ids", type_=sa.String)).table_valued("value")
        chosen = d.id.in_(sa.select(listed.c.value))
    return (
        sa.update(campaign_deliveries)
        .where(chosen, d.status == PENDING)
        .values(status=SENDING, attempts=d.attempts + 1)
        .returning(d.id)
    )


_MARK = Prepared(_mark_statement)


async def mark_sending(connection: AsyncConnection, delivery_ids: Sequence[int]) -> set[int]:
    """`pending -> sending` for a slice of a batch whose turn to go out has come, in one
    statement; the ids marked (a delivery settled elsewhere meanwhile, by a cancel, is not).
    The sender marks about a hundred slices a second during a blast: the statement runs on
    the driver, without SQLAlchemy's execution or, on SQLite, a trip to its thread."""
    if not delivery_ids:
        return set()
    ids = list(delivery_ids)
    found = await _MARK.rows(
        connection, ids=ids if connection.dialect.name == "postgresql" else json.dumps(ids)
    )
    return {int(row.id) for row in found}


async def claim(
    connection: AsyncConnection,
    at: datetime,
    campaign_quiet: dict[int, set[int]],
    busy_since: datetime,
    limit: int,
    *,
    excluding: Sequence[int] = (),
) -> list[Due]:
    """Up to `limit` due deliveries of the running campaigns, oldest first. Only the elected
    sender claims; each delivery becomes `sending` only once its turn to go out has come
    (`mark_sending`), so a crash leaves in `sending` only messages that were on their way.

    `campaign_quiet` maps each running campaign to the branches now in their quiet hours (-1:
    customers without a branch); those wait. So does anyone answering a survey right now (a
    session touched since `busy_since`): an invitation never interrupts one. `excluding`: the
    batch going out while this one is claimed, not yet all marked `sending`.
    """
    if not campaign_quiet:
        return []
    branch = sa.func.coalesce(customers.c.branch_id, -1)
    allowed = sa.or_(
        *(
            sa.and_(
                campaign_deliveries.c.campaign_id == campaign_id,
                branch.not_in(sorted(quiet)) if quiet else sa.true(),
            )
            for campaign_id, quiet in campaign_quiet.items()
        )
    )
    busy = sa.exists().where(
        survey_sessions.c.customer_id == campaign_deliveries.c.customer_id,
        survey_sessions.c.status == "open",
        survey_sessions.c.updated_at > busy_since,
    )
    picked = (
        sa.select(campaign_deliveries.c.id)
        .join(customers, customers.c.id == campaign_deliveries.c.customer_id)
        .where(
            campaign_deliveries.c.status == PENDING,
            campaign_deliveries.c.due_at <= at,
            allowed,
            ~busy,
            campaign_deliveries.c.id.not_in(list(excluding)) if excluding else sa.true(),
        )
        .order_by(campaign_deliveries.c.due_at, campaign_deliveries.c.id)
        .limit(limit)
    )
    if connection.dialect.name == "postgresql":
        picked = picked.with_for_update(of=campaign_deliveries, skip_locked=True)
    ids = list((await connection.scalars(picked)).all())
    if not ids:
        return []
    rows = await connection.execute(
        sa.select(
            campaign_deliveries.c.id,
            campaign_deliveries.c.campaign_id,
            campaign_deliveries.c.customer_id,
            campaign_deliveries.c.kind,
            campaign_deliveries.c.attempts,
            customers.c.telegram_id,
            customers.c.locale,
            customers.c.branch_id,
            customers.c.consent_version,
            customers.c.opted_out,
            customers.c.blocked,
        )
        .join(customers, customers.c.id == campaign_deliveries.c.customer_id)
        .where(campaign_deliveries.c.id.in_(ids))
        .order_by(campaign_deliveries.c.due_at, campaign_deliveries.c.id)
    )
    return [Due(*row) for row in rows]


@dataclass(frozen=True)
class Settled:
    delivery_id: int
    status: str  # sent | failed | blocked | skipped | pending (sent back, e.g. after a 429)
    at: datetime
    error: str | None = None


async def settle(connection: AsyncConnection, results: Sequence[Settled]) -> None:
    """Record the outcome of a batch of deliveries in one transaction."""
    for status in {r.status for r in results}:
        group = [r for r in results if r.status == status]
        values: dict[str, object] = {"status": status}
        if status == SENT:
            values["sent_at"] = sa.bindparam("at")
        if status != PENDING:
            values["error"] = sa.bindparam("err")
        await connection.execute(
            sa.update(campaign_deliveries)
            .where(campaign_deliveries.c.id == sa.bindparam("delivery_id"))
            .values(**values),
            [{"delivery_id": r.delivery_id, "at": r.at, "err": r.error} for r in group],
        )
    await invitations.record_sent(
        connection, [(r.delivery_id, r.at) for r in results if r.status == SENT]
    )


async def settle_interrupted(connection: AsyncConnection, at: datetime) -> int:
    """Deliveries a dead sender left in `sending` count as sent: they were handed to Telegram
    (or were about to be), and sending them again could invite someone twice."""
    left = list(
        (
            await connection.scalars(
                sa.select(campaign_deliveries.c.id).where(campaign_deliveries.c.status == SENDING)
            )
        ).all()
    )
    if not left:
        return 0
    result = await connection.execute(
        sa.update(campaign_deliveries)
        .where(campaign_deliveries.c.id.in_(left), campaign_deliveries.c.status == SENDING)
        .values(status=SENT, sent_at=at, error="unconfirmed")
    )
    await invitations.record_sent(connection, [(delivery, at) for delivery in left])
    return result.rowcount


async def skip_pending(connection: AsyncConnection, campaign_id: int, reason: str) -> int:
    result = await connection.execute(
        sa.update(campaign_deliveries)
        .where(
            campaign_deliveries.c.campaign_id == campaign_id,
            campaign_deliveries.c.status == PENDING,
        )
        .values(status=SKIPPED, error=reason)
    )
    return result.rowcount


async def pending_count(connection: AsyncConnection, at: datetime) -> int:
    """Deliveries due now and not yet settled, over all running campaigns: the queue depth."""
    count = await connection.scalar(
        sa.select(sa.func.count())
        .select_from(campaign_deliveries.join(campaigns))
        .where(
            campaigns.c.status == RUNNING,
            campaign_deliveries.c.status.in_((PENDING, SENDING)),
            campaign_deliveries.c.due_at <= at,
        )
    )
    return int(count or 0)


async def end_open_sessions(connection: AsyncConnection, campaign: Campaign) -> int:
    """Close the sessions the campaign's invitations opened that are still open (its expiry)."""
    ended = [
        tuple(row)
        for row in await connection.execute(
            sa.update(survey_sessions)
            .where(survey_sessions.c.campaign_id == campaign.id, survey_sessions.c.status == "open")
            .values(status="abandoned", version=survey_sessions.c.version + 1)
            .returning(
                survey_sessions.c.branch_id,
                survey_sessions.c.survey_id,
                survey_sessions.c.started_at,
                survey_sessions.c.reached,
            )
        )
    ]
    await rollups.record_stops(connection, ended)  # drop-off counts them where they stopped
    return len(ended)


async def mark_blocked(connection: AsyncConnection, telegram_id: int, blocked: bool) -> None:
    await connection.execute(
        sa.update(customers).where(customers.c.telegram_id == telegram_id).values(blocked=blocked)
    )


async def mark_customers_blocked(connection: AsyncConnection, customer_ids: Iterable[int]) -> None:
    ids = list(customer_ids)
    if ids:
        await connection.execute(
            sa.update(customers).where(customers.c.id.in_(ids)).values(blocked=True)
        )
