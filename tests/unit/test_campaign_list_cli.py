"""`run_bot.py campaign create --list FILE`: a campaign that targets an imported list, matched by
the customer ref's keyed hash; unknown refs and refs outside the scope are reported and counted,
and the list's customers still pass every audience rule."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.services.customer_lists import ref_index
from bot.services.privacy import load_notice
from bot.wiring.cli import main
from storage.crypto import Keyring, load_key_file, using_keyring
from storage.db import Database
from storage.models import audit_log, campaign_deliveries, campaign_targets, customers

ROOT = Path(__file__).resolve().parents[2]
NOTICE = ROOT / "locales" / "privacy_notice.yaml"

CUSTOMERS = (
    "ref,name,phone,branch,locale\n"
    "C-101,Budi,081200000101,JKT01,id\n"
    "C-102,Siti,081200000102,JKT01,en\n"
    "C-103,Ani,081200000103,JKT01,id\n"
    "C-104,Tan,081200000104,BDG01,id\n"
    "C-105,Rina,081200000105,MKS01,id\n"
    "C-106,Dodi,081200000106,JKT01,id\n"
    "C-107,Eka,081200000107,JKT01,id\n"
)
# One column of refs: a header, an unknown ref, one outside region:BAR and a malformed ref.
FIRST = "customer ref\nC-101\nC-102\nC-105\nC-999\nbad ref!\n"
# The customer list format; C-102 is on both lists.
SECOND = (
    "ref,name,phone,branch,locale\n"
    "C-102,Siti,081200000102,JKT01,en\n"
    "C-103,Ani,081200000103,JKT01,id\n"
    "C-106,Dodi,081200000106,JKT01,id\n"
    "C-104,Tan,081200000104,BDG01,id\n"
)


async def _main(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _reachable(database_url: str, key_file: Path) -> None:
    """C-101 … C-105 and C-107 opened the bot and agreed; C-103 then opted out; C-106 never
    opened it."""
    version = load_notice(NOTICE).version
    db = Database(database_url)
    try:
        with using_keyring(Keyring(load_key_file(key_file))):
            async with db.transaction() as connection:
                for n in (101, 102, 103, 104, 105, 107):
                    await connection.execute(
                        sa.update(customers)
                        .where(customers.c.ref_hash == ref_index(f"C-{n}"))
                        .values(
                            telegram_id=880_000 + n,
                            consent_version=version,
                            opted_out=n == 103,
                        )
                    )
    finally:
        await db.dispose()


@pytest.mark.usefixtures("env")
async def test_a_campaign_targets_the_customers_of_imported_lists(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    assert await _main("init", "--example") == 0
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    assert await _main("import-customers", str(tmp_path / "customers.csv")) == 0
    await _reachable(database_url, tmp_path / "suara.key")
    (tmp_path / "first.csv").write_text(FIRST)
    (tmp_path / "second.csv").write_text(SECOND)
    capsys.readouterr()

    create = ("campaign", "create", "--name", "Prioritas", "--survey", "branch_service")
    lists = ("--list", str(tmp_path / "first.csv"), "--list", str(tmp_path / "second.csv"))
    assert await _main(*create, "--scope", "region:BAR", *lists) == 0
    printed = capsys.readouterr().out
    assert "The list names 7 customer refs: 5 found in scope." in printed
    assert "Unknown customer ref on rows 5" in printed
    assert "Not in scope on rows 4" in printed
    assert "Row 6, ref: not a customer number" in printed
    assert "C-10" not in printed  # rows are named by number, refs are not echoed
    number = printed.strip().splitlines()[-1]

    assert await _main("campaign", "show", number, "--json") == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["by_list"] is True and shown["dry_run"] is True
    assert shown["targeted"] == 3  # C-101, C-102 (on both lists, once), C-104
    assert shown["excluded"] == {
        "unknown_ref": 1,
        "not_in_scope": 1,
        "opted_out": 1,
        "no_telegram": 1,
    }

    assert await _main("campaign", "launch", number) == 0
    assert await _main("campaign", "show", number, "--json") == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["status"] == "running" and shown["targeted"] == shown["pending"] == 3
    assert shown["excluded"]["unknown_ref"] == 1 and shown["excluded"]["not_in_scope"] == 1

    db = Database(database_url)
    try:
        with using_keyring(Keyring(load_key_file(tmp_path / "suara.key"))):
            expected = {ref_index(f"C-{n}") for n in (101, 102, 104)}
            listed = {ref_index(r) for r in ("C-101", "C-102", "C-103", "C-104", "C-105")}
            listed |= {ref_index("C-106"), ref_index("C-999")}
        async with db.transaction() as connection:
            invited = set(
                (
                    await connection.scalars(
                        sa.select(customers.c.ref_hash)
                        .join(campaign_deliveries)
                        .where(
                            campaign_deliveries.c.campaign_id == int(number),
                            campaign_deliveries.c.kind == "invite",
                        )
                    )
                ).all()
            )
            stored = set((await connection.scalars(sa.select(campaign_targets.c.ref_hash))).all())
            audited = (
                await connection.execute(
                    sa.select(audit_log.c.actor, audit_log.c.details).where(
                        audit_log.c.action == "campaign.list"
                    )
                )
            ).one()
    finally:
        await db.dispose()
    assert invited == expected
    assert stored == listed  # keyed hashes only, the unknown ref's too
    assert not any(ref.startswith("C-") for ref in stored)
    assert audited.actor == "system"
    assert json.loads(audited.details) == {
        "refs": 7,
        "found": 5,
        "unknown_ref": 1,
        "not_in_scope": 1,
        "rejected_rows": 1,
    }

    # A list that cannot be used: one sentence, exit 2, no campaign.
    (tmp_path / "bad.csv").write_text("bad ref!\n???\n")
    for wrong in (tmp_path / "missing.csv", tmp_path / "bad.csv"):
        assert await _main(*create, "--scope", "all", "--list", str(wrong)) == 2
    err = capsys.readouterr().err
    assert "There is no file" in err and "no valid customer ref" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2
    assert await _main("campaign", "list", "--json") == 0
    assert [row["id"] for row in json.loads(capsys.readouterr().out)] == [int(number)]
