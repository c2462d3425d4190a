"""`run_bot.py campaign …` on a real database: the same rules as in chat, audited as system."""

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


async def _main(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _show(capsys: pytest.CaptureFixture[str], number: str) -> dict[str, object]:
    assert await _main("campaign", "show", number, "--json") == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.usefixtures("env")
async def test_campaign_lifecycle_on_the_command_line(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    assert await _main("init", "--example") == 0
    capsys.readouterr()
    assert (
        await _main(
            "campaign",
            "create",
            "--name",
            "Q1",
            "--survey",
            "branch_service",
            "--scope",
            "region:TIM",
            "--start",
            "2099-01-02T09:30",
            "--reminders",
            "24h",
        )
        == 0
    )
    number = capsys.readouterr().out.strip().splitlines()[-1]
    assert number.isdigit()

    shown = await _show(capsys, number)
    assert shown["status"] == "draft" and shown["dry_run"] is True
    assert shown["start"] == "2099-01-02T09:30:00+07:00"  # the system (scope all): Jakarta
    for key in ("id", "targeted", "excluded", "pending", "sent", "failed", "blocked", "responses"):
        assert key in shown

    assert await _main("campaign", "launch", number) == 0
    assert (await _show(capsys, number))["status"] == "scheduled"
    assert await _main("campaign", "pause", number) == 0
    assert (await _show(capsys, number))["status"] == "paused"
    assert await _main("campaign", "resume", number) == 0
    assert (await _show(capsys, number))["status"] == "scheduled"
    assert await _main("campaign", "cancel", number) == 0
    assert (await _show(capsys, number))["status"] == "cancelled"
    assert await _main("campaign", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [row["id"] for row in listed] == [int(number)]

    # Bad input: one sentence each, exit 2, nothing stored.
    bad = [
        ("create", "--name", "x", "--survey", "nope", "--scope", "all"),
        ("create", "--name", "x", "--survey", "branch_service", "--scope", "region:NOPE"),
        (
            "create",
            "--name",
            "x",
            "--survey",
            "branch_service",
            "--scope",
            "all",
            "--start",
            "2020-01-01T10:00",
        ),
        (
            "create",
            "--name",
            "x",
            "--survey",
            "branch_service",
            "--scope",
            "all",
            "--reminders",
            "24h,72h,96h",
        ),
        (
            "create",
            "--name",
            "x",
            "--survey",
            "branch_service",
            "--scope",
            "all",
            "--reminders",
            "72h",
            "--expires",
            "48h",
        ),
        ("pause", number),
        ("show", "999"),
    ]
    for argv in bad:
        assert await _main("campaign", *argv) == 2, argv
    err = capsys.readouterr().err
    assert "There is no survey nope." in err and "There is no campaign number 999" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == len(bad)

    db = Database(database_url)
    try:
        async with db.transaction() as connection:
            rows = (
                await connection.execute(
                    sa.select(audit_log.c.actor, audit_log.c.action, audit_log.c.outcome).where(
                        audit_log.c.action.like("campaign.%")
                    )
                )
            ).all()
    finally:
        await db.dispose()
    assert {row.actor for row in rows} == {"system"}
    assert ("system", "campaign.launch", "allowed") in rows
    assert ("system", "campaign.pause", "refused") in rows
