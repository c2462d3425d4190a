"""Faults tried against the real bot: poison updates, a database outage, SIGKILL crashes, a
health-check flood.

    python -m bench.faults [--database sqlite|postgres|all]
                           [--scenario poison|outage|crash|healthz|all] [--customers 20]

Each scenario prints table rows on a fresh database; bench/FAULTS.md records a run.

- poison: each kind of update that used to fail on every delivery is posted the way Telegram
  delivers, again after each non-2xx answer, up to 10 times: deliveries and 5xx per kind.
- outage: customers press while the database fails (PostgreSQL: their table is locked;
  SQLite: the connection takes no writes, as one opened on a read-only file), then it
  recovers: 5xx answers, log lines (outage records vs tracebacks), the time from recovery
  until every customer saw the next question, and presses acknowledged vs answers stored.
  Poison and outage run the bot in this process, beside the emulator and the customers.
- crash: the real `run_bot.py` in a process of its own, killed with SIGKILL five times among
  50 customers and started again each time, webhook and polling (bench/crashes.py, the
  driver tests/e2e/test_crash.py asserts on): customers finished, answers acknowledged vs
  stored, duplicates, 5xx deliveries, re-taps, and the time from each restart until the bot
  runs and until it first answers a customer.
- healthz: 40 customers answer a survey each against `run_bot.py --webhook` in its own
  process, while 64 connections from a third process ask `/healthz` 1,200 times a second in
  all, at the bot or at a bystander process (the same load on the machine, none on the bot),
  or not at all, in turn: press-to-next-question p50/p95, probes answered a second, and the
  CPU of the bot and of the flood.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import random
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
from aiohttp import web as web_server
from telegram import Update
from telegram.ext import Application, TypeHandler

from bench.answers import PG_URL, _free_port, database, postgres_reachable
from bench.client import BenchUser, add_user, warm_up
from bench.crashes import BotProcess, bot_process, crash_emulator, crash_run
from bench.procstat import process_cpu
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
PROBERS = 64  # connections asking /healthz, from a process of their own
PROBE_RATE = 1200.0  # health checks a second, all probers together
HEALTH_CUSTOMERS = 40  # each answers one survey (the bot asks no one twice in a row)
HEALTH_TRIALS = 3  # phases without and with the flood, in turn
CRASH_CUSTOMERS = 50
KILLS = 5
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
async def opened(
    kind: str, folder: Path, pg_url: str, emulator: BotApiEmulator, **settings: Any
) -> AsyncIterator[Services]:
    """The services on a fresh database holding the example organisation."""
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
            yield services
        finally:
            await services.db.dispose()
            set_keyring(None)


@contextlib.asynccontextmanager
async def bot(
    kind: str, folder: Path, pg_url: str, emulator: BotApiEmulator, **settings: Any
) -> AsyncIterator[tuple[Services, Application, Webhook]]:  # type: ignore[type-arg]
    """The bot in this process, behind a webhook, on a fresh database."""
    async with opened(kind, folder, pg_url, emulator, **settings) as services:
        port = _free_port()
        hook = Webhook(f"http://127.0.0.1:{port}", "127.0.0.1", port, SECRET)
        async with running(services, hook) as app:
            yield services, app, hook


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


# -- SIGKILL crashes ---------------------------------------------------------------------------


async def crash(kind: str, folder: Path, pg_url: str, mode: str) -> str:
    emulator = crash_emulator(TOKEN)
    async with emulator, opened(kind, folder, pg_url, emulator) as services:
        run = await crash_run(emulator, services, mode, customers=CRASH_CUSTOMERS, kills=KILLS)
    errors = f"{run.server_errors} / {run.refused}" if mode == "webhook" else "–"
    tracebacks = "".join(run.log).count("Traceback")
    return (
        f"| {kind} | {mode} | {run.finished} / {run.customers} "
        f"| {run.acknowledged} / {run.stored} | {run.duplicates} | {errors} | {run.retaps} "
        f"| {statistics.median(run.startups):.1f} s "
        f"| {statistics.median(run.recoveries):.1f} s ({max(run.recoveries):.1f} s) "
        f"| {tracebacks} |"
    )


# -- a health-check flood ---------------------------------------------------------------------

# Where a phase's flood goes: nowhere, the bot's /healthz, or a bystander process answering the
# same bytes (the same load on the machine, none on the bot: what the flood costs by itself).
TARGETS = ("no flood", "the bot", "a bystander")


def _flood(url: str, clients: int, rate: float, stop: Any, probes: Any) -> None:
    """A process of its own: `clients` connections asking `url` at `rate` a second in all,
    until `stop` is set; the answers counted in `probes`, their span in seconds after it."""
    asyncio.run(_probe(url, clients, rate, stop, probes))


async def _probe(url: str, clients: int, rate: float, stop: Any, probes: Any) -> None:
    loop = asyncio.get_running_loop()
    answered = 0

    async def client(http: aiohttp.ClientSession, offset: float) -> None:
        nonlocal answered
        due = loop.time() + offset
        while not stop.is_set():
            try:
                async with http.get(url) as response:
                    await response.read()
                answered += 1
            except aiohttp.ClientError:  # counted out: the rate shows it
                pass
            due += clients / rate
            await asyncio.sleep(max(0.0, due - loop.time()))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        started = loop.time()
        await asyncio.gather(*(client(http, n / rate) for n in range(clients)))
        probes[0], probes[1] = answered, loop.time() - started


def _bystander(port: int, stop: Any) -> None:
    """A process of its own answering `GET /healthz` with fixed bytes until `stop` is set."""

    async def serve() -> None:
        body = json.dumps({"status": "ok"}).encode()

        async def healthz(_request: web_server.Request) -> web_server.Response:
            return web_server.Response(body=body, content_type="application/json")

        app = web_server.Application()
        app.router.add_get("/healthz", healthz)
        runner = web_server.AppRunner(app, access_log=None)
        await runner.setup()
        await web_server.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.to_thread(stop.wait)
        await runner.cleanup()

    asyncio.run(serve())


@dataclass
class HealthPhase:
    """Customers answering a survey each, while the flood goes to `target`."""

    target: str
    latencies: list[float]
    probes_per_second: float
    seconds: float
    bot_cpu: float  # the bot process's CPU seconds in the phase
    flood_cpu: float  # the probers' and the bystander's


async def healthz(kind: str, folder: Path, pg_url: str) -> tuple[list[str], str]:
    """Phases without the flood, with it at the bot, and with it at a bystander, in turn,
    against one bot process; the table's rows, and what the bot spends on one probe."""
    emulator = crash_emulator(TOKEN)
    phases: list[HealthPhase] = []
    async with emulator, opened(kind, folder, pg_url, emulator) as services:
        process = bot_process(emulator, services.settings, "webhook")
        await process.start()
        try:
            for _trial in range(HEALTH_TRIALS):
                for target in TARGETS:
                    first = 8000 + len(phases) * HEALTH_CUSTOMERS
                    phases.append(await _health_phase(emulator, process, target, first))
        finally:
            await process.stop()
    rows = [_health_row(kind, str(n // len(TARGETS) + 1), p) for n, p in enumerate(phases)]
    for target in TARGETS:
        pooled = [p for p in phases if p.target == target]
        together = HealthPhase(
            target,
            [latency for p in pooled for latency in p.latencies],
            sum(p.probes_per_second * p.seconds for p in pooled) / sum(p.seconds for p in pooled),
            sum(p.seconds for p in pooled),
            sum(p.bot_cpu for p in pooled),
            sum(p.flood_cpu for p in pooled),
        )
        rows.append(_health_row(kind, "all", together))
    at_bot = [p for p in phases if p.target == "the bot"]
    extra = sum(p.bot_cpu for p in at_bot) - sum(
        p.bot_cpu for p in phases if p.target == "a bystander"
    )
    probes = sum(p.probes_per_second * p.seconds for p in at_bot)
    return rows, f"{kind}: the bot spent {extra / probes * 1e6:.0f} µs of CPU per probe answered"


async def _health_phase(
    emulator: BotApiEmulator, bot: BotProcess, target: str, first_id: int
) -> HealthPhase:
    assert bot.process is not None
    context = multiprocessing.get_context("spawn")
    stop, probes = context.Event(), context.Array("d", 2)
    helpers = []
    if target != "no flood":
        url = bot.url
        if target == "a bystander":
            port = _free_port()
            helpers.append(context.Process(target=_bystander, args=(port, stop)))
            url = f"http://127.0.0.1:{port}"
        helpers.append(
            context.Process(
                target=_flood, args=(f"{url}/healthz", PROBERS, PROBE_RATE, stop, probes)
            )
        )
        for helper in helpers:
            helper.start()
            if helper is not helpers[-1]:
                await _listening(port)
        await asyncio.sleep(1.0)  # the flood under way before customers come
    latencies: list[float] = []
    pids = [bot.process.pid, *(helper.pid for helper in helpers if helper.pid is not None)]
    try:
        before, started = [process_cpu(pid) for pid in pids], time.monotonic()
        users = [add_user(emulator, first_id + n) for n in range(HEALTH_CUSTOMERS)]
        await asyncio.gather(*(_answer_all(user, latencies) for user in users))
        spent = [process_cpu(pid) - was for pid, was in zip(pids, before, strict=True)]
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for helper in helpers:
            await asyncio.to_thread(helper.join, 30)
    rate = probes[0] / probes[1] if probes[1] else 0.0
    return HealthPhase(target, latencies, rate, elapsed, spent[0], sum(spent[1:]))


async def _listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing listens on port {port}")


def _health_row(kind: str, trial: str, phase: HealthPhase) -> str:
    cuts = statistics.quantiles(phase.latencies, n=20)
    label = phase.target if phase.target == "no flood" else f"{PROBERS} clients at {phase.target}"
    return (
        f"| {kind} | {trial} | {label} | {phase.probes_per_second:,.0f} "
        f"| {statistics.median(phase.latencies) * 1000:.1f} ms | {cuts[18] * 1000:.1f} ms "
        f"| {phase.seconds:.1f} s | {phase.bot_cpu:.2f} s | {phase.flood_cpu:.2f} s "
        f"| {len(phase.latencies)} |"
    )


async def _answer_all(user: BenchUser, latencies: list[float]) -> None:
    """One survey, reading each question for a moment; each latency runs from the press until
    the customer's chat changed (stamped as the emulator delivered it)."""
    rng = random.Random(user.id)
    question = await warm_up(user, "b_JKT01")
    while question.button_data:  # the outro has none
        await asyncio.sleep(rng.uniform(0.2, 0.8))
        skip = [d for d in question.button_data if d.endswith(":s")]
        data = (skip or [d for d in question.button_data if ":a:" in d])[0]
        shown = (question.message_id, question.body)
        pressed = time.perf_counter()
        await user.press(question, data)
        question = await user.wait_for(lambda m, shown=shown: (m.message_id, m.body) != shown, 30)
        latencies.append(user.stamps[question.message_id] - pressed)


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
    "| database | trial | flood | probes/s answered | press p50 | press p95 "
    "| phase | bot CPU | flood CPU | presses |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
)
CRASH_HEADER = (
    "| database | mode | customers finished | answers acknowledged / stored | duplicates "
    "| 5xx / no bot listening | re-taps | restart to running (median) "
    "| restart to first answer (median, max) | tracebacks |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)
SCENARIOS = ("poison", "outage", "crash", "healthz")


@dataclass(frozen=True)
class Options:
    databases: tuple[str, ...]
    customers: int
    pg_url: str
    scenarios: tuple[str, ...]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args(argv)
    databases = ("sqlite", "postgres") if args.database == "all" else (args.database,)
    if "postgres" in databases and not await postgres_reachable(args.pg_url):
        print(f"PostgreSQL at {args.pg_url} is not reachable; SQLite only.", file=sys.stderr)
        databases = tuple(d for d in databases if d != "postgres")
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    options = Options(databases, args.customers, args.pg_url, scenarios)
    logging.getLogger().setLevel(logging.WARNING)  # counted by Records, printed by nobody
    with tempfile.TemporaryDirectory(prefix="suara-faults-") as name:
        await _run(options, Path(name))
    return 0


async def _run(options: Options, folder: Path) -> None:
    kinds = options.databases
    if "poison" in options.scenarios:
        print(POISON_HEADER)
        for kind in kinds:
            for row in await poison(kind, folder, options.pg_url):
                print(row)
        print()
    if "outage" in options.scenarios:
        print(OUTAGE_HEADER)
        for kind in kinds:
            print(await outage(kind, folder, options.pg_url, options.customers))
        print()
    if "crash" in options.scenarios:
        print(CRASH_HEADER, flush=True)
        for kind in kinds:
            for mode in ("webhook", "polling"):
                print(await crash(kind, folder, options.pg_url, mode), flush=True)
        print()
    if "healthz" in options.scenarios:
        print(HEALTH_HEADER, flush=True)
        costs = []
        for kind in kinds:
            rows, cost = await healthz(kind, folder, options.pg_url)
            print("\n".join(rows), flush=True)
            costs.append(cost)
        print("\n" + "\n".join(costs))


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
