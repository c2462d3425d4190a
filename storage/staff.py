"""Staff members, their invitations and their sessions.

Plain reads and writes; who may do what is decided by `bot/services/staff.py`, which passes the
scopes an actor may see so that every listing is filtered in the query itself.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import staff, staff_invitations, staff_sessions


@dataclass(frozen=True)
class StaffMember:
    id: int
    telegram_id: int | None
    name: str | None
    role: str
    scope: str
    active: bool
    locale: str
    created_by: int | None
    totp_secret: str | None
    totp_last_step: int | None
    totp_last_at: datetime | None
    failures: int
    locked_until: datetime | None
    pending: dict[str, Any] | None
    pending_at: datetime | None
    last_login_at: datetime | None


@dataclass(frozen=True)
class Invitation:
    id: int
    role: str
    scope: str
    name: str | None
    staff_id: int | None
    created_by: int | None
    expires_at: datetime
    opened_by: int | None
    pending_secret: str | None
    secret_messages: list[int]
    failures: int
    used_at: datetime | None


@dataclass(frozen=True)
class StaffSession:
    id: int
    staff_id: int
    opened_at: datetime
    expires_at: datetime


def _member(row: sa.Row) -> StaffMember:
    return StaffMember(
        row.id,
        row.telegram_id,
        row.name,
        row.role,
        row.scope,
        row.active,
        row.locale,
        row.created_by,
        row.totp_secret,
        row.totp_last_step,
        row.totp_last_at,
        row.failures,
        row.locked_until,
        json.loads(row.pending) if row.pending else None,
        row.pending_at,
        row.last_login_at,
    )


def _invitation(row: sa.Row) -> Invitation:
    return Invitation(
        row.id,
        row.role,
        row.scope,
        row.name,
        row.staff_id,
        row.created_by,
        row.expires_at,
        row.opened_by,
        row.pending_secret,
        json.loads(row.secret_messages),
        row.failures,
        row.used_at,
    )


# -- staff ----------------------------------------------------------------------------------


async def by_telegram_id(connection: AsyncConnection, telegram_id: int) -> StaffMember | None:
    row = (
        await connection.execute(sa.select(staff).where(staff.c.telegram_id == telegram_id))
    ).first()
    return None if row is None else _member(row)


async def by_id(connection: AsyncConnection, staff_id: int) -> StaffMember | None:
    row = (await connection.execute(sa.select(staff).where(staff.c.id == staff_id))).first()
    return None if row is None else _member(row)


async def in_scopes(
    connection: AsyncConnection, scopes: Collection[str] | None
) -> list[StaffMember]:
    """Staff whose scope is one of `scopes` (None: everyone), in number order."""
    statement = sa.select(staff).order_by(staff.c.id)
    if scopes is not None:
        statement = statement.where(staff.c.scope.in_(list(scopes)))
    return [_member(row) for row in await connection.execute(statement)]


async def active_super_admins(connection: AsyncConnection) -> list[StaffMember]:
    statement = sa.select(staff).where(
        staff.c.role == "super_admin", staff.c.active.is_(True), staff.c.telegram_id.is_not(None)
    )
    return [_member(row) for row in await connection.execute(statement)]


async def create(connection: AsyncConnection, **values: Any) -> int:
    result = await connection.execute(sa.insert(staff).values(**values))
    return int(result.inserted_primary_key[0])


async def update(connection: AsyncConnection, staff_id: int, **values: Any) -> None:
    if "pending" in values and values["pending"] is not None:
        values["pending"] = json.dumps(values["pending"], sort_keys=True)
    await connection.execute(sa.update(staff).where(staff.c.id == staff_id).values(**values))


async def accept_step(connection: AsyncConnection, staff_id: int, step: int, at: datetime) -> bool:
    """Record `step` as the last accepted TOTP step, only if it is newer than the stored one:
    of two requests with the same code, exactly one wins, even across processes."""
    result = await connection.execute(
        sa.update(staff)
        .where(
            staff.c.id == staff_id,
            sa.or_(staff.c.totp_last_step.is_(None), staff.c.totp_last_step < step),
        )
        .values(totp_last_step=step, totp_last_at=at, failures=0, locked_until=None)
    )
    return result.rowcount == 1


# -- invitations ----------------------------------------------------------------------------


async def create_invitation(connection: AsyncConnection, **values: Any) -> int:
    result = await connection.execute(sa.insert(staff_invitations).values(**values))
    return int(result.inserted_primary_key[0])


async def invitation_by_hash(connection: AsyncConnection, token_hash: str) -> Invitation | None:
    statement = sa.select(staff_invitations).where(staff_invitations.c.token_hash == token_hash)
    row = (await connection.execute(statement)).first()
    return None if row is None else _invitation(row)


async def invitation_by_id(connection: AsyncConnection, invitation_id: int) -> Invitation | None:
    statement = sa.select(staff_invitations).where(staff_invitations.c.id == invitation_id)
    row = (await connection.execute(statement)).first()
    return None if row is None else _invitation(row)


async def open_invitation_of(connection: AsyncConnection, telegram_id: int) -> Invitation | None:
    """The enrolment this Telegram user has begun and not finished, if any (newest first).

    The row is locked (PostgreSQL) so that noting the secret's messages and confirming the
    enrolment, which may race, each see what the other committed."""
    statement = (
        sa.select(staff_invitations)
        .where(staff_invitations.c.opened_by == telegram_id, staff_invitations.c.used_at.is_(None))
        .order_by(staff_invitations.c.id.desc())
        .limit(1)
        .with_for_update()
    )
    row = (await connection.execute(statement)).first()
    return None if row is None else _invitation(row)


async def update_invitation(connection: AsyncConnection, invitation_id: int, **values: Any) -> None:
    if "secret_messages" in values:
        values["secret_messages"] = json.dumps(values["secret_messages"])
    await connection.execute(
        sa.update(staff_invitations).where(staff_invitations.c.id == invitation_id).values(**values)
    )


async def revoke_invitations(connection: AsyncConnection, staff_id: int, at: datetime) -> None:
    """Spend every unused invitation that would re-enrol `staff_id`."""
    await connection.execute(
        sa.update(staff_invitations)
        .where(staff_invitations.c.staff_id == staff_id, staff_invitations.c.used_at.is_(None))
        .values(used_at=at, pending_secret=None)
    )


# -- sessions -------------------------------------------------------------------------------


async def open_session(
    connection: AsyncConnection, staff_id: int, opened_at: datetime, expires_at: datetime
) -> StaffSession:
    result = await connection.execute(
        sa.insert(staff_sessions).values(
            staff_id=staff_id, opened_at=opened_at, expires_at=expires_at
        )
    )
    return StaffSession(int(result.inserted_primary_key[0]), staff_id, opened_at, expires_at)


async def live_session(
    connection: AsyncConnection, staff_id: int, at: datetime
) -> StaffSession | None:
    statement = (
        sa.select(staff_sessions)
        .where(
            staff_sessions.c.staff_id == staff_id,
            staff_sessions.c.closed_at.is_(None),
            staff_sessions.c.expires_at > at,
        )
        .order_by(staff_sessions.c.id.desc())
        .limit(1)
    )
    row = (await connection.execute(statement)).first()
    return (
        None if row is None else StaffSession(row.id, row.staff_id, row.opened_at, row.expires_at)
    )


async def with_live_session(
    connection: AsyncConnection, staff_ids: list[int], at: datetime
) -> set[int]:
    """Which of `staff_ids` have a live session at `at`."""
    if not staff_ids:
        return set()
    rows = await connection.execute(
        sa.select(staff_sessions.c.staff_id).where(
            staff_sessions.c.staff_id.in_(staff_ids),
            staff_sessions.c.closed_at.is_(None),
            staff_sessions.c.expires_at > at,
        )
    )
    return {row.staff_id for row in rows}


async def close_sessions(
    connection: AsyncConnection, staff_id: int, at: datetime, reason: str
) -> int:
    """Close every open session of `staff_id`; returns how many were open."""
    result = await connection.execute(
        sa.update(staff_sessions)
        .where(staff_sessions.c.staff_id == staff_id, staff_sessions.c.closed_at.is_(None))
        .values(closed_at=at, closed_reason=reason)
    )
    return int(result.rowcount)


async def close_expired(connection: AsyncConnection, at: datetime) -> list[int]:
    """Close the sessions that have run out; returns the Telegram ids whose menus must go back."""
    rows = await connection.execute(
        sa.select(staff_sessions.c.id, staff.c.telegram_id)
        .join(staff, staff.c.id == staff_sessions.c.staff_id)
        .where(staff_sessions.c.closed_at.is_(None), staff_sessions.c.expires_at <= at)
    )
    found = rows.all()
    if found:
        await connection.execute(
            sa.update(staff_sessions)
            .where(staff_sessions.c.id.in_([row.id for row in found]))
            .values(closed_at=at, closed_reason="expired")
        )
    return [row.telegram_id for row in found if row.telegram_id is not None]
