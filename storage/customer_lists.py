"""Customers from the bank's lists: found by the keyed hash of their customer number, of their
personal link's token or of their phone; and one Telegram account merged with its imported row.

The customer number and phone are stored encrypted; only keyed hashes are compared in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import consents, customers, survey_sessions

_CHUNK = 500  # hashes per IN (...) look-up, well under every driver's parameter limit


@dataclass(frozen=True)
class Listed:
    """What an import needs to know about a customer already on a list."""

    id: int
    ref_hash: str
    row_hash: str | None
    branch_id: int | None
    has_link: bool
    claimed: bool  # a Telegram account is tied to them


@dataclass(frozen=True)
class NewCustomer:
    ref: str
    ref_hash: str
    row_hash: str
    name: str
    phone: str
    phone_hash: str
    branch_id: int
    locale: str
    link_hash: str


async def by_ref_hashes(connection: AsyncConnection, hashes: Iterable[str]) -> dict[str, Listed]:
    wanted = list(hashes)
    found: dict[str, Listed] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = await connection.execute(
            sa.select(
                customers.c.id,
                customers.c.ref_hash,
                customers.c.row_hash,
                customers.c.branch_id,
                customers.c.link_hash,
                customers.c.telegram_id,
            ).where(customers.c.ref_hash.in_(wanted[start : start + _CHUNK]))
        )
        for row in rows:
            found[row.ref_hash] = Listed(
                row.id,
                row.ref_hash,
                row.row_hash,
                row.branch_id,
                row.link_hash is not None,
                row.telegram_id is not None,
            )
    return found


async def insert(connection: AsyncConnection, rows: list[NewCustomer], at: datetime) -> None:
    if not rows:
        return
    await connection.execute(
        sa.insert(customers),
        [
            {
                "ref": row.ref,
                "ref_hash": row.ref_hash,
                "row_hash": row.row_hash,
                "name": row.name,
                "phone": row.phone,
                "phone_hash": row.phone_hash,
                "branch_id": row.branch_id,
                "locale": row.locale,
                "link_hash": row.link_hash,
                "created_at": at,
                "last_active_at": at,
            }
            for row in rows
        ],
    )


async def update(connection: AsyncConnection, customer_id: int, **values: object) -> None:
    await connection.execute(
        sa.update(customers).where(customers.c.id == customer_id).values(**values)
    )


@dataclass(frozen=True)
class Claimable:
    """An imported customer a personal link or a phone number points at."""

    id: int
    telegram_id: int | None
    branch_id: int | None


async def by_link_hash(connection: AsyncConnection, link_hash: str) -> Claimable | None:
    """The customer a personal link names, locked until the claim commits (PostgreSQL)."""
    row = (
        await connection.execute(
            sa.select(customers.c.id, customers.c.telegram_id, customers.c.branch_id)
            .where(customers.c.link_hash == link_hash, customers.c.erased_at.is_(None))
            .with_for_update()  # two accounts opening one link: the second waits, finds none
        )
    ).first()
    return None if row is None else Claimable(row.id, row.telegram_id, row.branch_id)


async def unclaimed_by_phone_hash(connection: AsyncConnection, phone_hash: str) -> Claimable | None:
    """An imported customer with this phone whom no Telegram account has claimed yet."""
    row = (
        await connection.execute(
            sa.select(customers.c.id, customers.c.telegram_id, customers.c.branch_id)
            .where(
                customers.c.phone_hash == phone_hash,
                customers.c.ref_hash.is_not(None),
                customers.c.telegram_id.is_(None),
                customers.c.erased_at.is_(None),
            )
            .order_by(customers.c.id)
            .limit(1)
            .with_for_update()
        )
    ).first()
    return None if row is None else Claimable(row.id, row.telegram_id, row.branch_id)


_IMPORTED = (
    customers.c.ref,
    customers.c.ref_hash,
    customers.c.link_hash,
    customers.c.row_hash,
    customers.c.name,
    customers.c.phone,
    customers.c.phone_hash,
    customers.c.branch_id,
)


async def merge_into(connection: AsyncConnection, keep_id: int, imported_id: int) -> None:
    """One customer row for one person: the imported row's data (customer number, link, name,
    phone, branch) moves onto the Telegram account's row, with any sessions and consents the
    imported row had; the imported row goes. The account's row keeps its id, consent and
    language, so what the conversation and the audit log already name stays valid."""
    row = (
        await connection.execute(sa.select(*_IMPORTED).where(customers.c.id == imported_id))
    ).one()
    for table in (survey_sessions, consents):
        await connection.execute(
            sa.update(table).where(table.c.customer_id == imported_id).values(customer_id=keep_id)
        )
    await connection.execute(sa.delete(customers).where(customers.c.id == imported_id))
    await update(connection, keep_id, **dict(row._mapping))


async def ref_hash_of(connection: AsyncConnection, customer_id: int) -> str | None:
    """The customer's ref hash: None unless they came from a list."""
    return await connection.scalar(
        sa.select(customers.c.ref_hash).where(customers.c.id == customer_id)
    )
