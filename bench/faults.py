"""Faults tried against the real bot: poison updates, a database outage, a health-check flood.

    python -m bench.faults [--database sqlite|postgres|all] [--customers 20]

The emulator, the bot (python-telegram-bot over HTTP, webhook mode) and the simulated
customers share one process, as in the end-to-end tests. Each scenario prints one table row;
bench/FAULTS.md records a run.

- poison: each kind of update that used to fail on every delivery is posted the way Telegram
  delivers, again after each non-2xx answer, up to 10 times: deliveries and 5xx per kind.
- outage: customers press while the database fails (PostgreSQL: their table is locked;
  SQLite: the connection takes no writes, as one opened on a read-only file), then it
  recovers: 5xx answers, log lines (outage records vs tracebacks), the time from recovery
  until every customer saw the next question, and presses acknowledged vs answers stored.
- healthz: customers answer a whole survey while 64 clients ask `/healthz` as fast as they
  can; press-to-next-question latency with the verdict cached for a second (as shipped),
  checked on every probe, and without the flood.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import sqlalchemy as sa
from telegram import Update
from telegram.ext import Application, TypeHandler

from bench.answers import PG_URL, _free_port, database, postgres_reachable
from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.devtools.example import load_example
from bot.services.conversation import answers_so_far
from bot.transport import web
from bot.wiring.app import open_services
from bot.wiring.config import load_settings
from bot.wiring.runner import Webhook, running
from bot.wiring.services import Services
from storage import sessions as session_store
from storage.crypto import set_keyring
from storage.models import customers, survey_sessions

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:FAULTS-TOKEN"
SECRET = "faults-secret"
PROBE_RATE = 10  # health checks a second per prober; 64 probers
TELEGRAM_TRIES = 10  # deliveries of one update at most, in this bench
SENDER = {"id": 9001, "is_bot": False, "first_name": "Tia"}
CHAT = {"id": 9001, "type": "private", "first_name": "Tia"}


def _message(**fields: Any) -> dict[str, Any]:
    return {"message_id": 1, "date": 1_700_000_000, "chat": CHAT, "text": "hi", **fields}


POISON: dict[str, bytes] = {
    "lone surrogate in text": json.dumps(
        {"message": _message(**{"from": SENDER}, text="\ud800")}
    ).encode(),
    "edited_message": json.dumps({"edited_message": _message(**{"from": SENDER})}).encode(),
    "message without from": json.dumps({"message": _message()}).encode(),
    '"message": "x"': b'{"message": "x"}',
    "JSON nested 50,000 deep": b'{"message": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "update_id 2^63": json.dumps(
        {"update_id": 2**63, "message": _message(**{"from": SENDER})}
    ).encode(),
    "a handler bug for one update": json.dumps(
        {"message": _message(**{"from": SENDER}, text="boom")}
    ).encode(),
}


class Records(logging.Handler):
    """Every log record at WARNING and above, to count outage lines and tracebacks."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def count(self, text: str) -> int:
        return sum(text in record.getMessage() for record in self.records)

    @property
    def tracebacks(self) -> int:
        return sum(record.exc_info is not None for record in self.records)


@contextlib.asynccontextmanager
async def bot(
    kind: str, folder: Path, pg_url: str, emulator: BotApiEmulator, **settings: Any
) -> AsyncIterator[tuple[Services, Application, Webhook]]:  # type: ignore[type-arg]
    fresh = Path(tempfile.mkdtemp(dir=folder))  # a new SQLite file and key for each bot
    async with database(kind, fresh, pg_url) as url:
        services = await open_services(
            load_settings(
                _env_file=None,
                bot_token=TOKEN,
                telegram_api_url=emulator.api_root,
                database_url=url,
                key_file=fresh / "bench.key",
                surveys_dir=ROOT / "surveys",
                privacy_notice_file=ROOT / "locales" / "privacy_notice.yaml",
                log_level="WARNING",
                **settings,
            )
        )
        try:
            async with services.db.transaction() as connection:
                await load_example(connection)
            port = _free_port()
            hook = Webhook(f"http://127.0.0.1:{port}", "127.0.0.1", port, SECRET)
            async with running(services, hook) as app:
                yield services, app, hook
        finally:
            await services.db.dispose()
            set_keyring(None)


async def consent(user: SimUser, payload: str) -> SimMessage:
    await user.start(payload)
    notice = await user.wait_for(lambda m: any(d.startswith("k:y") for d in m.button_data), 10)
    await user.press(notice, next(d for d in notice.button_data if d.startswith("k:y")))
    return await user.wait_for(lambda m: m.message_id != notice.message_id, 10)


# -- poison updates ---------------------------------------------------------------------------


async def poison(kind: str, folder: Path, pg_url: str) -> list[str]:
    rows = []
    log = Records()
    logging.getLogger().addHandler(log)
    try:
        async with (
            BotApiEmulator(token=TOKEN) as emulator,
            bot(kind, folder, pg_url, emulator) as (_, app, hook),
            aiohttp.ClientSession() as http,
        ):

            async def bug(update: Update, _context: object) -> None:
                if update.message is not None and update.message.text == "boom":
                    raise RuntimeError("a bug that this one update triggers")

            app.add_handler(TypeHandler(Update, bug), group=-1)
            emulator.user(SENDER["id"], first_name=SENDER["first_name"])  # a chat that exists
            url = hook.public_url + web.WEBHOOK_PATH
            for number, (name, body) in enumerate(POISON.items(), start=100):
                if body.startswith(b'{"message"') or body.startswith(b'{"edited'):
                    body = b'{"update_id": %d, ' % number + body[1:]
                before = len(log.records)
                statuses = []
                for _ in range(TELEGRAM_TRIES):  # Telegram delivers until it gets a 2xx
                    async with http.post(
                        url, data=body, headers={web.SECRET_HEADER: SECRET}
                    ) as response:
                        statuses.append(response.status)
                    if response.status < 300 or response.status == 400:
                        break
                fresh = log.records[before:]
                failed = sum(status >= 500 for status in statuses)
                tracebacks = sum(record.exc_info is not None for record in fresh)
                rows.append(
                    f"| {kind} | {name} | {len(statuses)} | {failed} | {statuses[-1]} "
                    f"| {len(fresh)} | {tracebacks} |"
                )
    finally:
        logging.getLogger().removeHandler(log)
    return rows


# -- a database outage ------------------------------------------------------------------------


async def _break(services: Services, kind: str) -> Callable[[], Awaitable[None]]:
    """Make the database fail the customers' writes; returns how to end the fault."""
    if kind == "postgres":
        holder = await services.db.engine.connect()
        await holder.begin()
        await holder.execute(sa.text("LOCK TABLE survey_sessions IN ACCESS EXCLUSIVE MODE"))

        async def release() -> None:
            await holder.rollback()
            await holder.close()

        return release
    async with services.db.engine.connect() as connection:  # SQLite's one connection
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute("PRAGMA query_only = ON")  # type: ignore[union-attr]

    async def nothing() -> None:
        return None  # a fresh connection takes writes again

    return nothing


async def outage(kind: str, folder: Path, pg_url: str, customers_count: int) -> str:
    log = Records()
    logging.getLogger().addHandler(log)
    try:
        emulator = BotApiEmulator(token=TOKEN, per_chat_burst=20, webhook_retry_delays=(0.5,) * 40)
        async with (
            emulator,
            bot(kind, folder, pg_url, emulator, db_lock_timeout=0.5) as (
                services,
                _,
                _,
            ),
        ):
            users = [emulator.user(8000 + n, language_code="id") for n in range(customers_count)]
            questions = await asyncio.gather(*(consent(user, "b_JKT01") for user in users))
            end_fault = await _break(services, kind)
            presses = await asyncio.gather(
                *(user.press(q, q.button_data[3]) for user, q in zip(users, questions, strict=True))
            )
            await asyncio.sleep(3.0)  # the outage lasts three seconds
            await end_fault()
            recovered = time.monotonic()
            await asyncio.gather(
                *(user.wait_for(lambda m: "Pertanyaan 2 dari" in m.body, 60) for user in users)
            )
            recovery = time.monotonic() - recovered
            ids = {press["update_id"] for press in presses}
            failures = sum(a.status == 500 for a in emulator.webhook_log if a.update_id in ids)
            stored = await _stored_first_answers(services, [u.id for u in users])
    finally:
        logging.getLogger().removeHandler(log)
    return (
        f"| {kind} | {customers_count} | {failures} | {log.count('database is unavailable')} "
        f"| {log.tracebacks} | {recovery:.2f} s | {customers_count} / {stored} |"
    )


async def _stored_first_answers(services: Services, telegram_ids: list[int]) -> int:
    """How many of these customers have their first answer stored, each exactly once."""
    held = 0
    async with services.db.transaction() as connection:
        rows = await connection.execute(
            sa.select(survey_sessions.c.id)
            .join(customers, customers.c.id == survey_sessions.c.customer_id)
            .where(customers.c.telegram_id.in_(telegram_ids))
        )
        for (session_id,) in rows.all():
            session = await session_store.get(connection, session_id)
            assert session is not None
            answers = await answers_so_far(connection, session)
            held += list(answers).count("csat")
    return held


# -- a health-check flood ---------------------------------------------------------------------


async def healthz(
    kind: str, folder: Path, pg_url: str, customers_count: int, ttl: float | None
) -> str:
    previous = web.HEALTH_TTL
    web.HEALTH_TTL = ttl if ttl is not None else previous
    probes = 0
    try:
        async with (
            BotApiEmulator(token=TOKEN, per_chat_burst=20) as emulator,
            bot(kind, folder, pg_url, emulator) as (_, _, hook),
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
        ):
            stop = asyncio.Event()

            async def prober() -> None:  # each asks PROBE_RATE times a second
                nonlocal probes
                while not stop.is_set():
                    asked = time.monotonic()
                    async with http.get(f"{hook.public_url}/healthz") as response:
                        await response.read()
                    probes += 1
                    await asyncio.sleep(max(0.0, 1 / PROBE_RATE - (time.monotonic() - asked)))

            flood = [asyncio.create_task(prober()) for _ in range(64 if ttl is not None else 0)]
            started = time.monotonic()
            latencies: list[float] = []
            users = [emulator.user(8500 + n, language_code="en") for n in range(customers_count)]
            await asyncio.gather(*(_answer_all(user, latencies) for user in users))
            elapsed = time.monotonic() - started
            stop.set()
            await asyncio.gather(*flood, return_exceptions=True)
    finally:
        web.HEALTH_TTL = previous
    cuts = statistics.quantiles(latencies, n=20)
    label = "no flood" if ttl is None else "checked on every probe" if ttl == 0 else "cached 1 s"
    median = statistics.median(latencies) * 1000
    return (
        f"| {kind} | {label} | {probes / elapsed:,.0f} | {median:.0f} ms "
        f"| {cuts[18] * 1000:.0f} ms | {len(latencies)} |"
    )


async def _answer_all(user: SimUser, latencies: list[float]) -> None:
    question = await consent(user, "b_JKT01")
    while question.button_data:  # the outro has none
        skip = [d for d in question.button_data if d.endswith(":s")]
        data = (skip or [d for d in question.button_data if ":a:" in d])[0]
        pressed = time.monotonic()
        await user.press(question, data)
        shown = (question.message_id, question.body)
        question = await user.wait_for(lambda m, shown=shown: (m.message_id, m.body) != shown, 30)
        latencies.append(time.monotonic() - pressed)


# -- the command line -------------------------------------------------------------------------

POISON_HEADER = (
    "| database | poison update | deliveries | 5xx | last answer | log lines | tracebacks |\n"
    "|---|---|---:|---:|---:|---:|---:|"
)
OUTAGE_HEADER = (
    "| database | customers | 5xx | outage log lines | tracebacks | recovery "
    "| presses / answers stored |\n|---|---:|---:|---:|---:|---:|---|"
)
HEALTH_HEADER = (
    "| database | health checks | probes/s | press p50 | press p95 | presses |\n"
    "|---|---|---:|---:|---:|---:|"
)


@dataclass(frozen=True)
class Options:
    databases: tuple[str, ...]
    customers: int
    pg_url: str


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args(argv)
    databases = ("sqlite", "postgres") if args.database == "all" else (args.database,)
    if "postgres" in databases and not await postgres_reachable(args.pg_url):
        print(f"PostgreSQL at {args.pg_url} is not reachable; SQLite only.", file=sys.stderr)
        databases = tuple(d for d in databases if d != "postgres")
    options = Options(databases, args.customers, args.pg_url)
    logging.getLogger().setLevel(logging.WARNING)  # counted by Records, printed by nobody
    with tempfile.TemporaryDirectory(prefix="suara-faults-") as name:
        folder = Path(name)
        print(POISON_HEADER)
        for kind in options.databases:
            for row in await poison(kind, folder, options.pg_url):
                print(row)
        print()
        print(OUTAGE_HEADER)
        for kind in options.databases:
            print(await outage(kind, folder, options.pg_url, options.customers))
        print()
        print(HEALTH_HEADER)
        for kind in options.databases:
            for ttl in (None, 1.0, 0.0):
                print(await healthz(kind, folder, options.pg_url, options.customers, ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
