"""`/results` in chat: a customer answers through the bot, a branch viewer reads the figures
in Bahasa Indonesia with a chart, and a request outside their scope is refused and audited."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.access import Role
from bot.wiring.services import Services
from storage import results as store
from storage import sessions
from storage.models import audit_log, rollup_weeks, rollups
from tests.e2e.campaigning import use_clock
from tests.e2e.staffing import FakeClock, add_staff, code, log_in

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
pytestmark = pytest.mark.usefixtures("bot")


def _data(message: SimMessage, suffix: str) -> str:
    return next(d for d in message.button_data if d.endswith(suffix))


async def _answer(user: SimUser, consent: Consent, nps: str) -> None:
    q = await consent(user, "b_JKT01")
    suffixes = [":a:5", f":a:{nps}", ":a:no"]
    if int(nps) <= 6:  # detractors are asked for the main reason
        suffixes.insert(2, ":a:waiting")
    for suffix in suffixes:
        await user.press(q, _data(q, suffix))
        q = await user.next_reply()
    await user.press(q, _data(q, ":s"))  # what to improve and the comment are optional
    q = await user.next_reply()
    await user.press(q, _data(q, ":s"))
    await user.wait_for(lambda m: "Terima kasih" in m.body)


async def test_a_branch_viewer_reads_results_in_their_language(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    clock = FakeClock()
    use_clock(services, clock)  # the customers' answers too
    await _answer(emulator.user(901, "Ani"), consent, "10")
    await _answer(emulator.user(902, "Budi"), consent, "3")

    viewer = await add_staff(
        services, emulator.user(910, "Vina"), Role.VIEWER, "branch:JKT01", locale="id"
    )
    await viewer.user.send_text(f"/login {code(viewer.secret, clock)}")
    await viewer.user.wait_for(lambda m: "masuk sebagai" in m.body)

    await viewer.user.send_text("/results")
    text = await viewer.user.wait_for(lambda m: "Hasil untuk" in m.body)
    chart = await viewer.user.wait_for(lambda m: m.photo is not None)
    assert "cabang JKT01" in text.body
    assert "2 respons" in text.body
    assert "NPS 0,0" in text.body  # one promoter (10), one detractor (3)
    assert "1 promotor" in text.body and "1 detraktor" in text.body
    assert "Sampel kecil" in text.body
    assert chart.photo

    await viewer.user.send_text("/results MKS01 7d")
    assert "di luar cakupan" in (await viewer.user.next_reply()).body
    await viewer.user.send_text("/results JKT01 kemarin")
    assert "Cara pakai: /results" in (await viewer.user.next_reply()).body
    async with services.db.transaction() as connection:
        outcomes = (
            await connection.execute(
                sa.select(audit_log.c.target, audit_log.c.outcome).where(
                    audit_log.c.action == "results.read"
                )
            )
        ).all()
    assert [tuple(row) for row in outcomes] == [
        (None, "allowed"),
        ("MKS01 7d", "refused"),
        ("JKT01 kemarin", "refused"),
    ]


async def test_results_for_an_english_reader_use_english_numbers(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    clock = FakeClock()
    use_clock(services, clock)  # the customers' answers too
    await _answer(emulator.user(921, "Citra"), consent, "9")
    admin = await add_staff(services, emulator.user(930, "Adi"), Role.ADMIN, "region:BAR")
    await log_in(admin, clock)
    await admin.user.send_text("/results BAR 30d")
    text = await admin.user.wait_for(lambda m: "Results for" in m.body)
    assert "region BAR" in text.body and "1 response " in text.body and "NPS 100.0" in text.body
    assert "Branches, best first:" in text.body and "JKT01" in text.body and "BDG01" in text.body


async def test_rollups_kept_by_the_answer_path_equal_a_rebuild(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    for n, score in enumerate(("10", "8", "2", "6")):
        await _answer(emulator.user(940 + n, "Cust"), consent, score)
    dropped = emulator.user(950, "Dedi")
    await consent(dropped, "b_JKT01")  # started, never finished

    async def table(which: sa.Table) -> list[tuple[object, ...]]:
        async with services.db.transaction() as connection:
            rows = await connection.execute(sa.select(which).order_by(*which.c))
            return [tuple(row) for row in rows]

    kept, kept_weeks = await table(rollups), await table(rollup_weeks)
    assert ("started" in {row[3] for row in kept}) and ("nps" in {row[3] for row in kept})
    assert {row[0].weekday() for row in kept_weeks} == {0}  # type: ignore[attr-defined]
    assert sum(row[6] for row in kept_weeks) == sum(row[6] for row in kept)  # type: ignore[misc]
    async with services.db.transaction() as connection:
        await store.rebuild(connection)
    assert await table(rollups) == kept
    assert await table(rollup_weeks) == kept_weeks

    # The open session ends unfinished (expiry): it is counted where it stopped, as a rebuild
    # counts it.
    async with services.db.transaction() as connection:
        assert (await sessions.purge_before(connection, datetime.now(UTC) + timedelta(days=1)))[1]
    kept = await table(rollups)
    assert [row[4] for row in kept if row[3] == store.STOPPED] == ["csat"]
    async with services.db.transaction() as connection:
        await store.rebuild(connection)
    assert await table(rollups) == kept


async def test_exports_stream_responses_with_labels_in_the_readers_language(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    clock = FakeClock()
    use_clock(services, clock)  # the customers' answers too
    await _answer(emulator.user(961, "Eka"), consent, "2")
    await _answer(emulator.user(962, "Fajar"), consent, "9")
    viewer = await add_staff(
        services, emulator.user(970, "Vina"), Role.VIEWER, "branch:JKT01", locale="id"
    )
    await viewer.user.send_text(f"/login {code(viewer.secret, clock)}")
    await viewer.user.wait_for(lambda m: "masuk sebagai" in m.body)

    await viewer.user.send_text("/export JKT01 7d csv")
    sent = await viewer.user.wait_for(lambda m: m.document is not None)
    assert sent.document["file_name"].endswith(".csv") and "2 respons" in sent.body
    rows = list(csv.reader(io.StringIO(sent.content.decode("utf-8-sig"))))  # type: ignore[union-attr]
    header, body = rows[0], rows[1:]
    assert header[:4] == ["Respons", "Cabang", "Selesai (waktu cabang)", "Survei"]
    assert "Apa alasan utama di balik nilai yang Anda berikan?" in header
    assert len(body) == 2 and {row[1] for row in body} == {"JKT01"}
    reason = header.index("Apa alasan utama di balik nilai yang Anda berikan?")
    assert sorted(row[reason] for row in body) == ["", "Antrean terlalu lama"]

    await viewer.user.send_text("/export xlsx")
    book = await viewer.user.wait_for(lambda m: m.document is not None)
    with zipfile.ZipFile(io.BytesIO(book.content)) as archive:  # type: ignore[arg-type]
        workbook = archive.read("xl/workbook.xml").decode()
        strings = (
            archive.read("xl/sharedStrings.xml").decode()
            if "xl/sharedStrings.xml" in archive.namelist()
            else ""
        )
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert 'name="Respons"' in workbook and 'name="Ringkasan"' in workbook
    assert "Antrean terlalu lama" in strings + sheet

    await viewer.user.send_text("/export MKS01")
    assert "di luar cakupan" in (await viewer.user.next_reply()).body
    await viewer.user.send_text("/export csv xlsx")
    assert "Cara pakai: /export" in (await viewer.user.next_reply()).body
    async with services.db.transaction() as connection:
        outcomes = (
            (
                await connection.execute(
                    sa.select(audit_log.c.outcome).where(audit_log.c.action == "export.read")
                )
            )
            .scalars()
            .all()
        )
    assert outcomes == ["allowed", "allowed", "refused", "refused"]
