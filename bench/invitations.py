"""Invitations in `/results`: the `invited` roll-up against counting deliveries, both databases.

    python -m bench.invitations                      # 1,000,000 invitations, both databases
    python -m bench.invitations --invitations 100000 --database sqlite   # a sanity run

Loads sent campaign invitations (one customer each) across 50 branches in 5 regions (WIB,
WITA and WIT) over 120 days, builds their roll-up rows with `rebuild-rollups`' code, then
times, for the whole bank over the last 30 days: what results read for invitations from the
roll-ups, and the alternative of counting the deliveries themselves (joined to their
customers for the branch, with an index on (status, sent_at)). Medians of several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from bench.results import _drop_pg, _organisation, _pg_database
from storage import results as rollups
from storage.crypto import Keyring, generate_key_material, set_keyring
from storage.db import Database
from storage.models import branches, campaign_deliveries, campaigns, customers, surveys

TODAY = date(2026, 11, 30)
BATCH = 20_000


async def _load(db: Database, branch_ids: list[int], count: int) -> None:
    rnd = random.Random(11)
    start = datetime.combine(TODAY, clock(), UTC) - timedelta(days=120)
    async with db.transaction() as connection:
        survey = await connection.execute(
            sa.insert(surveys).values(key="bench", version=1, source="", checksum="x")
        )
        await connection.execute(
            sa.insert(campaigns).values(
                id=1,
                name="bench",
                survey_id=survey.inserted_primary_key[0],
                scope="all",
                status="finished",
                created_by="system",
                created_at=start,
            )
        )
    for first in range(1, count + 1, BATCH):
        ids = range(first, min(first + BATCH, count + 1))
        homes = [rnd.choice(branch_ids) for _ in ids]
        sent = [start + timedelta(seconds=rnd.randrange(120 * 86400)) for _ in ids]
        async with db.transaction() as connection:
            await connection.execute(
                sa.insert(customers),
                [{"id": i, "branch_id": b} for i, b in zip(ids, homes, strict=True)],
            )
            await connection.execute(
                sa.insert(campaign_deliveries),
                [
                    {
                        "campaign_id": 1,
                        "customer_id": i,
                        "kind": "invite",
                        "status": "sent",
                        "due_at": at,
                        "sent_at": at,
                        "branch_id": b,
                    }
                    for i, b, at in zip(ids, homes, sent, strict=True)
                ],
            )
    async with db.transaction() as connection:
        await connection.execute(
            sa.text("CREATE INDEX ix_bench_status_sent ON campaign_deliveries (status, sent_at)")
        )
        await rollups.rebuild(connection)


async def _by_rollups(db: Database, windows: list[rollups.Window]) -> int:
    async with db.transaction() as connection:
        found = await rollups.figures(connection, windows)
    return sum(found.invited.values())


async def _by_deliveries(db: Database, windows: list[rollups.Window]) -> int:
    d = campaign_deliveries.c
    found: Counter[int] = Counter()
    async with db.transaction() as connection:
        for w in windows:
            rows = await connection.execute(
                sa.select(customers.c.branch_id, sa.func.count())
                .select_from(campaign_deliveries.join(customers, customers.c.id == d.customer_id))
                .where(
                    d.status == "sent",
                    d.sent_at >= w.since,
                    d.sent_at < w.until,
                    d.kind == "invite",
                    customers.c.branch_id.in_(w.branch_ids),
                )
                .group_by(customers.c.branch_id)
            )
            for branch, count in rows:
                found[branch] += int(count)
    return sum(found.values())


async def _windows(db: Database) -> list[rollups.Window]:
    async with db.transaction() as connection:
        rows = (await connection.execute(sa.select(branches.c.id, branches.c.timezone))).all()
    zones: dict[str, list[int]] = {}
    for branch, zone in rows:
        zones.setdefault(zone, []).append(branch)
    first, last = TODAY - timedelta(days=29), TODAY
    return [
        rollups.Window(
            zone,
            tuple(ids),
            first,
            last,
            datetime.combine(first, clock(), ZoneInfo(zone)).astimezone(UTC),
            datetime.combine(last + timedelta(days=1), clock(), ZoneInfo(zone)).astimezone(UTC),
        )
        for zone, ids in sorted(zones.items())
    ]


async def _time(call, repeat: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    times, value = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        value = await call()
        times.append(time.perf_counter() - began)
    return statistics.median(times), value


async def _run(url: str, name: str, count: int, repeat: int) -> None:
    db = Database(url)
    try:
        await db.upgrade()
        branch_ids = await _organisation(db)
        began = time.perf_counter()
        await _load(db, branch_ids, count)
        loaded = time.perf_counter() - began
        windows = await _windows(db)
        fast, a = await _time(lambda: _by_rollups(db, windows), repeat)
        slow, b = await _time(lambda: _by_deliveries(db, windows), repeat)
        assert a == b, (a, b)
        print(
            f"{name}: {count:,} invitations loaded in {loaded:.0f} s; whole bank, 30 days "
            f"({a:,} invitations): roll-ups {fast * 1000:.1f} ms, deliveries {slow * 1000:.1f} ms"
        )
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invitations", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    set_keyring(Keyring(generate_key_material()))
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            await _run(url, "SQLite", args.invitations, args.repeat)
    if args.database in ("postgresql", "both"):
        url, name = await _pg_database()
        try:
            await _run(url, "PostgreSQL", args.invitations, args.repeat)
        finally:
            await _drop_pg(name)


if __name__ == "__main__":
    asyncio.run(main())
