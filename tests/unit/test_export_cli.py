"""`run_bot.py export` as the system: names and phones only with `--with-contacts`, and the
audit log says which export named people."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.wiring.cli import main
from storage.db import Database
from storage.models import audit_log

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("env")
async def test_the_command_line_names_customers_only_when_asked(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    plain, named = tmp_path / "plain.csv", tmp_path / "named.csv"
    assert await asyncio.to_thread(main, ["export", "--out", str(plain)]) == 0
    assert await asyncio.to_thread(main, ["export", "--out", str(named), "--with-contacts"]) == 0
    out = capsys.readouterr().out
    assert f"Wrote 0 responses to {plain}." in out
    assert f"Wrote 0 responses to {named}, naming 0 customers." in out
    assert "Name" not in plain.read_text(encoding="utf-8-sig").splitlines()[0]
    assert "Name,Phone" in named.read_text(encoding="utf-8-sig").splitlines()[0]
    db = Database(database_url)
    try:
        async with db.transaction() as connection:
            rows = (
                await connection.execute(
                    sa.select(audit_log.c.actor, audit_log.c.action, audit_log.c.details)
                    .where(audit_log.c.action.like("export.%"))
                    .order_by(audit_log.c.id)
                )
            ).all()
    finally:
        await db.dispose()
    assert [
        (actor, action, json.loads(details)["identities"]) for actor, action, details in rows
    ] == [
        ("system", "export.read", False),
        ("system", "export.contacts", True),
    ]
