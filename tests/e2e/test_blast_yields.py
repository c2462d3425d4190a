"""Blast traffic yields to customer work in progress: while the bot is processing an update,
polled or delivered by the webhook, the pacer holds bulk slots, and gives them out as soon as
the update is done."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.devtools.emulator import BotApiEmulator
from bot.wiring.runner import Webhook, running
from bot.wiring.services import Services
from tests.e2e.conftest import free_port, has_button


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_bulk_slots_are_held_while_an_update_is_processed(
    emulator: BotApiEmulator, services: Services, mode: str
) -> None:
    pacer = services.pacer
    pacer.max_hold = 5.0  # long enough to see, on a loaded machine too
    pacer.hold_share = 1.0
    port = free_port()
    hook = Webhook(f"http://127.0.0.1:{port}", "127.0.0.1", port, "s3cret")
    async with running(services, hook if mode == "webhook" else None):
        customer = emulator.user(3101, language_code="id")
        emulator.delay("sendMessage", 0.8, chat_id=customer.id)  # the reply keeps it busy
        await customer.start("b_JKT01")
        async with asyncio.timeout(5):
            while True:  # the bot has the update
                if pacer.updates.count:
                    break
                await asyncio.sleep(0.01)
        blast = [asyncio.create_task(pacer.acquire(900_000 + n, bulk=True)) for n in range(20)]
        await asyncio.sleep(0.3)
        assert pacer.updates.count == 1
        assert not any(send.done() for send in blast)  # held while the update is processed

        await customer.wait_for(has_button("k:y"), timeout=5)
        done = time.monotonic()
        async with asyncio.timeout(5):
            await pacer.updates.idle(5)
            await asyncio.gather(*blast)
        assert time.monotonic() - done < 1.0  # released with the update, not by the bound
