"""The answer path taken apart: each stage timed alone, one at a time, without HTTP.

    python -m bench.stages [--database sqlite|postgres] [--presses 2000]

A profiler inflates small calls and cannot follow SQLAlchemy's greenlets, so the costs in
RESULTS.md's "where the time goes" come from here: the same code the bot runs per button
press (the service transaction, rendering, python-telegram-bot's parsing and request building),
called in a loop, with the event loop thread's CPU and the whole process's CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosqlite
import aiosqlite.core
import sqlalchemy as sa
from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import Defaults, ExtBot
from telegram.request import BaseRequest, RequestData

from bench.answers import CORES, PG_URL, database, postgres_reachable, source_digest
from bot.devtools.emulator import BotApiEmulator
from bot.devtools.example import load_example
from bot.services import i18n
from bot.services.conversation import Action, Completed, Person, Question
from bot.transport import incoming
from bot.wiring.app import open_services
from bot.wiring.config import load_settings
from bot.wiring.services import Services
from handlers import render
from storage.crypto import get_keyring, set_keyring
from storage.models import now

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:STAGES-TOKEN"
STATE = {  # a session's state at its third question, as the engine stores it
    "v": 1,
    "survey_id": "branch_service",
    "current": "resolved",
    "answers": {"csat": 4, "nps": 9},
    "history": ["csat", "nps", "resolved"],
    "draft": [],
    "finished": False,
}
UPDATE_IDS = itertools.count(1)  # every call claims a new update id


@dataclass
class Row:
    stage: str
    calls: int
    wall_us: float
    loop_us: float
    process_us: float
    note: str = ""


class Meter:
    """Sums wall, event-loop-thread and process CPU time over the measured calls only."""

    def __init__(self) -> None:
        self.calls = 0
        self.wall = self.loop = self.process = 0.0

    @contextlib.contextmanager
    def measure(self) -> Any:
        w, t, p = time.perf_counter(), time.thread_time(), time.process_time()
        yield
        self.wall += time.perf_counter() - w
        self.loop += time.thread_time() - t
        self.process += time.process_time() - p
        self.calls += 1

    def row(self, stage: str, note: str = "") -> Row:
        n = max(self.calls, 1)
        return Row(
            stage,
            self.calls,
            self.wall / n * 1e6,
            self.loop / n * 1e6,
            self.process / n * 1e6,
            note,
        )


async def repeat(
    stage: str, calls: int, action: Callable[[], Awaitable[Any]], note: str = ""
) -> Row:
    meter = Meter()
    for _ in range(calls):
        with meter.measure():
            await action()
    return meter.row(stage, note)


def repeat_sync(stage: str, calls: int, action: Callable[[], Any], note: str = "") -> Row:
    meter = Meter()
    for _ in range(calls):
        with meter.measure():
            action()
    return meter.row(stage, note)


@contextlib.contextmanager
def counting_hops() -> Any:
    """Count the calls handed to aiosqlite's thread (each costs a round trip of the loop)."""
    original = aiosqlite.core.Connection._execute
    counter = [0]

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return await original(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        aiosqlite.core.Connection._execute = original  # type: ignore[method-assign]


# -- the service transaction -----------------------------------------------------------------


def _value(question: Question, rng: random.Random) -> tuple[Action, str | None]:
    q = question.ask.question
    if q.optional:
        return "skip", None
    if q.type in ("rating", "nps", "ces"):
        return "answer", str(rng.choice(list(q.value_range or [])))
    if q.type == "yesno":
        return "answer", rng.choice(("yes", "no"))
    return "answer", rng.choice(q.option_ids)


@contextlib.asynccontextmanager
async def services(url: str, folder: Path) -> AsyncIterator[Services]:
    settings = load_settings(
        _env_file=None,
        bot_token=TOKEN,
        database_url=url,
        key_file=folder / "stages.key",
        surveys_dir=ROOT / "surveys",
        privacy_notice_file=ROOT / "locales" / "privacy_notice.yaml",
        resubmit_after_hours=0,
        log_level="WARNING",
    )
    opened = await open_services(settings)
    try:
        async with opened.db.transaction() as connection:
            await load_example(connection)
        yield opened
    finally:
        await opened.db.dispose()
        set_keyring(None)


async def press_stage(svc: Services, presses: int, customers: int) -> tuple[Row, list[Question]]:
    """`Conversations.press` — the whole transaction — for customers answering in turn."""
    conv, rng = svc.conversations, random.Random(3)
    update_ids = UPDATE_IDS
    people = [Person(900_000 + n, "id") for n in range(customers)]
    current: dict[int, Question] = {}
    for person in people:
        await conv.start(next(update_ids), person, "b_JKT01")
        outcome = await conv.consent(next(update_ids), person, True, "id", "b_JKT01")
        assert isinstance(outcome, Question), outcome
        current[person.telegram_id] = outcome
    meter, seen = Meter(), []
    with counting_hops() as hops:
        before = 0
        for n in range(presses):
            person = people[n % customers]
            question = current[person.telegram_id]
            action, value = _value(question, rng)
            hops_before = hops[0]
            with meter.measure():
                outcome = await conv.press(
                    next(update_ids), person, question.session_id, question.version, action, value
                )
            before += hops[0] - hops_before
            if isinstance(outcome, Question):
                current[person.telegram_id] = outcome
                seen.append(outcome)
            else:
                assert isinstance(outcome, Completed), outcome
                restarted = await conv.start(next(update_ids), person, "b_JKT01")
                assert isinstance(restarted, Question), restarted
                current[person.telegram_id] = restarted
    note = f"{before / presses:.1f} aiosqlite thread hops per call" if before else ""
    return meter.row("Conversations.press (the answer's transaction)", note), seen


async def transaction_stage(svc: Services, calls: int) -> list[Row]:
    """What an empty SQLAlchemy transaction costs: the floor the prepared statements avoid."""
    rows = []

    async def empty() -> None:
        async with svc.db.transaction() as connection:
            await connection.execute(sa.text("SELECT 1"))

    with counting_hops() as hops:
        row = await repeat("a transaction with one SELECT 1", calls, empty)
        if hops[0]:
            row.note = f"{hops[0] / calls:.1f} aiosqlite thread hops per call"
    rows.append(row)
    return rows


# -- a press straight through the driver -------------------------------------------------------

SELECT_SESSION = (
    "SELECT s.id, s.customer_id, s.survey_id, s.branch_id, s.status, s.state, s.version, "
    "s.started_at, s.updated_at, s.completed_at, c.locale FROM survey_sessions s "
    "JOIN customers c ON c.id = s.customer_id WHERE s.id = {0} AND c.telegram_id = {1}"
)
SAVE = (
    "UPDATE survey_sessions SET version = {0}, updated_at = {1}, state = {2} "
    "WHERE id = {3} AND version = {4} RETURNING id"
)


async def _a_session(svc: Services) -> tuple[int, int]:
    async with svc.db.transaction() as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT s.id, c.telegram_id FROM survey_sessions s "
                    "JOIN customers c ON c.id = s.customer_id LIMIT 1"
                )
            )
        ).one()
    return row[0], row[1]


async def driver_stages(svc: Services, url: str, calls: int) -> list[Row]:
    """A press's two statements as plain SQL on the driver, each committed: the floor."""
    session_id, telegram_id = await _a_session(svc)
    keyring = get_keyring()
    if url.startswith("sqlite"):
        connection = await aiosqlite.connect(url.split("///", 1)[1], isolation_level=None)
        await connection.execute("PRAGMA synchronous=NORMAL")
        marks = ["?"] * 5

        async def unit() -> None:
            async with connection.execute(
                SELECT_SESSION.format(*marks[:2]), (session_id, telegram_id)
            ) as cursor:
                row = await cursor.fetchone()
            assert row is not None
            state = keyring.encrypt(json.dumps(STATE))
            arguments = (row[6] + 1, now().isoformat(), state, session_id, row[6])
            async with connection.execute(SAVE.format(*marks), arguments) as cursor:
                assert await cursor.fetchone() is not None

        try:
            with counting_hops() as hops:
                row = await repeat("the same press on aiosqlite, plain SQL", calls, unit)
                row.note = f"{hops[0] / calls:.1f} aiosqlite thread hops per call"
        finally:
            await connection.close()
        return [row]

    import asyncpg

    pg = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    marks = [f"${n}" for n in range(1, 6)]

    async def pg_unit() -> None:
        row = await pg.fetchrow(SELECT_SESSION.format(*marks[:2]), session_id, telegram_id)
        assert row is not None
        state = keyring.encrypt(json.dumps(STATE))
        arguments = (row[6] + 1, now(), state, session_id, row[6])
        assert await pg.fetchval(SAVE.format(*marks), *arguments) is not None

    try:
        return [await repeat("the same press on asyncpg, plain SQL", calls, pg_unit)]
    finally:
        await pg.close()


# -- rendering, Telegram objects, crypto -------------------------------------------------------


class CannedRequest(BaseRequest):
    """Answers every call at once from memory: python-telegram-bot's own cost, no HTTP."""

    def __init__(self, answers: dict[str, bytes]) -> None:
        self._answers = answers

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if request_data is not None:
            request_data.json_parameters  # noqa: B018 - the encoding every request pays
        return 200, self._answers[url.rsplit("/", 1)[1]]


async def telegram_stages(svc: Services, seen: list[Question], calls: int) -> list[Row]:
    """Render a question, parse the press, build the edit and parse its answer."""
    rows = []
    outcomes = [seen[i % len(seen)] for i in range(calls)]
    replies = iter(outcomes)
    rows.append(
        repeat_sync(
            "render.question (text + keyboard as Bot API JSON)",
            calls,
            lambda: render.question(next(replies)),
            "handlers/render.py",
        )
    )
    with i18n.use_locale("id"):
        rows.append(
            repeat_sync(
                "i18n.number × 2 (the progress line)",
                calls,
                lambda: (i18n.number(3, 0), i18n.number(6, 0)),
                "formatted once per value and locale",
            )
        )

    async with BotApiEmulator(token=TOKEN, global_rate=None, per_chat_rate=None) as emulator:
        user = emulator.user(901_000, started=True)
        typical = next(o for o in outcomes if o.ask.question.type == "nps")
        reply = render.question(typical)
        assert reply.markup is not None
        sent = await emulator.call(
            "sendMessage",
            chat_id=user.id,
            text=reply.text,
            parse_mode="HTML",
            reply_markup=json.dumps(reply.markup),
        )
        message = user.message(sent["message_id"])
        assert message is not None
        update = await user.press(message, message.button_data[2])
        canned = {
            "getMe": json.dumps({"ok": True, "result": emulator.bot_user}).encode(),
            "editMessageText": json.dumps({"ok": True, "result": message.to_api()}).encode(),
        }
    bot: ExtBot[None] = ExtBot(
        TOKEN,
        request=CannedRequest(canned),
        get_updates_request=CannedRequest(canned),
        defaults=Defaults(tzinfo=svc.settings.zone),
    )
    await bot.initialize()
    raw = json.dumps(update).encode()
    rows.append(
        repeat_sync(
            "json.loads + Update.de_json of the whole press",
            calls,
            lambda: Update.de_json(json.loads(raw), bot),
            "PTB",
        )
    )
    rows.append(
        repeat_sync(
            "json.loads + Update.de_json of the press as the bot sees it",
            calls,
            lambda: Update.de_json(incoming.trim(json.loads(raw)), bot),
            "bot/transport/incoming.py: the pressed message reduced to its id, date and chat",
        )
    )
    parsed = Update.de_json(json.loads(raw), bot)
    query = parsed.callback_query
    assert query is not None

    markup = InlineKeyboardMarkup.de_json(reply.markup, bot)

    async def edit() -> None:
        await query.edit_message_text(reply.text, parse_mode=ParseMode.HTML, reply_markup=markup)

    async def raw_edit() -> None:
        await bot.do_api_request(
            "editMessageText",
            api_kwargs={
                "chat_id": user.id,
                "message_id": message.message_id,
                "text": reply.text,
                "parse_mode": "HTML",
                "reply_markup": reply.markup,
            },
        )

    rows.append(
        await repeat(
            "query.edit_message_text, no HTTP",
            calls,
            edit,
            "PTB objects: the keyboard serialised, the returned Message parsed",
        )
    )
    rows.append(
        await repeat(
            "bot.do_api_request('editMessageText'), no HTTP",
            calls,
            raw_edit,
            "the keyboard as JSON, nothing parsed from the answer",
        )
    )
    await bot.shutdown()

    state = json.dumps(STATE, separators=(",", ":"))
    keyring = get_keyring()
    rows.append(
        repeat_sync(
            "Fernet encrypt + decrypt of the session state",
            calls,
            lambda: keyring.decrypt(keyring.encrypt(state)),
            "survey_sessions.state is EncryptedText: both on every press",
        )
    )
    return rows


# -- command line ----------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    out = [
        "| stage | calls | wall µs | event loop CPU µs | process CPU µs | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    out += [
        f"| {r.stage} | {r.calls} | {r.wall_us:,.0f} | {r.loop_us:,.0f} | "
        f"{r.process_us:,.0f} | {r.note} |"
        for r in rows
    ]
    return "\n".join(out)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stage costs of Suara's answer path")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--presses", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument(
        "--pin", action="store_true", help="run on one core (aiosqlite's thread included)"
    )
    args = parser.parse_args(argv)
    if args.pin:
        os.sched_setaffinity(0, {CORES - 1})
    if args.database == "postgres" and not await postgres_reachable(args.pg_url):
        print(f"PostgreSQL at {args.pg_url} is not reachable", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="suara-stages-") as tmp:
        async with (
            database(args.database, Path(tmp), args.pg_url) as url,
            services(url, Path(tmp)) as svc,
        ):
            await press_stage(svc, 200, args.customers)  # warm the caches
            press, seen = await press_stage(svc, args.presses, args.customers)
            rows = [press, *await transaction_stage(svc, args.presses)]
            rows += await driver_stages(svc, url, args.presses)
            rows += await telegram_stages(svc, seen, args.presses)
    print(
        f"{args.database}, {args.presses} calls per stage, one at a time"
        + (", pinned to one core" if args.pin else "")
        + f"; code under test {source_digest()}, "
        + time.strftime("%Y-%m-%d %H:%M UTC\n", time.gmtime())
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
