"""Contact consent at a survey's end, and who may see who answered: customers say yes or no
through the bot; a branch viewer's export has no name or phone columns; an admin asking for
contacts is asked for a fresh code and then sees names only of customers who agreed (never
an erased one); the command line names them only with `--with-contacts`. Every export is
audited with whether it named anyone."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.services.access import Role
from bot.wiring.services import Services
from flows.schema import load_survey
from storage.models import audit_log, branches, customers, survey_sessions
from tests.e2e.campaigning import use_clock
from tests.e2e.staffing import FakeClock, add_staff, code, log_in

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
pytestmark = pytest.mark.usefixtures("bot")
SURVEY = Path(__file__).parents[1] / "fixtures" / "surveys" / "valid" / "contact_consent.yaml"


def _data(message: SimMessage, suffix: str) -> str:
    return next(d for d in message.button_data if d.endswith(suffix))


async def _use_callback_survey(services: Services) -> None:
    text = SURVEY.read_text(encoding="utf-8")
    await services.catalog.register(load_survey(text), text)
    async with services.db.transaction() as connection:
        await connection.execute(
            sa.update(branches).where(branches.c.code == "JKT01").values(survey_key="callback")
        )


async def _answer(user: SimUser, consent: Consent, nps: str, contact: str) -> None:
    q = await consent(user, "b_JKT01")
    await user.press(q, _data(q, f":a:{nps}"))
    q = await user.next_reply()
    assert "menghubungi" in q.body  # the question about being contacted, at the end
    await user.press(q, _data(q, f":a:{contact}"))
    await user.wait_for(lambda m: "Terima kasih" in m.body)


async def _name(services: Services, telegram_id: int, name: str, phone: str) -> None:
    """Names and phones come from the bank's customer lists; here straight into the table."""
    async with services.db.transaction() as connection:
        await connection.execute(
            sa.update(customers)
            .where(customers.c.telegram_id == telegram_id)
            .values(name=name, phone=phone)
        )


def _rows(message: SimMessage) -> list[list[str]]:
    return list(csv.reader(io.StringIO(message.content.decode("utf-8-sig"))))  # type: ignore[union-attr]


async def _audits(services: Services, action: str) -> list[tuple[str, dict[str, object]]]:
    async with services.db.transaction() as connection:
        rows = await connection.execute(
            sa.select(audit_log.c.outcome, audit_log.c.details)
            .where(audit_log.c.action == action)
            .order_by(audit_log.c.id)
        )
        return [(outcome, json.loads(details)) for outcome, details in rows]


async def test_names_reach_only_admins_after_step_up_and_only_for_customers_who_agreed(
    emulator: BotApiEmulator, services: Services, consent: Consent, tmp_path: Path
) -> None:
    clock = FakeClock()
    use_clock(services, clock)  # the customers' answers too
    await _use_callback_survey(services)
    await _answer(emulator.user(801, "Ani"), consent, "9", "yes")
    await _answer(emulator.user(802, "Budi"), consent, "3", "no")
    await _answer(emulator.user(803, "Citra"), consent, "10", "yes")
    await _name(services, 801, "Ani Lestari", "+6281111111111")
    await _name(services, 802, "Budi Santoso", "+6282222222222")
    await _name(services, 803, "Citra Dewi", "+6283333333333")
    assert await services.personal_data.erase(803)  # Citra erases her data: never shown

    async with services.db.transaction() as connection:
        stored = sorted(
            (
                await connection.execute(
                    sa.select(survey_sessions.c.contact_consent).where(
                        survey_sessions.c.status == "completed"
                    )
                )
            ).scalars()
        )
    assert stored == [False, True, True]
    for telegram_id, agreed in ((801, True), (802, False)):  # each sees what they said
        exported = await services.personal_data.export(telegram_id)
        assert exported is not None and exported["surveys"][0]["may_contact"] is agreed

    viewer = await add_staff(
        services, emulator.user(810, "Vina"), Role.VIEWER, "branch:JKT01", locale="id"
    )
    admin = await add_staff(services, emulator.user(811, "Adi"), Role.ADMIN, "region:BAR")
    await viewer.user.send_text(f"/login {code(viewer.secret, clock)}")
    await viewer.user.wait_for(lambda m: "masuk sebagai" in m.body)
    await log_in(admin, clock)

    # A branch viewer: no name or phone columns at all, and no way to ask for them.
    await viewer.user.send_text("/export JKT01 7d")
    header = _rows(await viewer.user.wait_for(lambda m: m.document is not None))[0]
    assert "Nama" not in header and "Telepon" not in header
    await viewer.user.send_text("/export JKT01 7d contacts")
    assert "Peran Anda tidak mengizinkan ini." in (await viewer.user.next_reply()).body
    await viewer.user.send_text("/export campaign 1")  # campaigns are a /results period
    assert "Cara pakai: /export" in (await viewer.user.next_reply()).body

    # An admin's plain export names nobody either.
    await admin.user.send_text("/export JKT01 7d")
    header = _rows(await admin.user.wait_for(lambda m: m.document is not None))[0]
    assert "Name" not in header

    # Asking for contacts long after the login's code: a fresh code first.
    clock.advance(minutes=6)
    await admin.user.send_text("/export JKT01 7d contacts")
    asked = await admin.user.next_reply()
    assert "needs a fresh code" in asked.body and asked.document is None
    await admin.user.send_text(code(admin.secret, clock))
    rows = _rows(await admin.user.wait_for(lambda m: m.document is not None))
    header, body = rows[0], rows[1:]
    name, phone = header.index("Name"), header.index("Phone")
    assert header[4:6] == ["Name", "Phone"]  # after response, branch, time and survey
    assert len(body) == 3
    assert sorted((row[name], row[phone]) for row in body) == [
        ("", ""),  # Budi said no
        ("", ""),  # Citra said yes, then erased her data
        ("Ani Lestari", "+6281111111111"),
    ]
    everything = "\n".join(",".join(row) for row in rows)
    assert "Budi" not in everything and "Citra" not in everything

    # Within five minutes of that code, contacts need no second one.
    await admin.user.send_text("/export JKT01 7d csv contacts")
    again = _rows(await admin.user.wait_for(lambda m: m.document is not None))
    assert "Ani Lestari" in {row[name] for row in again[1:]}

    read = await _audits(services, "export.read")
    assert [(outcome, details.get("identities")) for outcome, details in read] == [
        ("allowed", False),  # the viewer
        ("refused", None),  # the viewer's campaign period
        ("allowed", False),  # the admin, without contacts
    ]
    contacts = await _audits(services, "export.contacts")
    assert [
        (outcome, details.get("identities"), details.get("named")) for outcome, details in contacts
    ] == [
        ("refused", None, None),  # the viewer
        ("step_up", None, None),  # the admin, before the code
        ("allowed", True, 1),  # carried out after the code
        ("allowed", True, 1),
    ]

    # The command line: names only with --with-contacts, audited as the system.
    plain = await services.exports.for_operator("JKT01", "7d", "csv")
    named = await services.exports.for_operator("JKT01", "7d", "csv", contacts=True)
    try:
        assert "Name" not in _file_rows(plain.path)[0]
        assert ("Ani Lestari", "+6281111111111") in {
            (row[4], row[5]) for row in _file_rows(named.path)[1:]
        }
        assert (plain.contacts, named.contacts, named.named) == (False, True, 1)
    finally:
        plain.path.unlink()
        named.path.unlink()
    system = await _audits(services, "export.contacts")
    assert system[-1] == (
        "done",
        {"format": "csv", "rows": 3, "identities": True, "named": 1},
    )


def _file_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
