"""Nobody is stranded by a crash: the real `run_bot.py` is killed with SIGKILL five times while 50
customers answer, and every one of them finishes by tapping what the chat shows, never typing
/start again; each acknowledged answer is stored once."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.devtools.emulator.users import NoReply
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage.models import answers, customers, survey_sessions
from tests.e2e.conftest import TOKEN, free_port
from tests.e2e.test_customer import stored
from tests.e2e.test_live_question import live_questions
from tests.e2e.test_workers import ROOT, _env

log = logging.getLogger(__name__)
Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]
CUSTOMERS = 50
KILLS = 5
RETAP_AFTER = 3.0  # seconds a customer waits for the bot before tapping again
OUTRO = "Terima kasih atas waktu"
# The path every customer takes: the first answer, or Skip where a question may be skipped.
EXPECTED = {
    "csat": 1,
    "nps": 0,
    "main_reason": "waiting",
    "resolved": True,
    "improve": None,
    "comment": None,
}


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    """No flood limits (the bot's pacing is not under test); Telegram's webhook retries span a
    restart."""
    async with BotApiEmulator(
        token=TOKEN,
        global_rate=None,
        per_chat_rate=None,
        webhook_retry_delays=(0.5, 1.0, 2.0, 4.0, 8.0),
    ) as emu:
        yield emu


class Bot:
    """`run_bot.py` in a process of its own, killed and started again at will."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...]) -> None:
        self._env, self._args = env, args
        self.process: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start it and wait until it says it is running."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "run_bot.py"),
            *self._args,
            env=self._env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stderr is not None
        async with asyncio.timeout(30):
            while b"Suara is running" not in (line := await self.process.stderr.readline()):
                assert line, "the bot stopped before it ran: " + "".join(self.log[-5:])
                self.log.append(line.decode())
        self._drain = asyncio.create_task(self._read(self.process.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.log.append(line.decode())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 30)
        if self._drain is not None:
            await self._drain


def _finished(user: SimUser) -> bool:
    return any(OUTRO in m.body for m in user.messages)


def _choice(question: SimMessage) -> str:
    skip = [d for d in question.button_data if d.endswith(":s")]
    return (skip or [d for d in question.button_data if ":a:" in d])[0]


async def _answer_to_the_end(user: SimUser, rng: random.Random) -> int:
    """Tap through the survey as a patient customer: when nothing happens, tap again whatever
    the chat shows. Returns how often the customer had to tap again."""
    retaps = 0
    while True:
        live = live_questions(user)
        if not live:
            if _finished(user):
                return retaps
            await asyncio.sleep(0.05)  # a redraw is on its way
            continue
        question = live[-1]
        shown = (question.message_id, question.body)
        await asyncio.sleep(rng.uniform(0.2, 1.2))  # reading the question
        if (question.message_id, question.body) != shown or not question.button_data:
            continue
        await user.press(question, _choice(question))
        try:
            await user.wait_for(lambda m, shown=shown: (m.message_id, m.body) != shown, RETAP_AFTER)
        except NoReply:
            retaps += 1


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_five_crashes_strand_nobody(
    mode: str,
    emulator: BotApiEmulator,
    bot_settings: Settings,
    services: Services,
    consent: Consent,
) -> None:
    port = free_port() if mode == "webhook" else None
    extra = {"PER_CHAT_RATE": "30", "PER_CHAT_BURST": "30", "SEND_RATE": "1000"}
    args: tuple[str, ...] = ()
    if port is not None:
        args = ("--webhook",)
        extra |= {
            "WEBHOOK_URL": f"http://127.0.0.1:{port}",
            "LISTEN_HOST": "127.0.0.1",
            "LISTEN_PORT": str(port),
            "WEBHOOK_SECRET": "crash-secret",
        }
    bot = Bot(_env(bot_settings, LOG_LEVEL="INFO", **extra), args)
    await bot.start()
    try:
        users = [emulator.user(7000 + n, language_code="id") for n in range(CUSTOMERS)]
        await asyncio.wait_for(asyncio.gather(*(consent(u, "b_JKT01") for u in users)), 30)
        rng = random.Random(9)
        survey = asyncio.gather(
            *(_answer_to_the_end(u, random.Random(n)) for n, u in enumerate(users))
        )
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            assert not all(_finished(u) for u in users)  # a kill among customers answering
            bot.kill()
            await bot.process.wait()  # type: ignore[union-attr]
            await bot.start()
        retaps = await asyncio.wait_for(survey, 60)
    finally:
        await bot.stop()
    for user in users:
        assert live_questions(user) == [] and _finished(user)
        assert await stored(services, user.id) == EXPECTED
    async with services.db.transaction() as connection:
        sessions = (
            await connection.execute(
                sa.select(survey_sessions.c.status, sa.func.count())
                .join(customers, customers.c.id == survey_sessions.c.customer_id)
                .where(customers.c.telegram_id >= 7000)
                .group_by(survey_sessions.c.status)
            )
        ).all()
        stored_answers = await connection.scalar(sa.select(sa.func.count()).select_from(answers))
    assert dict(sessions) == {"completed": CUSTOMERS}  # one session each, none left open
    assert stored_answers == CUSTOMERS * len(EXPECTED)  # none doubled
    assert "Traceback" not in "".join(bot.log)
    failed = sum(1 for attempt in emulator.webhook_log if not attempt.ok)
    log.info("%s: %d re-taps, %d failed webhook deliveries", mode, sum(retaps), failed)
