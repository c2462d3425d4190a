"""Survey files become stored versions; a broken file is reported and skipped, not fatal."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.services.surveys import SurveyCatalog
from storage.db import Database

ROOT = Path(__file__).resolve().parents[2]


async def test_sync_versions_changed_files_and_skips_broken_ones(
    db: Database, tmp_path: Path
) -> None:
    shutil.copy(ROOT / "surveys" / "digital_banking.yaml", tmp_path)
    (tmp_path / "broken.yaml").write_text("spec: 1\nid: Bad Id\nquestions: []\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    catalog = SurveyCatalog(db)

    first = await catalog.sync_directory(tmp_path)
    assert first.added == ("digital_banking v1",)
    assert len(first.rejected) == 2
    assert any("broken.yaml" in r and "id" in r for r in first.rejected)
    assert all("Traceback" not in r for r in first.rejected)

    assert (await catalog.sync_directory(tmp_path)).unchanged == ("digital_banking v1",)
    path = tmp_path / "digital_banking.yaml"
    path.write_text(path.read_text().replace("max: 100", "max: 200"))
    assert (await catalog.sync_directory(tmp_path)).added == ("digital_banking v2",)

    async with db.transaction() as connection:
        latest = await catalog.latest(connection, "digital_banking")
        pinned_v1 = await SurveyCatalog(db).pinned(connection, latest.id - 1)  # a fresh process
    assert latest is not None and latest.version == 2
    assert pinned_v1.version == 1 and pinned_v1.survey.question("monthly_use").max == 100
