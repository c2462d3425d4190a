"""Customers and their consent decisions.

Before a customer agrees to the privacy notice nothing is stored but the Telegram id and the
decision; the profile grows only after consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import consents, customers, now


@dataclass(frozen=True)
class Customer:
    id: int
    telegram_id: int | None
    locale: str
    branch_id: int | None
    consent_version: str | None
    consent_at: datetime | None
    opted_out: bool
    blocked: bool


@dataclass(frozen=True)
class Consent:
    version: str
    decision: str
    at: datetime


_COLUMNS = (
    customers.c.id,
    customers.c.telegram_id,
    customers.c.locale,
    customers.c.branch_id,
    customers.c.consent_version,
    customers.c.consent_at,
    customers.c.opted_out,
    customers.c.blocked,
)


def _customer(row: sa.Row) -> Customer:
    return Customer(
        row.id,
        row.telegram_id,
        row.locale,
        row.branch_id,
        row.consent_version,
        row.consent_at,
        row.opted_out,
        row.blocked,
    )


async def by_telegram_id(connection: AsyncConnection, telegram_id: int) -> Customer | None:
    statement = sa.select(*_COLUMNS).where(customers.c.telegram_id == telegram_id)
    row = (await connection.execute(statement)).first()
    return None if row is None else _customer(row)


async def by_id(connection: AsyncConnection, customer_id: int) -> Customer | None:
    row = (
        await connection.execute(sa.select(*_COLUMNS).where(customers.c.id == customer_id))
    ).first()
    return None if row is None else _customer(row)


async def record_decision(
    connection: AsyncConnection,
    telegram_id: int,
    version: str,
    agreed: bool,
    locale: str,
) -> Customer:
    """Store a consent decision, creating the customer row (id and decision only) if needed."""
    moment = now()
    customer = await by_telegram_id(connection, telegram_id)
    if customer is None:
        result = await connection.execute(
            sa.insert(customers).values(
                telegram_id=telegram_id, locale=locale, created_at=moment, last_active_at=moment
            )
        )
        customer_id = result.inserted_primary_key[0]
    else:
        customer_id = customer.id
    changes: dict[str, object] = {"last_active_at": moment}
    if agreed:
        changes.update(consent_version=version, consent_at=moment, locale=locale)
    else:
        changes.update(consent_version=None, consent_at=None)
    await connection.execute(
        sa.update(customers).where(customers.c.id == customer_id).values(**changes)
    )
    await connection.execute(
        sa.insert(consents).values(
            customer_id=customer_id,
            version=version,
            decision="agree" if agreed else "decline",
            at=moment,
        )
    )
    found = await by_id(connection, customer_id)
    assert found is not None
    return found


async def update(connection: AsyncConnection, customer_id: int, **values: object) -> None:
    """Change profile fields (locale, branch_id, opted_out, blocked, name, phone...)."""
    values.setdefault("last_active_at", now())
    await connection.execute(
        sa.update(customers).where(customers.c.id == customer_id).values(**values)
    )


async def consent_history(connection: AsyncConnection, customer_id: int) -> list[Consent]:
    rows = await connection.execute(
        sa.select(consents).where(consents.c.customer_id == customer_id).order_by(consents.c.id)
    )
    return [Consent(row.version, row.decision, row.at) for row in rows]
