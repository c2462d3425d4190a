"""Customer lists end to end, through the real bot and the emulator: an admin's CSV upload
inside their scope, re-imports, personal links that tie a Telegram account to its imported
customer (merging an account that answered before), phone sharing, and branch QR posters."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.access import Role
from bot.services.customer_lists import ImportReport, ref_index
from bot.services.posters import qr_code
from bot.wiring.services import Services
from storage.models import audit_log, branches, consents, customers, survey_sessions
from tests.e2e.conftest import is_question
from tests.e2e.staffing import FakeClock, StaffUser, add_staff, log_in

pytestmark = pytest.mark.usefixtures("bot")

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
BOT = "suara_demo_bot"


@pytest.fixture
def clock(services: Services) -> FakeClock:
    fake = FakeClock()
    services.staff.clock = fake
    return fake


async def _staff(
    emulator: BotApiEmulator,
    services: Services,
    clock: FakeClock,
    user_id: int,
    role: Role,
    scope: str = "region:BAR",
) -> StaffUser:
    member = await add_staff(
        services, emulator.user(user_id, "Dewi", language_code="en"), role, scope
    )
    await log_in(member, clock)
    return member


async def _import(services: Services, text: str) -> ImportReport:
    return await services.customer_lists.import_as_system(text.encode())


async def _customers(services: Services) -> list[sa.Row]:
    async with services.db.transaction() as connection:
        rows = await connection.execute(
            sa.select(
                customers.c.id,
                customers.c.telegram_id,
                customers.c.ref_hash,
                customers.c.name,
                customers.c.phone,
                customers.c.consent_version,
                branches.c.code,
            )
            .select_from(customers.outerjoin(branches, branches.c.id == customers.c.branch_id))
            .order_by(customers.c.id)
        )
        return list(rows)


async def test_admin_upload_is_checked_scoped_reported_and_idempotent(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    admin = await _staff(emulator, services, clock, 601, Role.ADMIN)
    rows = (
        "ref,name,phone,branch,locale\n"
        "C-100,Budi Santoso,081234567890,JKT01,id\n"
        "C-101,Siti Aminah,081234567891,MKS01,id\n"
        "C-102,Ani,not-a-phone,BDG01,en\n"
    )
    await admin.user.send_document(rows.encode(), "nasabah.csv", mime_type="text/csv")
    report = await admin.user.wait_for(lambda m: "Customers:" in m.body)
    assert "1 new, 0 updated, 0 unchanged; 2 rows rejected" in report.body
    assert "Row 3, branch: outside your scope" in report.body
    assert "Row 4, phone: not a valid phone number" in report.body
    sent = await admin.user.wait_for(lambda m: m.document is not None)
    assert sent.document is not None and sent.document["file_name"] == "customer-links.csv"
    links = list(csv.DictReader(io.StringIO((sent.content or b"").decode())))
    assert [(row["ref"], row["name"]) for row in links] == [("C-100", "Budi Santoso")]
    assert links[0]["link"].startswith(f"https://t.me/{BOT}?start=p_")
    stored = await _customers(services)
    assert [(row.code, row.name, row.phone) for row in stored] == [
        ("JKT01", "Budi Santoso", "+6281234567890")
    ]

    # The same file again: nothing changes and no link is made.
    await admin.user.send_document(rows.encode(), "nasabah.csv", mime_type="text/csv")
    again = await admin.user.wait_for(lambda m: "Customers:" in m.body)
    assert "0 new, 0 updated, 1 unchanged; 2 rows rejected" in again.body
    await admin.user.expect_silence(0.3)
    assert await _customers(services) == stored

    # A changed row updates its customer.
    changed = rows.replace("081234567890", "+62 813 0000 1111")
    await admin.user.send_document(changed.encode(), "nasabah.csv", mime_type="text/csv")
    updated = await admin.user.wait_for(lambda m: "Customers:" in m.body)
    assert "0 new, 1 updated, 0 unchanged" in updated.body
    assert [row.phone for row in await _customers(services)] == ["+6281300001111"]

    async with services.db.transaction() as connection:
        outcomes = (
            await connection.execute(
                sa.select(audit_log.c.actor, audit_log.c.outcome).where(
                    audit_log.c.action == "customers.import"
                )
            )
        ).all()
    assert set(outcomes) == {(f"staff:{admin.id}", "allowed"), (f"staff:{admin.id}", "done")}


async def test_a_viewer_or_editor_upload_is_refused_and_a_customer_file_is_just_a_file(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    rows = b"C-200,Budi,081234567890,JKT01,id\n"
    for user_id, role in ((611, Role.VIEWER), (612, Role.EDITOR)):
        member = await _staff(emulator, services, clock, user_id, role)
        await member.user.send_document(rows, "list.csv", mime_type="text/csv")
        assert (await member.user.next_reply()).body == "Your role does not allow this."
    customer = emulator.user(613, language_code="en")
    await customer.send_document(rows, "list.csv", mime_type="text/csv")
    assert "answer with the buttons" in (await customer.next_reply()).body
    assert await _customers(services) == []


async def test_a_personal_link_ties_the_account_and_opens_the_branch_survey(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    report = await _import(services, "C-300,Budi Santoso,081234567890,JKT01,id\n")
    token = report.links[0].token
    budi = emulator.user(701, "Budi", language_code="id")
    question = await consent(budi, f"p_{token}")
    assert is_question(question) and "Terima kasih sudah berkunjung" in question.body
    [row] = await _customers(services)
    assert (row.telegram_id, row.ref_hash, row.code, row.name) == (
        701,
        ref_index("C-300"),
        "JKT01",
        "Budi Santoso",
    )

    # The link is this account's now: another account cannot take the customer over.
    other = emulator.user(702, language_code="en")
    await consent(other, f"p_{token}")
    assert "not valid" in (other.last.body if other.last else "")
    assert [r.telegram_id for r in await _customers(services)] == [701, 702]

    # Erasure takes the customer ref and the link with it: the link stops working.
    await budi.send_text("/delete_me")
    await budi.press(await budi.next_reply(), "e:y")
    assert "telah dihapus" in (await budi.next_reply()).body
    async with services.db.transaction() as connection:
        erased = (
            await connection.execute(
                sa.select(customers.c.ref, customers.c.ref_hash, customers.c.link_hash).where(
                    customers.c.id == row.id
                )
            )
        ).one()
    assert tuple(erased) == (None, None, None)
    await consent(budi, f"p_{token}")
    assert "tidak berlaku" in (budi.last.body if budi.last else "")


async def test_an_account_that_answered_before_becomes_one_customer_row(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    siti = emulator.user(711, "Siti", language_code="id")
    first = await consent(siti, "b_BDG01")
    assert is_question(first)
    before = await _customers(services)
    assert len(before) == 1 and before[0].ref_hash is None
    report = await _import(services, "C-310,Siti Aminah,081234567899,JKT01,en\n")
    assert len(await _customers(services)) == 2

    await siti.start(f"p_{report.links[0].token}")
    question = await siti.wait_for(is_question)
    assert "Terima kasih sudah berkunjung" in question.body  # her own language stays
    [row] = await _customers(services)
    assert (row.id, row.telegram_id, row.ref_hash, row.code, row.name, row.phone) == (
        before[0].id,
        711,
        ref_index("C-310"),
        "JKT01",
        "Siti Aminah",
        "+6281234567899",
    )
    async with services.db.transaction() as connection:
        owners = set(await connection.scalars(sa.select(survey_sessions.c.customer_id)))
        consented = list(await connection.scalars(sa.select(consents.c.customer_id)))
    assert owners == {row.id} and consented == [row.id]

    # A changed row updates her record, but the language is hers to choose now.
    again = await _import(services, "C-310,Siti A. Rahma,081234567899,JKT01,en\n")
    assert again.updated == 1 and again.links == []
    async with services.db.transaction() as connection:
        name, locale = (
            await connection.execute(
                sa.select(customers.c.name, customers.c.locale).where(customers.c.id == row.id)
            )
        ).one()
    assert (name, locale) == ("Siti A. Rahma", "id")


async def test_sharing_ones_phone_finds_the_imported_customer(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    await _import(services, "C-320,Rudi,0812-2222-3333,JKT01,id\n")
    rudi = emulator.user(721, "Rudi", language_code="en")
    await rudi.send_contact("6281222223333")
    assert "privacy notice" in (await rudi.next_reply()).body  # nothing matched before consent
    greeting = await consent(rudi, None)
    assert "Hello" in greeting.body
    offer = await rudi.wait_for(lambda m: "Share your phone number" in m.body)
    [[button]] = (offer.reply_markup or {})["keyboard"]
    assert button["request_contact"] is True and button["text"] == "Share my phone number"

    await rudi.send_contact("+62 812 9999 0000", user_id=999)  # someone else's card
    assert "answer with the buttons" in (await rudi.next_reply()).body
    await rudi.send_contact("6281299990000")
    assert "not on our customer list" in (await rudi.next_reply()).body
    await rudi.send_contact("6281222223333")
    question = await rudi.wait_for(is_question)
    assert "Thank you for visiting" in question.body
    [row] = await _customers(services)
    assert (row.telegram_id, row.ref_hash, row.code) == (721, ref_index("C-320"), "JKT01")

    await rudi.send_text("/mydata")
    exported = await rudi.wait_for(lambda m: m.document is not None)
    assert b'"customer_ref": "C-320"' in (exported.content or b"")


def _finder_edge(dark: np.ndarray) -> tuple[int, int, int]:
    """Row, first and last column of the first dark run at least 150 pixels long: the top
    edge of the QR code's top-left finder pattern (text strokes are far shorter)."""
    for top, line in enumerate(dark):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], line.astype(np.int8), [0]))))
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            if end - start >= 150:
                return top, int(start), int(end)
    raise AssertionError("no QR code in the poster")


def _drawn_matrix(png: bytes, size: int) -> list[list[bool]]:
    """The QR modules drawn in a poster, each read at its centre; the finder pattern is
    seven modules wide."""
    dark = np.asarray(Image.open(io.BytesIO(png)).convert("L")) < 128
    top, left, end = _finder_edge(dark)
    module = (end - left) / 7
    return [
        [
            bool(dark[int(top + (i + 0.5) * module), int(left + (j + 0.5) * module)])
            for j in range(size)
        ]
        for i in range(size)
    ]


async def test_qr_poster_carries_the_branch_link(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    editor = await _staff(emulator, services, clock, 801, Role.EDITOR)
    await editor.user.send_text("/qr jkt01")
    poster = await editor.user.next_reply()
    link = f"https://t.me/{BOT}?start=b_JKT01"
    assert poster.document is not None and poster.document["file_name"] == "poster-JKT01.png"
    assert link in poster.body and "KC Jakarta Sudirman" in poster.body
    png = poster.content or b""
    assert png.startswith(b"\x89PNG")
    expected = [[bool(cell) for cell in row] for row in qr_code(link).matrix]
    assert _drawn_matrix(png, len(expected)) == expected
    other = [[bool(cell) for cell in row] for row in qr_code(link + "X").matrix]
    assert _drawn_matrix(png, len(other)) != other

    await editor.user.send_text("/qr JKT01 digital_banking")
    survey_poster = await editor.user.next_reply()
    assert f"https://t.me/{BOT}?start=c_" in survey_poster.body

    for command, answer in (
        ("/qr MKS01", "That is outside your scope."),
        ("/qr NOPE", "There is no branch NOPE."),
        ("/qr JKT01 nope", "There is no survey nope."),
        ("/qr", "Usage: /qr <branch> [survey]"),
    ):
        await editor.user.send_text(command)
        assert (await editor.user.next_reply()).body == answer


async def test_two_accounts_opening_one_link_at_once_tie_exactly_one(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    report = await _import(services, "C-330,Dodi,081234560000,JKT01,id\n")
    users = [emulator.user(user_id, language_code="en") for user_id in (731, 732, 733)]
    for user in users:
        await consent(user, None)
    for user in users:
        await user.start(f"p_{report.links[0].token}")
    replies = [
        await user.wait_for(lambda m: "visiting" in m.body or "not valid" in m.body)
        for user in users
    ]
    assert sorted("visiting" in reply.body for reply in replies) == [False, False, True]
    tied = [row for row in await _customers(services) if row.ref_hash is not None]
    assert len(tied) == 1 and tied[0].telegram_id in (731, 732, 733)
    assert len(await _customers(services)) == 3
