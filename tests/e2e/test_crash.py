"""Nobody is stranded by a crash: the real `run_bot.py` is killed with SIGKILL five times while 50
customers answer, and every one of them finishes by tapping what the chat shows, never typing
/start again; each acknowledged answer is stored once. The crash run is bench/crashes.py's,
which bench/faults.py records."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from bench.crashes import EXPECTED, crash_emulator, crash_run
from bot.devtools.emulator import BotApiEmulator
from bot.wiring.services import Services
from tests.e2e.conftest import TOKEN

log = logging.getLogger(__name__)
CUSTOMERS = 50
KILLS = 5


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    async with crash_emulator(TOKEN) as emu:
        yield emu


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_five_crashes_strand_nobody(
    mode: str, emulator: BotApiEmulator, services: Services
) -> None:
    run = await crash_run(emulator, services, mode, customers=CUSTOMERS, kills=KILLS)
    assert run.finished == CUSTOMERS  # nobody left facing dead buttons
    assert run.unexpected == 0  # each stored the answers tapped
    assert run.sessions == {"completed": CUSTOMERS}  # one session each, none left open
    assert run.stored == CUSTOMERS * len(EXPECTED) == run.acknowledged  # none lost
    assert run.duplicates == 0
    assert len(run.recoveries) == KILLS
    assert "Traceback" not in "".join(run.log)
    log.info("%s: %d re-taps, %d deliveries answered 5xx", mode, run.retaps, run.server_errors)
