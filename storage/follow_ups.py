"""Follow-ups of detractor alerts, and the staff who take alerts.

Plain reads and writes; who may act on which follow-up is decided by `bot/services/follow_up.py`.
Claims (alerts to send, follow-ups to escalate) set their mark in the same statement that picks
them, locking with SKIP LOCKED on PostgreSQL, so two processes never claim the same row.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import branches, follow_ups, regions, staff, survey_sessions

OPEN, TAKEN, RESOLVED = "open", "taken", "resolved"
UNRESOLVED = (OPEN, TAKEN)


@dataclass(frozen=True)
class FollowUp:
    id: int
    session_id: int
    branch_id: int
    branch_code: str
    branch_name: str
    survey_id: int
    status: str
    taken_by: int | None
    note: str | None
    created_at: datetime
    taken_at: datetime | None
    resolved_at: datetime | None
    escalated_at: datetime | None


@dataclass(frozen=True)
class Recipient:
    staff_id: int
    telegram_id: int
    locale: str


_COLUMNS = (
    follow_ups.c.id,
    follow_ups.c.session_id,
    follow_ups.c.branch_id,
    branches.c.code,
    branches.c.name,
    survey_sessions.c.survey_id,
    follow_ups.c.status,
    follow_ups.c.taken_by,
    follow_ups.c.note,
    follow_ups.c.created_at,
    follow_ups.c.taken_at,
    follow_ups.c.resolved_at,
    follow_ups.c.escalated_at,
)
_FROM = follow_ups.join(branches, branches.c.id == follow_ups.c.branch_id).join(
    survey_sessions, survey_sessions.c.id == follow_ups.c.session_id
)


def _covering_scopes(branch_code: sa.ColumnElement, region_code: sa.ColumnElement) -> list:
    """The staff scopes that cover a branch: all, its region, itself."""
    return [
        sa.literal("all"),
        sa.literal("branch:") + branch_code,
        sa.literal("region:") + sa.func.coalesce(region_code, ""),
    ]


async def alerted_branch(connection: AsyncConnection, branch_id: int) -> bool:
    """Whether an active staff member with this branch in scope takes alerts: one query, on
    the partial index of alerting staff."""
    statement = (
        sa.select(sa.literal(1))
        .select_from(branches.outerjoin(regions, regions.c.id == branches.c.region_id))
        .where(
            branches.c.id == branch_id,
            sa.exists().where(
                staff.c.alerts,
                staff.c.active,
                staff.c.telegram_id.is_not(None),
                staff.c.scope.in_(_covering_scopes(branches.c.code, regions.c.code)),
            ),
        )
    )
    return (await connection.scalar(statement)) is not None


async def open_one(
    connection: AsyncConnection, session_id: int, branch_id: int, at: datetime
) -> int:
    """A new open follow-up of a completed session."""
    result = await connection.execute(
        sa.insert(follow_ups).values(
            session_id=session_id, branch_id=branch_id, status=OPEN, created_at=at
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


async def get(
    connection: AsyncConnection, follow_up_id: int, *, lock: bool = False
) -> FollowUp | None:
    statement = sa.select(*_COLUMNS).select_from(_FROM).where(follow_ups.c.id == follow_up_id)
    if lock and connection.dialect.name == "postgresql":
        statement = statement.with_for_update(of=follow_ups)
    row = (await connection.execute(statement)).first()
    return None if row is None else FollowUp(*row)


async def unresolved(
    connection: AsyncConnection, branch_ids: Collection[int] | None, limit: int = 50
) -> list[FollowUp]:
    """Open and taken follow-ups of these branches (None: every branch), oldest first."""
    statement = (
        sa.select(*_COLUMNS)
        .select_from(_FROM)
        .where(follow_ups.c.status.in_(UNRESOLVED))
        .order_by(follow_ups.c.created_at, follow_ups.c.id)
        .limit(limit)
    )
    if branch_ids is not None:
        statement = statement.where(follow_ups.c.branch_id.in_(list(branch_ids)))
    return [FollowUp(*row) for row in await connection.execute(statement)]


async def count_unresolved(connection: AsyncConnection, branch_ids: Collection[int] | None) -> int:
    statement = sa.select(sa.func.count()).where(follow_ups.c.status.in_(UNRESOLVED))
    if branch_ids is not None:
        statement = statement.where(follow_ups.c.branch_id.in_(list(branch_ids)))
    return int(await connection.scalar(statement) or 0)


async def take(connection: AsyncConnection, follow_up_id: int, staff_id: int, at: datetime) -> bool:
    """`open -> taken`; False when it was not open any more."""
    result = await connection.execute(
        sa.update(follow_ups)
        .where(follow_ups.c.id == follow_up_id, follow_ups.c.status == OPEN)
        .values(status=TAKEN, taken_by=staff_id, taken_at=at)
    )
    return result.rowcount == 1


async def resolve(
    connection: AsyncConnection, follow_up_id: int, staff_id: int, note: str, at: datetime
) -> bool:
    """`open | taken -> resolved` with the note; False when it was resolved already."""
    result = await connection.execute(
        sa.update(follow_ups)
        .where(follow_ups.c.id == follow_up_id, follow_ups.c.status.in_(UNRESOLVED))
        .values(
            status=RESOLVED,
            resolved_by=staff_id,
            note=note,
            resolved_at=at,
            taken_by=sa.func.coalesce(follow_ups.c.taken_by, staff_id),
            taken_at=sa.func.coalesce(follow_ups.c.taken_at, at),
        )
    )
    return result.rowcount == 1


async def for_customer(connection: AsyncConnection, customer_id: int) -> dict[int, FollowUp]:
    """The follow-ups of a customer's responses, by session: what their data export shows."""
    rows = await connection.execute(
        sa.select(*_COLUMNS).select_from(_FROM).where(survey_sessions.c.customer_id == customer_id)
    )
    return {row.session_id: FollowUp(*row) for row in rows}


async def forget_notes(connection: AsyncConnection, customer_id: int) -> int:
    """Drop the notes staff wrote about a customer's responses (their erasure); the follow-ups
    themselves stay, anonymous, as the answers do."""
    owned = sa.select(survey_sessions.c.id).where(survey_sessions.c.customer_id == customer_id)
    result = await connection.execute(
        sa.update(follow_ups)
        .where(follow_ups.c.session_id.in_(owned), follow_ups.c.note.is_not(None))
        .values(note=None)
    )
    return result.rowcount


async def _claim(
    connection: AsyncConnection,
    condition: sa.ColumnElement[bool],
    mark: str,
    at: datetime,
    limit: int,
) -> list[FollowUp]:
    picked = sa.select(follow_ups.c.id).where(condition).order_by(follow_ups.c.id).limit(limit)
    if connection.dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    ids = list((await connection.scalars(picked)).all())
    if not ids:
        return []
    await connection.execute(
        sa.update(follow_ups).where(follow_ups.c.id.in_(ids)).values({mark: at})
    )
    rows = await connection.execute(
        sa.select(*_COLUMNS)
        .select_from(_FROM)
        .where(follow_ups.c.id.in_(ids))
        .order_by(follow_ups.c.id)
    )
    return [FollowUp(*row) for row in rows]


async def claim_unalerted(
    connection: AsyncConnection, at: datetime, limit: int = 50
) -> list[FollowUp]:
    """Follow-ups whose alert has not gone out; each is claimed once (at most one alert)."""
    return await _claim(connection, follow_ups.c.alerted_at.is_(None), "alerted_at", at, limit)


async def claim_overdue(
    connection: AsyncConnection, cutoff: datetime, at: datetime, limit: int = 50
) -> list[FollowUp]:
    """Unresolved follow-ups opened before `cutoff` and not escalated yet; each once."""
    condition = sa.and_(
        follow_ups.c.status.in_(UNRESOLVED),
        follow_ups.c.created_at <= cutoff,
        follow_ups.c.escalated_at.is_(None),
    )
    return await _claim(connection, condition, "escalated_at", at, limit)


async def alert_recipients(connection: AsyncConnection, branch_id: int) -> list[Recipient]:
    """Active staff with this branch in scope who take alerts."""
    statement = (
        sa.select(staff.c.id, staff.c.telegram_id, staff.c.locale)
        .select_from(branches.outerjoin(regions, regions.c.id == branches.c.region_id))
        .join(staff, staff.c.scope.in_(_covering_scopes(branches.c.code, regions.c.code)))
        .where(
            branches.c.id == branch_id,
            staff.c.alerts,
            staff.c.active,
            staff.c.telegram_id.is_not(None),
        )
        .order_by(staff.c.id)
    )
    return [Recipient(*row) for row in await connection.execute(statement)]


async def region_admins(connection: AsyncConnection, branch_id: int) -> list[Recipient]:
    """Active admins whose scope is the branch's region; if there are none, the super admins."""
    region_scope = (
        sa.select(sa.literal("region:") + regions.c.code)
        .join(branches, branches.c.region_id == regions.c.id)
        .where(branches.c.id == branch_id)
        .scalar_subquery()
    )
    base = sa.select(staff.c.id, staff.c.telegram_id, staff.c.locale).where(
        staff.c.active.is_(True), staff.c.telegram_id.is_not(None)
    )
    admins = await connection.execute(
        base.where(staff.c.role == "admin", staff.c.scope == region_scope).order_by(staff.c.id)
    )
    found = [Recipient(*row) for row in admins]
    if found:
        return found
    supers = await connection.execute(
        base.where(staff.c.role == "super_admin").order_by(staff.c.id)
    )
    return [Recipient(*row) for row in supers]


async def set_alerts(connection: AsyncConnection, staff_id: int, on: bool) -> None:
    await connection.execute(sa.update(staff).where(staff.c.id == staff_id).values(alerts=on))


async def alerts_on(connection: AsyncConnection, staff_id: int) -> bool:
    return bool(await connection.scalar(sa.select(staff.c.alerts).where(staff.c.id == staff_id)))


async def ask_note(
    connection: AsyncConnection, staff_id: int, follow_up_id: int | None, at: datetime | None
) -> None:
    """Remember (or forget, with None) that the member's next text is a follow-up's note."""
    await connection.execute(
        sa.update(staff)
        .where(staff.c.id == staff_id)
        .values(note_for=follow_up_id, note_asked_at=at)
    )


async def note_asked(connection: AsyncConnection, telegram_id: int) -> tuple[int, datetime] | None:
    """The follow-up whose note this Telegram user was asked for, and when; None if none."""
    row = (
        await connection.execute(
            sa.select(staff.c.note_for, staff.c.note_asked_at).where(
                staff.c.telegram_id == telegram_id, staff.c.note_for.is_not(None)
            )
        )
    ).first()
    if row is None or row.note_asked_at is None:
        return None
    return int(row.note_for), row.note_asked_at
