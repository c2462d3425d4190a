"""Crash runs: the real `run_bot.py` killed with SIGKILL among customers answering a survey.

One driver for tests/e2e/test_crash.py (which asserts that nobody is stranded) and
bench/faults.py (which records the numbers). Customers tap whatever the chat shows and, when
nothing happens for a while, tap again; they never type /start once they have begun.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench.answers import _free_port
from bench.client import add_user, warm_up
from bot.devtools.emulator import BotApiEmulator, NoReply, SimMessage, SimUser
from bot.services.conversation import answers_so_far
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage import sessions as session_store
from storage.models import answers, customers, survey_sessions

ROOT = Path(__file__).resolve().parent.parent
RETAP_AFTER = 3.0  # seconds a customer waits for the bot before tapping again
OUTRO = "Terima kasih atas waktu"
SENDS = ("sendMessage", "editMessageText")  # the calls that show a customer an answer taken
# The path every customer takes: the first answer, or Skip where a question may be skipped.
EXPECTED = {
    "csat": 1,
    "nps": 0,
    "main_reason": "waiting",
    "resolved": True,
    "improve": None,
    "comment": None,
}


def bot_env(settings: Settings, token: str, **extra: str) -> dict[str, str]:
    """The environment that makes `run_bot.py` the bot of `settings`."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": token,
        "TELEGRAM_API_URL": settings.telegram_api_url,
        "DATABASE_URL": settings.database_url,
        "KEY_FILE": str(settings.key_file),
        "SURVEYS_DIR": str(settings.surveys_dir),
        "PRIVACY_NOTICE_FILE": str(settings.privacy_notice_file),
        **extra,
    }


def crash_emulator(token: str) -> BotApiEmulator:
    """No flood limits (the bot's pacing is not under test); Telegram's webhook retries span
    a restart."""
    return BotApiEmulator(
        token=token,
        global_rate=None,
        per_chat_rate=None,
        webhook_retry_delays=(0.5, 1.0, 2.0, 4.0, 8.0),
    )


def bot_process(emulator: BotApiEmulator, settings: Settings, mode: str) -> BotProcess:
    """`run_bot.py` for `settings`, polling or behind a webhook on a free port, its pacing
    loose enough that it never holds a customer's reply back."""
    extra = {"PER_CHAT_RATE": "30", "PER_CHAT_BURST": "30", "SEND_RATE": "1000"}
    args: tuple[str, ...] = ()
    if mode == "webhook":
        port = _free_port()
        args = ("--webhook",)
        extra |= {
            "WEBHOOK_URL": f"http://127.0.0.1:{port}",
            "LISTEN_HOST": "127.0.0.1",
            "LISTEN_PORT": str(port),
            "WEBHOOK_SECRET": "crash-secret",
        }
    return BotProcess(bot_env(settings, emulator.token, LOG_LEVEL="INFO", **extra), args)


class BotProcess:
    """`run_bot.py` in a process of its own, killed and started again at will."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...]) -> None:
        self._env, self._args = env, args
        self.url = env.get("WEBHOOK_URL")  # where it listens, behind a webhook
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

    async def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 30)
        if self._drain is not None:
            await self._drain


@dataclass
class CrashRun:
    """What the customers saw, what the database holds, and how the bot came back."""

    mode: str
    customers: int
    finished: int = 0  # customers who reached the outro with no live question left
    acknowledged: int = 0  # answers the chat moved on from
    stored: int = 0  # answer rows of these customers
    duplicates: int = 0  # rows beyond one per customer and question
    sessions: dict[str, int] = field(default_factory=dict)  # by status
    unexpected: int = 0  # finished customers whose stored answers are not the ones tapped
    server_errors: int = 0  # webhook deliveries answered 5xx
    refused: int = 0  # webhook deliveries that found no bot listening
    retaps: int = 0
    startups: list[float] = field(default_factory=list)  # restart until "Suara is running"
    recoveries: list[float] = field(default_factory=list)  # restart until the first answer
    log: list[str] = field(default_factory=list)


def _finished(user: SimUser) -> bool:
    return any(OUTRO in m.body for m in user.messages)


def live_questions(user: SimUser) -> list[SimMessage]:
    """The messages in the chat that still carry survey buttons."""
    return [m for m in user.messages if any(d.startswith("q:") for d in m.button_data)]


def _choice(question: SimMessage) -> str:
    skip = [d for d in question.button_data if d.endswith(":s")]
    return (skip or [d for d in question.button_data if ":a:" in d])[0]


async def _answer_to_the_end(user: SimUser, rng: random.Random, run: CrashRun) -> None:
    """Tap through the survey as a patient customer: when nothing happens, tap again whatever
    the chat shows. An answer counts as acknowledged once its question is live no more."""
    pressed: set[str] = set()
    while True:
        live = live_questions(user)
        if not live:
            if _finished(user):
                run.acknowledged += len(pressed)
                return
            await asyncio.sleep(0.05)  # a redraw is on its way
            continue
        question = live[-1]
        shown = (question.message_id, question.body)
        await asyncio.sleep(rng.uniform(0.2, 1.2))  # reading the question
        if (question.message_id, question.body) != shown or not question.button_data:
            continue
        await user.press(question, _choice(question))
        pressed.add(question.body)
        try:
            await user.wait_for(lambda m, shown=shown: (m.message_id, m.body) != shown, RETAP_AFTER)
        except NoReply:
            run.retaps += 1


async def _first_answer(emulator: BotApiEmulator, since: float, run: CrashRun) -> None:
    """Note how long after `since` the restarted bot showed a customer anything."""
    loop = asyncio.get_running_loop()
    before = sum(emulator.calls[m] for m in SENDS)
    while True:  # the emulator has no event for a call made
        if sum(emulator.calls[m] for m in SENDS) != before:
            break
        await asyncio.sleep(0.005)
    run.recoveries.append(loop.time() - since)


async def crash_run(
    emulator: BotApiEmulator,
    services: Services,
    mode: str,
    *,
    customers: int = 50,
    kills: int = 5,
    first_id: int = 7000,
    seed: int = 9,
    settle: float = 60.0,
) -> CrashRun:
    """`customers` agree to the notice, then answer the branch survey while the bot is killed
    with SIGKILL `kills` times, each time started again at once. `services` is on the bot's
    database, with the example organisation loaded; `emulator` should retry webhook deliveries
    across a restart (a few seconds)."""
    run = CrashRun(mode, customers)
    bot = bot_process(emulator, services.settings, mode)
    loop = asyncio.get_running_loop()
    await bot.start()
    users = [add_user(emulator, first_id + n) for n in range(customers)]
    try:
        await asyncio.wait_for(asyncio.gather(*(warm_up(u, "b_JKT01") for u in users)), 30)
        rng = random.Random(seed)
        survey = asyncio.gather(
            *(_answer_to_the_end(u, random.Random(n), run) for n, u in enumerate(users))
        )
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            if all(_finished(u) for u in users):
                raise AssertionError("every customer finished before the kills did")
            await bot.kill()
            restarted = loop.time()
            watch = asyncio.create_task(_first_answer(emulator, restarted, run))
            await bot.start()
            run.startups.append(loop.time() - restarted)
            await asyncio.wait_for(watch, settle)
        await asyncio.wait_for(survey, settle)
    finally:
        await bot.stop()
        run.log = bot.log
    run.finished = sum(1 for u in users if _finished(u) and not live_questions(u))
    run.unexpected = sum([await _stored(services, u.id) != EXPECTED for u in users])
    await _count_rows(services, [u.id for u in users], run)
    attempts = emulator.webhook_log  # the emulator serves this run alone
    run.server_errors = sum(1 for a in attempts if a.status is not None and a.status >= 500)
    run.refused = sum(1 for a in attempts if a.status is None)
    return run


async def _stored(services: Services, telegram_id: int) -> dict[str, object]:
    """The answers of the customer's latest session, as the engine normalised them."""
    async with services.db.transaction() as connection:
        session_id = await connection.scalar(
            sa.select(survey_sessions.c.id)
            .join(customers, customers.c.id == survey_sessions.c.customer_id)
            .where(customers.c.telegram_id == telegram_id)
            .order_by(survey_sessions.c.id.desc())
            .limit(1)
        )
        session = await session_store.get(connection, session_id)
        assert session is not None
        return await answers_so_far(connection, session)


async def _count_rows(services: Services, telegram_ids: list[int], run: CrashRun) -> None:
    theirs = sa.select(survey_sessions.c.id, survey_sessions.c.customer_id).join(
        customers, customers.c.id == survey_sessions.c.customer_id
    )
    theirs = theirs.where(customers.c.telegram_id.in_(telegram_ids)).subquery()
    async with services.db.transaction() as connection:
        statuses = await connection.execute(
            sa.select(survey_sessions.c.status, sa.func.count())
            .where(survey_sessions.c.id.in_(sa.select(theirs.c.id)))
            .group_by(survey_sessions.c.status)
        )
        run.sessions = {status: count for status, count in statuses.all()}
        rows = await connection.execute(
            sa.select(theirs.c.customer_id, answers.c.question_id).join(
                answers, answers.c.session_id == theirs.c.id
            )
        )
        held = Counter(tuple(row) for row in rows.all())
    run.stored = sum(held.values())
    run.duplicates = run.stored - len(held)
