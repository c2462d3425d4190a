"""Customers and their consent decisions.

Before a customer agrees to the privacy notice nothing is stored but the Telegram id and the
decision; the profile grows only after consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.crypto import get_keyring, normalise_phone
from storage.dialect import insert_ignore_statement
from storage.models import campaign_targets, consents, customers
from storage.prepared import Prepared


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


_BY_TELEGRAM_ID = Prepared(
    sa.select(*_COLUMNS).where(customers.c.telegram_id == sa.bindparam("telegram_id"))
)


async def by_telegram_id(connection: AsyncConnection, telegram_id: int) -> Customer | None:
    row = await _BY_TELEGRAM_ID.first(connection, telegram_id=telegram_id)
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
    name: str | None = None,
    *,
    at: datetime,
) -> Customer:
    """Store a consent decision made at `at`, creating the customer row (id and decision only)
    if needed.

    Only an agreement stores more: the language and the name Telegram shows for the customer.
    """
    customer = await by_telegram_id(connection, telegram_id)
    if customer is None:
        # Several first taps at once: one inserts the row, the others find it.
        first = insert_ignore_statement(connection.dialect.name, customers, ("telegram_id",))
        await connection.execute(
            first.values(telegram_id=telegram_id, locale=locale, created_at=at, last_active_at=at)
        )
        customer = await by_telegram_id(connection, telegram_id)
        assert customer is not None
    customer_id = customer.id
    changes: dict[str, object] = {"last_active_at": at}
    if agreed:
        changes.update(consent_version=version, consent_at=at, locale=locale)
        if name:
            changes["name"] = name
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
            at=at,
        )
    )
    found = await by_id(connection, customer_id)
    assert found is not None
    return found


async def update(
    connection: AsyncConnection, customer_id: int, *, at: datetime, **values: object
) -> None:
    """Change profile fields (locale, branch_id, opted_out, blocked, name, phone...); the
    customer was last active at `at`."""
    values.setdefault("last_active_at", at)
    await connection.execute(
        sa.update(customers).where(customers.c.id == customer_id).values(**values)
    )


_TOUCH = Prepared(
    sa.update(customers)
    .where(customers.c.id == sa.bindparam("customer_id"))
    .values(last_active_at=sa.bindparam("at"))
)


async def touch(connection: AsyncConnection, customer_id: int, at: datetime) -> None:
    """Note the customer's latest activity (the answer path's one customer write)."""
    await _TOUCH.many(connection, [{"customer_id": customer_id, "at": at}])


async def consent_history(connection: AsyncConnection, customer_id: int) -> list[Consent]:
    rows = await connection.execute(
        sa.select(consents).where(consents.c.customer_id == customer_id).order_by(consents.c.id)
    )
    return [Consent(row.version, row.decision, row.at) for row in rows]


@dataclass(frozen=True)
class Profile:
    """Everything the customer row holds, decrypted: what `/mydata` shows."""

    customer: Customer
    name: str | None
    phone: str | None
    created_at: datetime
    last_active_at: datetime
    ref: str | None = None  # the bank's customer number, for customers from its lists


def phone_index(phone: str) -> str:
    """The keyed hash phones are found by; the phone itself is only stored encrypted."""
    return get_keyring().blind_index(normalise_phone(phone))


async def set_contact(
    connection: AsyncConnection,
    customer_id: int,
    *,
    name: str | None,
    phone: str | None,
    at: datetime,
) -> None:
    """Record a name and phone (e.g. from an imported customer list), encrypted at rest."""
    normalised = normalise_phone(phone) if phone else None
    await update(
        connection,
        customer_id,
        at=at,
        name=name,
        phone=normalised,
        phone_hash=phone_index(normalised) if normalised else None,
    )


async def by_phone(connection: AsyncConnection, phone: str) -> Customer | None:
    statement = sa.select(*_COLUMNS).where(customers.c.phone_hash == phone_index(phone))
    row = (await connection.execute(statement)).first()
    return None if row is None else _customer(row)


async def profile(connection: AsyncConnection, customer_id: int) -> Profile | None:
    statement = sa.select(
        *_COLUMNS,
        customers.c.name,
        customers.c.phone,
        customers.c.created_at,
        customers.c.last_active_at,
        customers.c.ref,
    ).where(customers.c.id == customer_id)
    row = (await connection.execute(statement)).first()
    if row is None:
        return None
    return Profile(_customer(row), row.name, row.phone, row.created_at, row.last_active_at, row.ref)


async def anonymise(connection: AsyncConnection, customer_id: int, at: datetime) -> None:
    """Erase every identifier (erased at `at`); the row stays as a tombstone so nothing can
    re-link to it. The keyed hash of their customer ref goes from the campaigns' lists too."""
    ref_hash = sa.select(customers.c.ref_hash).where(customers.c.id == customer_id)
    await connection.execute(
        sa.delete(campaign_targets).where(campaign_targets.c.ref_hash == ref_hash.scalar_subquery())
    )
    await connection.execute(
        sa.update(customers)
        .where(customers.c.id == customer_id)
        .values(
            telegram_id=None,
            name=None,
            phone=None,
            phone_hash=None,
            ref=None,
            ref_hash=None,
            link_hash=None,
            row_hash=None,
            consent_version=None,
            consent_at=None,
            branch_id=None,
            opted_out=True,
            erased_at=at,
        )
    )


async def inactive_since(connection: AsyncConnection, cutoff: datetime) -> list[int]:
    """Customers not seen since `cutoff` whose data has not been erased yet."""
    rows = await connection.execute(
        sa.select(customers.c.id).where(
            customers.c.last_active_at < cutoff, customers.c.erased_at.is_(None)
        )
    )
    return [row.id for row in rows]
