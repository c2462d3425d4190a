"""`run_bot.py import-customers` on a real database: the report, the links file, re-imports
that change nothing, changed rows, renewed links, and the audit entry of the system actor."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.services.customer_lists import link_index, ref_index
from bot.wiring.cli import main
from storage.crypto import Keyring, load_key_file, using_keyring
from storage.db import Database
from storage.models import audit_log, customers

ROOT = Path(__file__).resolve().parents[2]

LIST = (
    "ref,name,phone,branch,locale\n"
    "C-001,Budi Santoso,0812-3456-7890,JKT01,id\n"
    "C-002,Siti Aminah,+62 812 3456 7891,MKS01,en\n"
    "C-003,Ani,12345,JKT01,id\n"
    "C-004,Tan,081234567893,XXX01,id\n"
)


async def _main(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _raw_rows(database_url: str) -> list[tuple[object, ...]]:
    """The customer rows as stored: ciphertexts, not what they decrypt to."""
    db = Database(database_url)
    try:
        async with db.transaction() as connection:
            rows = await connection.execute(
                sa.text(
                    "SELECT id, ref, ref_hash, link_hash, row_hash, name, phone, phone_hash, "
                    "branch_id, locale, last_active_at FROM customers ORDER BY id"
                )
            )
            return [tuple(row) for row in rows]
    finally:
        await db.dispose()


def _links(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.usefixtures("env")
async def test_import_report_links_and_idempotent_reimport(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    assert await _main("init", "--example") == 0
    source, links = tmp_path / "list.csv", tmp_path / "links.csv"
    source.write_text(LIST, encoding="utf-8")

    assert await _main("import-customers", str(source), "--links", str(links)) == 1
    out = capsys.readouterr().out
    assert "2 new, 0 updated, 0 unchanged; 2 rows rejected" in out
    assert "Row 4, phone: not a valid phone number" in out
    assert "Row 5, branch: no such branch" in out
    first = _links(links)
    assert [(row["ref"], row["name"]) for row in first] == [
        ("C-001", "Budi Santoso"),
        ("C-002", "Siti Aminah"),
    ]
    assert all(row["link"].startswith("https://t.me/<your_bot>?start=p_") for row in first)

    stored = await _raw_rows(database_url)
    keyring = Keyring(load_key_file(tmp_path / "suara.key"))
    with using_keyring(keyring):
        by_ref = {row[2]: row for row in stored}
        budi = by_ref[ref_index("C-001")]
        token = first[0]["link"].split("start=p_")[1]
        assert budi[3] == link_index(token)  # only the keyed hash of the token is kept
        assert "C-001" not in str(budi) and "Budi" not in str(budi) and token not in str(budi)
        assert keyring.decrypt(budi[1]) == "C-001"
        assert keyring.decrypt(budi[6]) == "+6281234567890"

    # The same file again changes nothing, not even a timestamp, and makes no new links.
    assert await _main("import-customers", str(source), "--links", str(links)) == 1
    assert "0 new, 0 updated, 2 unchanged" in capsys.readouterr().out
    assert await _raw_rows(database_url) == stored
    assert _links(links) == []

    # A changed row updates its customer and keeps their link.
    source.write_text(LIST.replace("Budi Santoso", "Budi S. Wibowo"), encoding="utf-8")
    assert await _main("import-customers", str(source)) == 1
    assert "0 new, 1 updated, 1 unchanged" in capsys.readouterr().out
    after = await _raw_rows(database_url)
    assert len(after) == len(stored)
    with using_keyring(keyring):
        changed = next(row for row in after if row[2] == ref_index("C-001"))
        assert keyring.decrypt(changed[5]) == "Budi S. Wibowo"
        assert changed[3] == budi[3]

    # Asked for, every customer in the file gets a new link and the old one stops working.
    assert await _main("import-customers", str(source), "--links", str(links), "--renew-links") == 1
    renewed = _links(links)
    assert [row["ref"] for row in renewed] == ["C-001", "C-002"]
    with using_keyring(keyring):
        latest = {row[2]: row for row in await _raw_rows(database_url)}
        assert latest[ref_index("C-001")][3] != budi[3]

    db = Database(database_url)
    try:
        async with db.transaction() as connection:
            entries = (
                await connection.execute(
                    sa.select(audit_log.c.actor, audit_log.c.details).where(
                        audit_log.c.action == "customers.import"
                    )
                )
            ).all()
            count = await connection.scalar(sa.select(sa.func.count()).select_from(customers))
    finally:
        await db.dispose()
    assert [actor for actor, _ in entries] == ["system"] * 4
    assert '"created":2' in entries[0][1] and '"rejected":2' in entries[0][1]
    assert count == 2


@pytest.mark.usefixtures("env")
async def test_unreadable_files_get_one_sentence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "list.csv"
    source.write_bytes(b"\xff\xfe\x00x")
    assert await _main("import-customers", str(source)) == 2
    assert await _main("import-customers", str(tmp_path / "missing.csv")) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "missing.csv" in err and "Traceback" not in err
