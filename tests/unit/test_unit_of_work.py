"""One unit of work: all of its writes commit together or none do, on both databases.

Nothing in a unit says "these go together": `Database.run` makes the whole unit one
transaction, whichever kind of statement writes first (prepared or Core). A prepared write
declared alone commits by itself only as its unit's one write.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import updates
from storage.db import Database
from storage.errors import UnitOfWorkError
from storage.models import customers, now, processed_updates
from storage.prepared import Prepared

_INSERT = sa.insert(customers).values(
    telegram_id=sa.bindparam("telegram_id"), locale="id", opted_out=False
)
_ADD_CUSTOMER = Prepared(_INSERT)
_ADD_CUSTOMER_ALONE = Prepared(_INSERT, alone=True)


async def _write(connection: AsyncConnection, kind: str, number: int) -> None:
    """One write: a claim (prepared), a customer (prepared, prepared alone, or Core)."""
    if kind == "claim":
        await updates.claim(connection, number, now())
    elif kind == "prepared":
        await _ADD_CUSTOMER.many(connection, [{"telegram_id": number}])
    elif kind == "alone":
        await _ADD_CUSTOMER_ALONE.many(connection, [{"telegram_id": number}])
    else:
        await connection.execute(
            sa.insert(customers).values(telegram_id=number, locale="id", opted_out=False)
        )


async def _stored(db: Database) -> tuple[set[int], set[int]]:
    async with db.transaction() as connection:
        claimed = set(await connection.scalars(sa.select(processed_updates.c.update_id)))
        people = set(await connection.scalars(sa.select(customers.c.telegram_id)))
    return claimed, people


def _unit(kinds: tuple[str, str, str], base: int, fail: bool):  # type: ignore[no-untyped-def]
    async def work(connection: AsyncConnection) -> int:
        for position, kind in enumerate(kinds, start=1):
            if fail and position == 3:
                raise RuntimeError("the unit fails between its second and third write")
            await _write(connection, kind, base + position)
        return base

    return work


KINDS = [
    ("prepared", "prepared", "prepared"),
    ("core", "core", "core"),
    ("prepared", "core", "claim"),
    ("core", "prepared", "prepared"),
    ("claim", "prepared", "core"),
    ("prepared", "alone", "alone"),  # declared alone, but not the unit's first write
    ("core", "alone", "prepared"),
]


@pytest.mark.parametrize("kinds", KINDS, ids="-".join)
async def test_a_unit_failing_midway_stores_none_of_its_writes(
    db: Database, kinds: tuple[str, str, str]
) -> None:
    with pytest.raises(RuntimeError):
        await db.run(_unit(kinds, 100, fail=True))
    assert await _stored(db) == (set(), set())
    await db.run(_unit(kinds, 200, fail=False))
    claimed, people = await _stored(db)
    assert len(claimed) + len(people) == 3


async def test_a_failing_unit_in_a_batch_takes_no_other_unit_along(db: Database) -> None:
    """On SQLite these units share a group commit's batch; on PostgreSQL they run side by
    side. Either way the failing unit leaves nothing and every other unit commits whole."""
    units = [_unit(KINDS[n % len(KINDS)], 1000 * (n + 1), fail=(n == 3)) for n in range(8)]
    results = await asyncio.gather(*(db.run(unit) for unit in units), return_exceptions=True)
    assert isinstance(results[3], RuntimeError)
    assert [r for n, r in enumerate(results) if n != 3] == [
        1000 * (n + 1) for n in range(8) if n != 3
    ]
    claimed, people = await _stored(db)
    stored = claimed | people
    for n in range(8):
        written = {1000 * (n + 1) + position for position in (1, 2, 3)}
        assert not written & stored if n == 3 else written <= stored


@pytest.mark.parametrize("then", ["prepared", "core", "claim", "alone"])
async def test_a_write_declared_alone_commits_alone_only_as_the_units_one_write(
    db: Database, then: str
) -> None:
    async def only(connection: AsyncConnection) -> None:
        await _write(connection, "alone", 1)

    await db.run(only)
    assert await _stored(db) == (set(), {1})

    async def more(connection: AsyncConnection) -> None:
        await _write(connection, "alone", 2)
        await _write(connection, then, 3)

    with pytest.raises(UnitOfWorkError):
        await db.run(more)
    claimed, people = await _stored(db)
    assert 3 not in claimed | people  # refused before it ran, on both databases
