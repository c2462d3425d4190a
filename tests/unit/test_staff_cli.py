"""The staff commands of `run_bot.py`: `staff-invite` and `audit-verify`, on a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.services.staff import token_hash
from bot.wiring.cli import main
from storage import audit
from storage.crypto import Keyring
from storage.db import Database
from storage.models import audit_log, now, staff_invitations

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("env")
async def test_staff_invite_prints_a_one_time_link(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    assert await _main("staff-invite", "--role", "super_admin", "--scope", "all") == 0
    out = capsys.readouterr().out
    token = out.split("start=s_")[1].split()[0]
    assert "https://t.me/<your_bot>?start=s_" in out
    db = Database(database_url)
    try:
        async with db.transaction() as connection:
            row = (await connection.execute(sa.select(staff_invitations))).one()
    finally:
        await db.dispose()
    assert row.role == "super_admin" and row.scope == "all"
    assert row.token_hash == token_hash(token)  # only the keyed hash is stored

    assert await _main("staff-invite", "--role", "boss", "--scope", "all") == 2
    assert await _main("staff-invite", "--role", "admin", "--scope", "region:NOPE") == 2
    err = capsys.readouterr().err
    assert "Unknown role 'boss'" in err and "region:NOPE" in err and "Traceback" not in err


async def _main(*argv: str) -> int:
    # main() runs its own event loop, so it goes to a thread of its own here.
    import asyncio

    return await asyncio.to_thread(main, list(argv))


async def _chain(db: Database, count: int) -> None:
    async with db.transaction() as connection:
        for n in range(count):
            await audit.append(connection, "system", "test.step", target=f"n:{n}", at=now())


async def _head(capsys: pytest.CaptureFixture[str]) -> str:
    assert await _main("audit-verify") == 0
    out = capsys.readouterr().out
    assert "The chain is intact." in out
    return out.split("head ")[1].split()[0]


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("tamper", ["edit", "insert", "delete", "truncate"])
async def test_audit_verify_catches_tampering(
    tamper: str, db: Database, keyring: Keyring, capsys: pytest.CaptureFixture[str]
) -> None:
    await _chain(db, 5)
    head = await _head(capsys)
    assert head.startswith("5:")
    async with db.transaction() as connection:
        rows = (await connection.execute(sa.select(audit_log).order_by(audit_log.c.id))).all()
        third = rows[2]
        if tamper == "edit":
            await connection.execute(
                sa.update(audit_log)
                .where(audit_log.c.id == third.id)
                .values(details=json.dumps({"forged": True}))
            )
        elif tamper == "insert":  # a row whose own hash is valid, slipped in at the start
            await connection.execute(
                sa.insert(audit_log).values(
                    id=0,
                    at=third.at,
                    actor="system",
                    action="forged",
                    target=None,
                    outcome="done",
                    details="{}",
                    prev_hash=audit.GENESIS,
                    hash=audit._digest(
                        audit.GENESIS, third.at, "system", "forged", None, "done", "{}"
                    ),
                )
            )
        elif tamper == "delete":
            await connection.execute(sa.delete(audit_log).where(audit_log.c.id == third.id))
        else:
            await connection.execute(sa.delete(audit_log).where(audit_log.c.id >= third.id))

    assert await _main("audit-verify", "--head", head) == 1
    out = capsys.readouterr().out
    if tamper == "truncate":
        assert "recorded head" in out and "removed from the end" in out
        assert await _main("audit-verify") == 0  # without a recorded head a cut looks whole
    else:
        broken = {"edit": third.id, "insert": rows[0].id, "delete": rows[3].id}[tamper]
        assert f"BROKEN: row {broken} " in out


@pytest.mark.usefixtures("env")
async def test_audit_verify_refuses_a_malformed_head(capsys: pytest.CaptureFixture[str]) -> None:
    assert await _main("audit-verify", "--head", "five:abc") == 2
    assert "ROWS:HASH" in capsys.readouterr().err


@pytest.mark.usefixtures("env")
async def test_rebuild_rollups_and_results_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert await _main("rebuild-rollups") == 0
    assert "Roll-ups rebuilt: 0 rows." in capsys.readouterr().out
    assert await _main("results", "--scope", "all", "--period", "7d", "--json") == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["responses"] == 0 and figures["period"]["from"] <= figures["period"]["to"]
    assert await _main("results", "--period", "yesterday") == 2
    assert await _main("results", "--scope", "NOWHERE") == 2
    err = capsys.readouterr().err
    assert "'yesterday'" in err and "'NOWHERE'" in err and "Traceback" not in err
