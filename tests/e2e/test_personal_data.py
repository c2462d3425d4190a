"""Personal data protection end to end: encryption at rest (read from the raw database),
access, erasure, retention, consent versions, key rotation and wrong keys."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from telegram.ext import Application

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.errors import ConfigError
from bot.services import keys
from bot.services.analytics import branch_summaries
from bot.services.conversation import Person, ShowNotice
from bot.wiring.app import open_services
from bot.wiring.config import Settings
from bot.wiring.logs import configure_logging
from bot.wiring.services import Services
from storage import audit
from storage import customers as customer_store
from storage.crypto import generate_key_material, set_keyring
from storage.models import answers, customers, metadata, now, survey_sessions
from tests.e2e.conftest import TOKEN
from tests.e2e.staffing import FakeClock

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
pytestmark = pytest.mark.usefixtures("bot")

NAME = "Siti Rahmawati"
PHONE = "+6281234567890"
COMMENT = "Satpam di pintu masuk sangat membantu ibu saya"


def data(message: SimMessage, suffix: str) -> str:
    return next(d for d in message.button_data if d.endswith(suffix))


async def take_survey(user: SimUser, consent: Consent, comment: str = COMMENT) -> None:
    """The branch survey with a detractor score and a written comment."""
    q = await consent(user, "b_BDG01")
    for suffix in (":a:2", ":a:4", ":a:waiting", ":a:no", ":t:comfort"):
        await user.press(q, data(q, suffix))
        q = await user.next_reply()
    await user.press(q, data(q, ":d"))
    await user.next_reply()
    await user.send_text(comment)
    outro = await user.next_reply()
    assert "Terima kasih atas waktu" in outro.body


async def raw_database_text(services: Services) -> str:
    """Everything the database holds, as stored: file bytes for SQLite, every row for PG."""
    db = services.db
    if not db.is_postgres:
        path = Path(db.engine.url.database or "")
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()).decode(
            "latin-1"
        )
    parts = []
    async with db.engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows = await connection.execute(
                sa.text(f"SELECT row_to_json(t)::text FROM {table.name} t")
            )
            parts.extend(row[0] for row in rows)
    return "\n".join(parts)


async def summaries(services: Services) -> list[object]:
    async with services.db.transaction() as connection:
        return list(await branch_summaries(connection))


async def test_personal_data_is_never_stored_in_plaintext(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    siti = emulator.user(3001, first_name="Siti", last_name="Rahmawati", language_code="id")
    await take_survey(siti, consent)
    async with services.db.transaction() as connection:
        customer = await customer_store.by_telegram_id(connection, 3001)
        assert customer is not None
        await customer_store.set_contact(
            connection, customer.id, name=NAME, phone="0812-3456-7890", at=now()
        )
        profile = await customer_store.profile(connection, customer.id)
        found = await customer_store.by_phone(connection, "+62 812 3456 7890")
    assert profile is not None and (profile.name, profile.phone) == (NAME, PHONE)
    assert found is not None and found.id == customer.id
    raw = await raw_database_text(services)
    assert "Rahmawati" not in raw and "812345" not in raw and "Satpam" not in raw
    assert "pintu masuk" not in raw


async def test_mydata_sends_a_summary_and_the_whole_record(
    emulator: BotApiEmulator, consent: Consent
) -> None:
    siti = emulator.user(3002, first_name="Siti", last_name="Rahmawati", language_code="id")
    await take_survey(siti, consent)
    await siti.send_text("/mydata")
    summary = await siti.next_reply()
    document = await siti.wait_for(lambda m: m.document is not None)
    assert "Nama: Siti Rahmawati" in summary.body and "1 dimulai, 1 selesai" in summary.body
    record = json.loads(document.content or b"")
    assert record["profile"]["name"] == NAME and record["profile"]["telegram_id"] == 3002
    assert record["consents"][0]["decision"] == "agree"
    assert record["surveys"][0]["answers"] == {
        "csat": 2,
        "nps": 4,
        "main_reason": "waiting",
        "resolved": False,
        "improve": ["comfort"],
        "comment": COMMENT,
    }
    stranger = emulator.user(3003, language_code="en")
    await stranger.send_text("/mydata")
    assert "We store no data about you" in (await stranger.next_reply()).body


async def test_erasure_leaves_no_personal_data_and_the_same_summary(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    siti = emulator.user(3004, first_name="Siti", last_name="Rahmawati", language_code="id")
    other = emulator.user(3005, first_name="Tono", language_code="id")
    await take_survey(siti, consent)
    await take_survey(other, consent, comment="Ruang tunggu nyaman sekali")
    await siti.start("b_JKT01")  # a second survey, left open
    assert "Pertanyaan 1 dari" in (await siti.next_reply()).body
    before = await summaries(services)

    await siti.send_text("/delete_me")
    ask = await siti.next_reply()
    await siti.press(ask, "e:n")
    assert "Tidak ada yang dihapus" in (await siti.next_reply()).body
    await siti.send_text("/delete_me")
    ask = await siti.next_reply()
    await siti.press(ask, "e:y")
    assert "telah dihapus" in (await siti.next_reply()).body

    assert await summaries(services) == before
    raw = await raw_database_text(services)
    async with services.db.transaction() as connection:
        row = (
            await connection.execute(sa.select(customers).where(customers.c.erased_at.is_not(None)))
        ).one()
        linked = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(survey_sessions)
            .where(survey_sessions.c.customer_id == row.id)
        )
        texts = (
            (
                await connection.execute(
                    sa.select(answers.c.value_text).where(answers.c.value_text.is_not(None))
                )
            )
            .scalars()
            .all()
        )
        still_open = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(survey_sessions)
            .where(survey_sessions.c.status == "open")
        )
    assert (row.telegram_id, row.name, row.phone, row.phone_hash) == (None, None, None, None)
    assert linked == 0 and texts == ["Ruang tunggu nyaman sekali"] and still_open == 0
    assert "Satpam" not in raw
    async with services.db.transaction() as connection:
        trail = await audit.entries(connection, actor=f"customer:{row.id}")
        assert await audit.verify(connection) is None
    assert [e.action for e in reversed(trail)] == ["customer.consent", "customer.erase"]
    assert not any("3004" in str(e) or "Siti" in str(e) for e in trail)
    await siti.send_text("/mydata")
    assert "Kami tidak menyimpan data" in (await siti.next_reply()).body


async def test_retention_purges_old_free_text_and_inactive_customers(
    emulator: BotApiEmulator, services: Services, consent: Consent, bot: Application
) -> None:
    clock = FakeClock()
    services.conversations.clock = services.personal_data.clock = clock
    siti = emulator.user(3006, first_name="Siti", language_code="id")
    await take_survey(siti, consent)
    late = emulator.user(3007, language_code="id")
    await consent(late, "b_JKT01")  # an unfinished survey
    before = await summaries(services)
    assert "retention-purge" in [job.name for job in bot.job_queue.jobs()]
    assert (await services.personal_data.plan_purge()).customers == 0
    clock.advance(days=services.settings.retention_days + 1)
    plan = await services.personal_data.plan_purge()
    assert (plan.customers, plan.free_text_answers, plan.open_sessions) == (2, 1, 1)
    done = await services.personal_data.purge()
    assert (done.customers, done.free_text_answers, done.open_sessions) == (2, 1, 1)
    assert await summaries(services) == before
    async with services.db.transaction() as connection:
        remaining = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(customers)
            .where(customers.c.telegram_id.is_not(None))
        )
    assert remaining == 0 and "Satpam" not in await raw_database_text(services)


async def test_a_new_notice_version_asks_again(
    emulator: BotApiEmulator,
    services: Services,
    bot_settings: Settings,
    consent: Consent,
    tmp_path: Path,
) -> None:
    umi = emulator.user(3008, language_code="id")
    await consent(umi, None)
    newer = tmp_path / "notice.yaml"
    newer.write_text(
        bot_settings.privacy_notice_file.read_text().replace(
            'version: "2026-11-01"', 'version: "2099-01-01"'
        )
    )
    await services.db.dispose()  # stands for the process being restarted with the new file
    restarted = await open_services(bot_settings.model_copy(update={"privacy_notice_file": newer}))
    try:
        outcome = await restarted.conversations.start(10_000, Person(3008, "id"), "b_JKT01")
    finally:
        await restarted.db.dispose()
    assert isinstance(outcome, ShowNotice)
    assert "Pemberitahuan Privasi" in outcome.text


async def test_key_rotation_keeps_every_record_readable(
    emulator: BotApiEmulator, services: Services, bot_settings: Settings, consent: Consent
) -> None:
    siti = emulator.user(3009, first_name="Siti", language_code="id")
    await take_survey(siti, consent)
    old_file = bot_settings.key_file.read_text()
    rewritten = await keys.rotate(bot_settings, services.db)
    assert rewritten >= 3  # name, session state, comment
    assert bot_settings.key_file.read_text() != old_file
    assert len(json.loads(bot_settings.key_file.read_text())["fernet_keys"]) == 1
    reopened = await open_services(bot_settings)
    try:
        exported = await reopened.personal_data.export(3009)
    finally:
        await reopened.db.dispose()
    assert exported is not None and exported["profile"]["name"] == "Siti"
    assert exported["surveys"][0]["answers"]["comment"] == COMMENT
    bot_settings.key_file.write_text(old_file)  # the retired key no longer opens the data
    with pytest.raises(ConfigError, match="does not open this database"):
        await open_services(bot_settings)


async def test_a_wrong_key_stops_start_up(services: Services, bot_settings: Settings) -> None:
    other = generate_key_material()
    wrong = bot_settings.model_copy(
        update={
            "encryption_keys": SecretStr(other.fernet_keys[0]),
            "hash_key": SecretStr(other.hash_key),
        }
    )
    with pytest.raises(ConfigError, match="does not open this database"):
        await open_services(wrong)
    bot_settings.key_file.unlink()
    with pytest.raises(ConfigError, match=r"key file .* is missing"):
        await open_services(bot_settings)
    set_keyring(None)


async def test_logs_hold_no_token_and_no_personal_data(
    emulator: BotApiEmulator, consent: Consent, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    siti = emulator.user(3010, first_name="Siti", last_name="Rahmawati", language_code="id")
    await take_survey(siti, consent)
    await siti.send_text("/mydata")
    await siti.wait_for(lambda m: m.document is not None)
    logged = "\n".join(
        record.getMessage() + (caplog.text if record.exc_info else "") for record in caplog.records
    )
    assert logging.getLogger("bot.services.conversation").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("telegram.ext.ExtBot").isEnabledFor(logging.DEBUG)
    for secret in (TOKEN.split(":")[1], "Rahmawati", "Satpam", "pintu masuk"):
        assert secret not in logged
