"""Follow-ups in storage, on SQLite and PostgreSQL: who takes a branch's alerts, claims that
hand each alert and each escalation out once, and who an escalation reaches."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from bot.devtools.example import load_example
from bot.services.follow_up import follow_up_promised
from bot.services.personal_data import PersonalData
from storage import customers as customer_store
from storage import follow_ups as store
from storage import orgs, sessions, surveys
from storage import staff as staff_store
from storage.db import Database
from storage.models import follow_ups, now


async def _branches(db: Database) -> dict[str, int]:
    async with db.transaction() as connection:
        await load_example(connection)
        return {b.code: b.id for b in await orgs.all_branches(connection)}


async def _staff(db: Database, telegram_id: int, role: str, scope: str, **values: object) -> int:
    async with db.transaction() as connection:
        return await staff_store.create(
            connection, telegram_id=telegram_id, role=role, scope=scope, locale="en", **values
        )


async def _follow_up(db: Database, branch_id: int, telegram_id: int, age: timedelta) -> int:
    async with db.transaction() as connection:
        at = now() - age
        customer = await customer_store.record_decision(
            connection, telegram_id, "v1", True, "id", at=at
        )
        version, _ = await surveys.register(connection, "s", "text", "c1")
        session = await sessions.create(connection, customer.id, version.id, branch_id, {}, at=at)
        return await store.open_one(connection, session.id, branch_id, at)


async def test_a_branch_is_alerted_by_active_staff_in_scope_with_alerts_on(db: Database) -> None:
    ids = await _branches(db)

    async def promised(code: str) -> bool:
        async with db.transaction() as connection:
            return await follow_up_promised(connection, ids[code])

    assert not await promised("JKT01")
    await _staff(db, 1, "viewer", "branch:JKT01")  # alerts off
    await _staff(db, 2, "viewer", "branch:JKT01", alerts=True, active=False)
    await _staff(db, 3, "viewer", "region:TIM", alerts=True)
    assert not await promised("JKT01")
    assert await promised("MKS01") and await promised("JYP01")
    await _staff(db, 4, "admin", "region:BAR", alerts=True)
    assert await promised("JKT01") and await promised("BDG01")
    async with db.transaction() as connection:
        assert not await follow_up_promised(connection, None)


async def test_everyone_in_scope_and_only_them_receive_alerts(db: Database) -> None:
    ids = await _branches(db)
    branch = await _staff(db, 1, "viewer", "branch:JKT01", alerts=True)
    region = await _staff(db, 2, "admin", "region:BAR", alerts=True)
    everything = await _staff(db, 3, "super_admin", "all", alerts=True)
    await _staff(db, 4, "viewer", "branch:BDG01", alerts=True)
    await _staff(db, 5, "viewer", "branch:JKT01")
    async with db.transaction() as connection:
        found = await store.alert_recipients(connection, ids["JKT01"])
    assert [r.staff_id for r in found] == [branch, region, everything]


async def test_alerts_and_escalations_are_claimed_once(db: Database) -> None:
    ids = await _branches(db)
    old = await _follow_up(db, ids["JKT01"], 101, timedelta(hours=49))
    await _follow_up(db, ids["JKT01"], 102, timedelta(hours=1))
    resolver = await _staff(db, 9, "viewer", "all")
    at = now()
    async with db.transaction() as connection:
        assert len(await store.claim_unalerted(connection, at)) == 2
    async with db.transaction() as connection:
        assert await store.claim_unalerted(connection, at) == []
        due = await store.claim_overdue(connection, at - timedelta(hours=48), at)
        assert [f.id for f in due] == [old]
    async with db.transaction() as connection:
        assert await store.claim_overdue(connection, at - timedelta(hours=48), at) == []
        assert await store.resolve(connection, old, resolver, "ok", at)
        assert not await store.take(connection, old, resolver, at)
        assert not await store.resolve(connection, old, resolver, "again", at)


async def test_escalations_reach_the_region_admins_else_the_super_admins(db: Database) -> None:
    ids = await _branches(db)
    await _staff(db, 1, "admin", "branch:JKT01")
    bar = await _staff(db, 2, "admin", "region:BAR")
    await _staff(db, 3, "editor", "region:BAR")
    await _staff(db, 4, "admin", "region:BAR", active=False)
    boss = await _staff(db, 5, "super_admin", "all")
    async with db.transaction() as connection:
        assert [r.staff_id for r in await store.region_admins(connection, ids["JKT01"])] == [bar]
        assert [r.staff_id for r in await store.region_admins(connection, ids["MKS01"])] == [boss]


async def test_the_promise_costs_one_quick_query(db: Database) -> None:
    """Read on every completion: well under a millisecond or two, whatever the database."""
    ids = await _branches(db)
    for n in range(200):
        await _staff(db, 1000 + n, "viewer", f"branch:{'BDG01' if n % 2 else 'MKS01'}", alerts=True)
    async with db.transaction() as connection:
        await follow_up_promised(connection, ids["JKT01"])
        start = time.perf_counter()
        for _ in range(200):
            assert not await follow_up_promised(connection, ids["JKT01"])
        each = (time.perf_counter() - start) / 200
    assert each < 0.005, f"{each * 1000:.2f} ms per check"


async def test_a_customers_erasure_drops_the_notes_about_their_responses(db: Database) -> None:
    ids = await _branches(db)
    theirs = await _follow_up(db, ids["JKT01"], 201, timedelta(hours=2))
    others = await _follow_up(db, ids["JKT01"], 202, timedelta(hours=2))
    resolver = await _staff(db, 9, "viewer", "all")
    async with db.transaction() as connection:
        for follow_up_id in (theirs, others):
            await store.resolve(connection, follow_up_id, resolver, "Called back at 0812", now())
    # `settings` is read only by retention; erasure needs the database alone.
    erased = await PersonalData(db, None, None).erase(201)  # type: ignore[arg-type]
    assert erased
    async with db.transaction() as connection:
        kept = {f: (await store.get(connection, f)) for f in (theirs, others)}
        notes = dict(
            (await connection.execute(sa.select(follow_ups.c.id, follow_ups.c.note))).all()
        )
    assert kept[theirs] is not None and kept[theirs].status == store.RESOLVED
    assert notes == {theirs: None, others: "Called back at 0812"}
