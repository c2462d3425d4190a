"""A campaign that targets an imported list, set up in chat: the admin picks "An imported list"
in `/campaign_new` and sends the CSV; only that list's customers inside the admin's scope who
can receive a message are invited, each once; every ref left out is reported and counted."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage
from bot.services.customer_lists import ref_index
from bot.wiring.services import Services
from storage.models import audit_log, campaign_targets, customers
from tests.e2e.campaigning import (
    add_customers,
    admin,
    daytime_clock,
    delivery_counts,
    invitations,
    use_clock,
    wait_settled,
)

pytestmark = pytest.mark.usefixtures("bot")


def _press_label(message: SimMessage, label: str) -> str:
    data = message.button(label)
    assert data is not None, f"no button {label!r}: {message.button_labels}"
    return data


async def _give_refs(services: Services, refs: dict[str, int]) -> None:
    """Tie each Telegram account to a customer ref, as an imported list and a personal link do."""
    async with services.db.transaction() as connection:
        for ref, telegram_id in refs.items():
            await connection.execute(
                sa.update(customers)
                .where(customers.c.telegram_id == telegram_id)
                .values(ref_hash=ref_index(ref))
            )


async def test_an_admin_targets_an_uploaded_list_in_the_guided_setup(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    listed = await add_customers(services, emulator, "JKT01", 3)
    (opted_out,) = await add_customers(services, emulator, "BDG01", 1, opted_out=True)
    not_listed = await add_customers(services, emulator, "JKT01", 2)
    (outside,) = await add_customers(services, emulator, "MKS01", 1)
    await _give_refs(
        services,
        {
            "N-1": listed[0].id,
            "N-2": listed[1].id,
            "N-3": listed[2].id,
            "N-4": opted_out.id,
            "N-5": outside.id,
            "N-6": not_listed[0].id,
        },
    )
    boss = await admin(services, emulator, clock, scope="region:BAR")

    await boss.user.send_text("/campaign_new")
    ask = await boss.user.wait_for(lambda m: "which survey" in m.body)
    await boss.user.press(ask, _press_label(ask, "branch_service"))
    ask = await boss.user.wait_for(lambda m: "which branch or region" in m.body)
    await boss.user.press(ask, _press_label(ask, "An imported list"))
    ask = await boss.user.wait_for(lambda m: "Send the customer list as a CSV file" in m.body)
    assert ask.button_labels == ["Cancel"]

    # N-2 twice, an unknown ref, one outside the region, one opted out, one malformed row.
    rows = "ref\nN-1\nN-2\nN-9\nN-5\nN-4\nN-3\nN-2\n#!\n"
    await boss.user.send_document(rows.encode(), "prioritas.csv", mime_type="text/csv")
    ask = await boss.user.wait_for(lambda m: "When should it start" in m.body)
    assert "The list names 6 customer refs: 4 found in scope." in ask.body
    assert "Unknown customer ref on rows 4" in ask.body
    assert "Not in scope on rows 5" in ask.body
    assert "Row 9, ref: not a customer number" in ask.body
    await boss.user.press(ask, _press_label(ask, "Now"))
    confirm = await boss.user.wait_for(lambda m: "Launch it now?" in m.body)
    assert "Customers: those of the imported list" in confirm.body
    assert "Would invite 3 customers now." in confirm.body
    assert "unknown customer ref 1" in confirm.body and "not in scope 1" in confirm.body
    assert "opted out 1" in confirm.body
    await boss.user.press(confirm, _press_label(confirm, "Launch"))
    launched = await boss.user.wait_for(lambda m: "is launched" in m.body)
    number = int(launched.body.split("Campaign ")[1].split()[0])

    await wait_settled(services, number, "invite", 3)
    assert all(len(invitations(user)) == 1 for user in listed)
    assert not any(invitations(user) for user in (*not_listed, outside, opted_out))
    assert (await delivery_counts(services, number))[("invite", "sent")] == 3
    async with services.db.transaction() as connection:
        audited = (
            await connection.execute(
                sa.select(audit_log.c.actor, audit_log.c.details).where(
                    audit_log.c.action == "campaign.list"
                )
            )
        ).one()
    assert audited.actor == f"staff:{boss.id}"
    assert json.loads(audited.details)["unknown_ref"] == 1

    # A customer who erases their data leaves no trace in the campaign's list either.
    assert await services.personal_data.erase(listed[0].id)
    async with services.db.transaction() as connection:
        kept = set((await connection.scalars(sa.select(campaign_targets.c.ref_hash))).all())
    assert ref_index("N-1") not in kept and ref_index("N-2") in kept

    # With no campaign waiting for a list, the same file is an import again.
    await boss.user.send_document(b"ref\nN-1\n", "prioritas.csv", mime_type="text/csv")
    reply = await boss.user.wait_for(lambda m: "rows rejected" in m.body)
    assert "Customers:" in reply.body


async def test_a_list_file_that_cannot_be_read_is_one_sentence_and_the_setup_waits(
    emulator: BotApiEmulator, services: Services
) -> None:
    clock = daytime_clock()
    use_clock(services, clock)
    boss = await admin(services, emulator, clock, scope="branch:JKT01")
    await boss.user.send_text("/campaign_new")
    ask = await boss.user.wait_for(lambda m: "which survey" in m.body)
    await boss.user.press(ask, _press_label(ask, "branch_service"))
    ask = await boss.user.wait_for(lambda m: "which branch or region" in m.body)
    await boss.user.press(ask, _press_label(ask, "An imported list"))
    await boss.user.wait_for(lambda m: "Send the customer list as a CSV file" in m.body)
    await boss.user.send_document(b"\xff\xfe\x00bad", "list.csv", mime_type="text/csv")
    await boss.user.wait_for(lambda m: "not UTF-8 text" in m.body)
    await boss.user.send_document(b"ref\n?!\n", "list.csv", mime_type="text/csv")
    await boss.user.wait_for(lambda m: "no valid customer ref" in m.body)
    (customer,) = await add_customers(services, emulator, "JKT01", 1)
    await _give_refs(services, {"J-1": customer.id})
    await boss.user.send_document(b"J-1\n", "list.csv", mime_type="text/csv")
    ask = await boss.user.wait_for(lambda m: "When should it start" in m.body)
    assert "The list names 1 customer ref: 1 found in scope." in ask.body
