"""`run_bot.py import-branches FILE.csv`: every row checked, a report naming each bad row and
column, all or nothing, and a re-import updates in place. Run as the operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.services.branches import parse_branches
from bot.services.surveys import SurveyCatalog
from storage import audit, orgs
from storage.db import Database

ROOT = Path(__file__).resolve().parents[2]

GOOD = """region code,region name,branch code,branch name,time zone,survey key
JKT,Jakarta,JKT01,Jakarta Sudirman,Asia/Jakarta,branch_service
JKT,Jakarta,JKT02,Jakarta Thamrin,Asia/Jakarta,
SBY,Surabaya,SBY01,Surabaya Tunjungan,Asia/Jakarta,digital_banking
MKS,Makassar,MKS01,Makassar Pettarani,Asia/Makassar,branch_service
"""

BAD = """JKT,Jakarta,JKT01,Jakarta Sudirman,Asia/Jakarta,branch_service
JKT,Jakarta,JKT01,Again,Asia/Jakarta,branch_service
SBY,Surabaya,SBY 01,Surabaya,Mars/Olympus,no_such_survey
MKS,Makassar,MKS01
JKT,Jakarta Raya,JKT03,Kota,Asia/Jakarta,
"""


def _run(args: list[str], database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KEY_FILE": str(tmp_path / "suara.key"),
        "SURVEYS_DIR": str(ROOT / "surveys"),
        "PRIVACY_NOTICE_FILE": str(ROOT / "locales" / "privacy_notice.yaml"),
    }
    env.pop("BOT_TOKEN", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "run_bot.py"), "import-branches", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _branches(database_url: str) -> dict[str, orgs.Branch]:
    db = Database(database_url)
    try:
        async with db.transaction() as connection:
            return {b.code: b for b in await orgs.all_branches(connection)}
    finally:
        await db.dispose()


async def _audit_actions(database_url: str) -> list[tuple[str, str, str]]:
    db = Database(database_url)
    try:
        async with db.transaction() as connection:
            rows = await audit.entries(connection, limit=50)
    finally:
        await db.dispose()
    return [(r.actor, r.action, r.outcome) for r in rows]


def test_every_bad_row_is_named_with_its_column() -> None:
    report = parse_branches(BAD.encode(), {"branch_service", "digital_banking"})
    assert report.rows == ()
    assert [str(p) for p in report.problems] == [
        "row 2, branch code: branch JKT01 is already on row 1.",
        "row 3, branch code: 'SBY 01' is not a code; use 1 to 16 of A-Z, 0-9, _ and -.",
        "row 3, time zone: 'Mars/Olympus' is not an IANA time zone such as Asia/Jakarta.",
        "row 3, survey key: there is no survey 'no_such_survey' in the catalog.",
        "row 4: expected 6 columns, got 3.",
        "row 5, region name: region JKT is named 'Jakarta' on row 1.",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "The file is unusable: the file has no rows."),
        (
            b"region code,region name,branch code,branch name,time zone,survey key\n",
            "The file is unusable: the file has no rows.",
        ),
        (b"\xff\xfeJ\x00K\x00T\x00", "The file is unusable: the file is not UTF-8 text."),
    ],
)
def test_an_unusable_file_is_one_sentence(data: bytes, expected: str) -> None:
    assert [str(p) for p in parse_branches(data, set()).problems] == [expected]


def test_a_good_file_parses_with_codes_upper_cased_and_blank_survey_as_default() -> None:
    text = GOOD.replace("JKT02", "jkt02")
    report = parse_branches(text.encode("utf-8-sig"), {"branch_service", "digital_banking"})
    assert report.ok
    assert [r.branch_code for r in report.rows] == ["JKT01", "JKT02", "SBY01", "MKS01"]
    assert report.rows[1].survey_key is None and report.rows[3].timezone == "Asia/Makassar"


async def test_cli_imports_all_or_nothing_and_reimports_in_place(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    await SurveyCatalog(db).sync_directory(ROOT / "surveys")
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD, encoding="utf-8")
    refused = _run([str(bad)], database_url, tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert "nothing imported, 6 problems" in refused.stderr
    assert "row 3, time zone: 'Mars/Olympus'" in refused.stderr
    assert await _branches(database_url) == {}  # not even the good first row

    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8")
    done = _run([str(good)], database_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4 branches imported (4 new, 0 updated)" in done.stdout
    first = await _branches(database_url)
    assert first["MKS01"].timezone == "Asia/Makassar"
    assert first["JKT02"].survey_key is None

    good.write_text(
        GOOD.replace("Jakarta Thamrin,Asia/Jakarta,", "Thamrin Baru,Asia/Jayapura,digital_banking"),
        encoding="utf-8",
    )
    again = _run([str(good)], database_url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "(0 new, 4 updated)" in again.stdout
    second = await _branches(database_url)
    assert second["JKT02"].id == first["JKT02"].id
    assert (second["JKT02"].name, second["JKT02"].timezone, second["JKT02"].survey_key) == (
        "Thamrin Baru",
        "Asia/Jayapura",
        "digital_banking",
    )
    actions = await _audit_actions(database_url)
    assert actions.count(("system", "branches.import", "done")) == 2
    assert ("system", "branches.import", "refused") in actions


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "There is no file"),
        (b"", "the file has no rows"),
        (b"\xff\xfe\x00\x01", "not UTF-8 text"),
        (b"a,b,c\n", "expected 6 columns, got 3"),
    ],
)
async def test_cli_answers_a_bad_file_with_sentences_and_exit_2(
    database_url: str, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "branches.csv"
    if content is not None:
        path.write_bytes(content)
    result = _run([str(path)], database_url, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
