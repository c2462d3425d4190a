"""What a newcomer meets first: start-up that stops with one sentence naming the cause, and an
outro that promises nothing the bank does not do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.errors import ConfigError
from bot.wiring.app import open_services
from bot.wiring.config import Settings
from bot.wiring.runner import Webhook, _serve_one, running
from bot.wiring.services import Services
from storage.crypto import create_key_file, set_keyring
from storage.models import branches
from tests.conftest import BACKEND

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]


async def test_the_outro_promises_no_follow_up(
    emulator: BotApiEmulator, services: Services, consent: Consent
) -> None:
    """Nobody in the example organisation takes detractor alerts, so no customer is told
    that someone will follow up."""
    async with running(services):
        for telegram_id, locale in ((4001, "id"), (4002, "en")):
            user = emulator.user(telegram_id, language_code=locale)
            message = await consent(user, "b_JKT01")
            while message.button_data:
                low = [d for d in message.button_data if d.endswith((":a:1", ":a:0", ":s"))]
                await user.press(message, (low or message.button_data)[0])
                message = await user.next_reply()
                if not message.button_data and "?" in message.body:
                    await user.send_text("Terlalu lama.")
                    message = await user.next_reply()
            text = message.body.lower()
            assert "terima kasih" in text or "thank you" in text
            assert "follow up" not in text and "menindaklanjut" not in text
            assert "menghubungi anda" not in text


async def test_a_branch_whose_survey_does_not_load_stops_start_up(
    services: Services, bot_settings: Settings
) -> None:
    async with services.db.transaction() as connection:
        await connection.execute(
            sa.update(branches).where(branches.c.code == "BDG01").values(survey_key="atm_visit")
        )
    with pytest.raises(ConfigError) as caught:
        await open_services(bot_settings)
    message = str(caught.value)
    assert "atm_visit.yaml is missing" in message and "branch BDG01" in message
    assert "\n" not in message
    set_keyring(None)


async def test_a_broken_default_survey_stops_start_up(
    bot_settings: Settings, tmp_path: pytest.TempPathFactory
) -> None:
    surveys = tmp_path / "surveys"  # type: ignore[operator]
    surveys.mkdir()
    (surveys / "branch_service.yaml").write_text("spec: 1\nid: branch_service\nquestions: []\n")
    with pytest.raises(ConfigError) as caught:
        await open_services(bot_settings.model_copy(update={"surveys_dir": surveys}))
    message = str(caught.value)
    assert f"{surveys / 'branch_service.yaml'} is invalid" in message
    assert "required key is missing" in message and "DEFAULT_SURVEY" in message
    assert "\n" not in message
    set_keyring(None)


async def test_a_wrong_key_file_is_named(services: Services, bot_settings: Settings) -> None:
    bot_settings.key_file.unlink()
    create_key_file(bot_settings.key_file)  # a key of some other database
    with pytest.raises(ConfigError, match="does not open this database") as caught:
        await open_services(bot_settings)
    assert f"the key file {bot_settings.key_file}" in str(caught.value)
    set_keyring(None)


async def test_a_bot_api_that_refuses_is_not_called_unreachable(
    emulator: BotApiEmulator, services: Services, bot_settings: Settings
) -> None:
    refusal = "Bad Request: bad webhook: HTTPS url must be provided"
    emulator.fail("setWebhook", error_code=400, description=refusal)
    hook = Webhook("http://127.0.0.1:1", "127.0.0.1", 0, "secret")
    with pytest.raises(ConfigError) as caught:
        await _serve_one(bot_settings, hook)
    message = str(caught.value)
    assert "refused a call" in message and "https url must be provided" in message.lower()
    assert "cannot be reached" not in message
    set_keyring(None)


@pytest.mark.skipif(BACKEND != "postgres", reason="a read-only PostgreSQL database")
async def test_a_database_that_takes_no_writes_stops_start_up(
    services: Services, bot_settings: Settings
) -> None:
    name = make_url(bot_settings.database_url).database
    async with services.db.engine.connect() as connection:
        await connection.execute(
            sa.text(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        )
        await connection.commit()
    with pytest.raises(ConfigError) as caught:
        await open_services(bot_settings)
    message = str(caught.value)
    assert "takes no writes (cannot execute INSERT in a read-only transaction)" in message
    assert "\n" not in message
    set_keyring(None)
