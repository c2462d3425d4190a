"""`/metrics` and `/healthz` in polling mode, on METRICS_PORT, after a small blast."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.devtools.emulator import BotApiEmulator
from bot.devtools.example import load_example
from bot.services.campaigns import Plan
from bot.wiring.app import open_services
from bot.wiring.config import Settings
from bot.wiring.runner import running
from bot.wiring.services import Services
from storage.crypto import set_keyring
from tests.e2e.campaigning import add_customers, admin, daytime_clock, use_clock, wait_settled


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def ops_services(bot_settings: Settings) -> AsyncIterator[Services]:
    settings = bot_settings.model_copy(
        update={"metrics_port": _free_port(), "listen_host": "127.0.0.1"}
    )
    opened = await open_services(settings)
    async with opened.db.transaction() as connection:
        await load_example(connection)
    yield opened
    await opened.db.dispose()
    set_keyring(None)


async def _metrics(http: aiohttp.ClientSession, port: int) -> dict[str, float]:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_and_health_in_polling_mode(
    emulator: BotApiEmulator, ops_services: Services
) -> None:
    services = ops_services
    port = services.settings.metrics_port
    clock = daytime_clock()
    use_clock(services, clock)
    users = await add_customers(services, emulator, "JKT01", 5)
    emulator.fail("sendMessage", error_code=403, description="Forbidden", chat_id=users[0].id)
    async with running(services), aiohttp.ClientSession() as http:
        created = await services.campaigns.create(None, Plan("ops", "branch_service", "all"))
        boss = await admin(services, emulator, clock)
        await boss.user.send_text(f"/campaign_launch {created.campaign.id}")  # type: ignore[union-attr]
        await wait_settled(services, created.campaign.id, "invite", 5)  # type: ignore[union-attr]
        found = await _metrics(http, port)  # type: ignore[arg-type]
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            health = await response.json()
    assert found["suara_messages_sent_total"] == 4
    assert found["suara_messages_blocked_total"] == 1
    assert found["suara_messages_failed_total"] == 0
    assert found["suara_flood_waits_total"] == 0
    assert found["suara_send_queue_depth"] == 0
    assert found["suara_sender_leader"] == 1
    assert found["suara_updates_handled_total"] >= 2  # the login and the launch
    assert found["suara_open_sessions"] == 0 and found["suara_answers_recorded_total"] == 0
    assert health == {"status": "ok", "database": "ok", "scheduler": "ok", "sender": "leader"}
