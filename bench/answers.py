"""Answers per second, press-to-next-question latency and bot CPU per answer, against baselines.

    python -m bench.answers                      # every configuration, a few minutes
    python -m bench.answers --quick              # a sanity run, well under 20 s
    python -m bench.answers --mode webhook --database sqlite --customers 200 --seconds 10
    python -m bench.answers --profile /tmp/suara.pstats   # + a cProfile'd webhook run

The emulator and the simulated customers run here; each bot runs in a child process
(bench/botproc.py), so its CPU time is measured apart from the load's. Suara runs on a fresh
SQLite file and, when reachable, a fresh PostgreSQL database that is dropped afterwards. After
each Suara run the answers table is counted and compared with the presses acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import pstats
import random
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import sqlalchemy as sa

from bench import procstat
from bench.client import (
    Tally,
    Window,
    add_user,
    answer,
    percentile,
    warm_up,
)
from bot.devtools.emulator import BotApiEmulator
from bot.devtools.example import BRANCHES
from flows import load_survey_file, localized
from flows.engine import State
from storage.crypto import Keyring, load_key_file, using_keyring
from storage.db import Database
from storage.models import answers, survey_sessions
from storage.sessions import OPEN

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH-TOKEN"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
CORES = os.cpu_count() or 1
OUTRO = localized(load_survey_file(ROOT / "surveys" / "branch_service.yaml").outro, "id", "id")


@dataclass(frozen=True)
class Config:
    kind: str  # suara | echo | naive
    mode: str  # webhook | polling
    database: str | None = None  # sqlite | postgres, Suara only
    workers: int = 1  # Suara's webhook processes (WORKERS), PostgreSQL only

    @property
    def label(self) -> str:
        name = {"suara": "Suara", "echo": "echo bot", "naive": "naive PTB bot"}[self.kind]
        workers = f", {self.workers} workers" if self.workers > 1 else ""
        return f"{name}, {self.mode}" + (f", {self.database}" if self.database else "") + workers


@dataclass
class Result:
    config: Config
    customers: int
    seconds: float
    answers: int
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    bot_cpu_ms: float  # bot process CPU per answer, all threads
    bot_loop_cpu_ms: float  # the event loop thread alone
    bot_cpu_share: float  # bot CPU seconds per wall second (1.0 = one core)
    client_cpu_ms: float  # emulator + simulated customers per answer
    postgres_cpu_ms: float
    machine_busy: float  # share of all cores busy during the window
    other_cores: float  # cores used by other processes (a test run elsewhere skews the figures)
    calls_per_answer: dict[str, float]
    acknowledged: int
    unacknowledged: int
    db_rows: int | None
    restarts: int
    start_p50_ms: float
    failures: list[str] = field(default_factory=list)

    @property
    def durable(self) -> str:
        if self.db_rows is None:
            return "n/a (no database)"
        verdict = "ok" if self.db_rows == self.acknowledged else "MISMATCH"
        return f"{verdict}: {self.db_rows} rows, {self.acknowledged} acknowledged"


CODE = ("bot", "handlers", "storage", "flows", "surveys", "locales", "bench")


def source_digest(root: Path = ROOT) -> str:
    """A short fingerprint of the code under test, so a result names what it measured."""
    digest = hashlib.sha256()
    for folder in CODE[:-1]:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def snapshot() -> Iterator[Path]:
    """A copy of the code that every bot of one run starts from, whatever happens to the tree."""
    with tempfile.TemporaryDirectory(prefix="suara-code-") as tmp:
        for folder in CODE:
            shutil.copytree(
                ROOT / folder, Path(tmp) / folder, ignore=shutil.ignore_patterns("__pycache__")
            )
        yield Path(tmp)


# -- the bot process ---------------------------------------------------------------------------


class BotProcess:
    """The child running one bot; spoken to over its standard input and output."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    @classmethod
    async def spawn(cls, config: Config, args: list[str], log: Path, code: Path) -> BotProcess:
        env = {**os.environ, "PYTHONPATH": str(code)}
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.botproc",
                "--kind",
                config.kind,
                "--mode",
                config.mode,
                *args,
                cwd=code,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        return cls(process, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def expect(self, event: str, timeout: float = 60.0) -> dict[str, object]:  # noqa: ASYNC109
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while line := await self.process.stdout.readline():
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if message.get("event") == event:
                        return message
        raise RuntimeError(f"the bot process ended before {event!r}:\n{self.tail()}")

    async def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.tell("stop")
            try:
                async with asyncio.timeout(30):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- databases -------------------------------------------------------------------------------


async def postgres_reachable(url: str) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


@contextlib.asynccontextmanager
async def database(kind: str | None, folder: Path, pg_url: str) -> AsyncIterator[str]:
    """A fresh database URL for one run (SQLite file, or a PostgreSQL database dropped after)."""
    if kind is None:
        yield ""
    elif kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder}/bench.db"
    else:
        name = f"suara_bench_{os.getpid()}_{secrets.token_hex(3)}"
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            base = pg_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            yield f"{base}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def count_answers(url: str, key_file: Path) -> int:
    """Answers held durably, read after the bot has stopped: the answers table holds those of
    completed sessions, and each open session's encrypted state holds its own so far."""
    database = Database(url)
    try:
        with using_keyring(Keyring(load_key_file(key_file))):
            async with database.transaction() as connection:
                rows = await connection.scalar(sa.select(sa.func.count()).select_from(answers))
                states = await connection.scalars(
                    sa.select(survey_sessions.c.state).where(survey_sessions.c.status == OPEN)
                )
                held = sum(len(State.from_dict(json.loads(state)).answers) for state in states)
    finally:
        await database.dispose()
    return int(rows or 0) + held


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Options:
    customers: int
    seconds: float
    questions: int
    concurrent_updates: int
    seed: int
    pg_url: str
    pin: bool = False
    code: Path = ROOT  # where the bots' code is taken from
    group_commit: bool = True


async def run(config: Config, options: Options, profile: Path | None = None) -> Result:
    """Start the bot, warm every customer up, time the window, stop, check the database."""
    with tempfile.TemporaryDirectory(prefix="suara-bench-") as tmp:
        folder = Path(tmp)
        async with (
            database(config.database, folder, options.pg_url) as url,
            BotApiEmulator(
                token=TOKEN, global_rate=None, per_chat_rate=None, paid_broadcast_rate=None
            ) as emulator,
        ):
            bot = await BotProcess.spawn(
                config,
                [
                    "--api-root",
                    emulator.api_root,
                    "--token",
                    TOKEN,
                    "--database",
                    url,
                    "--folder",
                    str(folder),
                    "--port",
                    str(_free_port()),
                    "--concurrent-updates",
                    str(options.concurrent_updates),
                    "--workers",
                    str(config.workers),
                    *([] if options.group_commit else ["--no-group-commit"]),
                ],
                folder / "bot.log",
                options.code,
            )
            try:
                if options.pin:  # the bot on the last core, the load on the first
                    os.sched_setaffinity(bot.pid, {CORES - 1})
                await bot.expect("ready")
                result = await _measure(config, options, emulator, bot, profile)
            except BaseException:
                print(f"-- {config.label}: the bot's log ends with:\n{bot.tail()}", file=sys.stderr)
                raise
            finally:
                await bot.stop()
            if url:
                result.db_rows = await count_answers(url, folder / "bench.key")
            return result


async def _measure(
    config: Config,
    options: Options,
    emulator: BotApiEmulator,
    bot: BotProcess,
    profile: Path | None,
) -> Result:
    rng = random.Random(options.seed)
    codes = [branch.code for branch in BRANCHES]
    users = [add_user(emulator, 800_000 + n) for n in range(options.customers)]
    payloads = [f"b_{codes[n % len(codes)]}" for n in range(options.customers)]
    firsts = await asyncio.gather(*(warm_up(u, p) for u, p in zip(users, payloads, strict=True)))

    window, tally = Window(), Tally()
    tasks = [
        asyncio.create_task(
            answer(
                user,
                first,
                payload,
                OUTRO,
                window,
                tally,
                random.Random(rng.random()),
                options.questions,
            )
        )
        for user, first, payload in zip(users, firsts, payloads, strict=True)
    ]
    await asyncio.sleep(0.2)  # every customer is waiting on the window
    if profile is not None:
        await bot.tell("profile-start")
    calls_before = Counter(emulator.calls)
    machine_before = procstat.MachineTimes.now()
    threads_before = procstat.thread_cpu(bot.pid)
    bot_before = procstat.process_cpu(bot.pid)
    pg_before = procstat.postgres_cpu() if config.database == "postgres" else 0.0
    client_before = time.process_time()
    window.open(options.seconds)

    await asyncio.wait(tasks, timeout=options.seconds)
    elapsed = time.perf_counter() - window.start
    bot_cpu = procstat.process_cpu(bot.pid) - bot_before
    threads_after = procstat.thread_cpu(bot.pid)
    client_cpu = time.process_time() - client_before
    pg_cpu = (procstat.postgres_cpu() - pg_before) if config.database == "postgres" else 0.0
    busy = procstat.MachineTimes.now().utilisation_since(machine_before)
    calls = Counter(emulator.calls)
    calls.subtract(calls_before)
    if profile is not None:
        await bot.tell(f"profile-stop {profile}")
        await bot.expect("profiled")
    await asyncio.gather(*tasks)  # the presses in flight at the close are acknowledged too

    if options.questions and all(t.done() for t in tasks) and tally.last_landed:
        elapsed = min(elapsed, tally.last_landed - window.start)
    answers = tally.in_window
    per = 1000.0 / answers if answers else math.nan
    loop_cpu = threads_after.get("main", 0.0) - threads_before.get("main", 0.0)
    return Result(
        config=config,
        customers=options.customers,
        seconds=elapsed,
        answers=answers,
        rate=answers / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(tally.latencies, 0.50) * 1000,
        p95_ms=percentile(tally.latencies, 0.95) * 1000,
        p99_ms=percentile(tally.latencies, 0.99) * 1000,
        bot_cpu_ms=bot_cpu * per,
        bot_loop_cpu_ms=loop_cpu * per,
        bot_cpu_share=bot_cpu / elapsed if elapsed > 0 else 0.0,
        client_cpu_ms=client_cpu * per,
        postgres_cpu_ms=pg_cpu * per,
        machine_busy=busy,
        other_cores=max(0.0, busy * CORES - (bot_cpu + client_cpu + pg_cpu) / elapsed)
        if elapsed > 0
        else 0.0,
        calls_per_answer={k: v / answers for k, v in sorted(calls.items()) if v > 0 and answers},
        acknowledged=tally.acknowledged,
        unacknowledged=tally.unacknowledged,
        db_rows=None,
        restarts=tally.restarts,
        start_p50_ms=percentile(tally.start_latencies, 0.5) * 1000,
        failures=tally.failures[:5],
    )


# -- reporting -------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = (
        "| configuration | answers/s | p50 ms | p95 ms | p99 ms | bot CPU ms/answer "
        "(event loop) | bot CPU, cores | client CPU ms/answer | machine busy (others, cores) "
        "| answers rows |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    rows = []
    for r in results:
        pg = f" + PostgreSQL {r.postgres_cpu_ms:.2f}" if r.config.database == "postgres" else ""
        rows.append(
            f"| {r.config.label} | {r.rate:,.0f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} | "
            f"{r.p99_ms:.0f} | {r.bot_cpu_ms:.2f} ({r.bot_loop_cpu_ms:.2f}){pg} | "
            f"{r.bot_cpu_share:.2f} | {r.client_cpu_ms:.2f} | {r.machine_busy:.0%} "
            f"({r.other_cores:.2f}) | {r.durable} |"
        )
    return head + "\n".join(rows)


def ratios(results: list[Result]) -> str:
    """Suara against the baselines measured in the same run."""
    found = {(r.config.kind, r.config.mode): r for r in results if r.config.kind != "suara"}
    naive = found.get(("naive", "polling"))
    lines = []
    for r in results:
        if r.config.kind != "suara":
            continue
        parts = [f"- {r.config.label}:"]
        echo = found.get(("echo", r.config.mode))
        if echo and echo.rate:
            share = r.rate / echo.rate
            verdict = "met" if share >= 0.5 else "NOT met"
            parts.append(f"{share:.2f}× the echo bot ({verdict}: target ≥ 0.5×);")
        if naive and naive.rate:
            times = r.rate / naive.rate
            verdict = "met" if times >= 4 else "NOT met"
            parts.append(f"{times:.1f}× the naive bot ({verdict}: target ≥ 4×);")
        goal = "reached" if r.rate >= 1000 else "not reached"
        parts.append(f"1,000 answers/s goal {goal} ({r.rate:,.0f}/s).")
        lines.append(" ".join(parts))
    return "\n".join(lines)


AREAS = (  # where a function's file lies -> the layer it belongs to
    ("/bot/", "Suara bot/"),
    ("/handlers/", "Suara handlers/"),
    ("/storage/", "Suara storage/"),
    ("/flows/", "Suara flows/"),
    ("telegram/", "python-telegram-bot"),
    ("sqlalchemy", "SQLAlchemy (+ greenlet)"),
    ("greenlet", "SQLAlchemy (+ greenlet)"),
    ("aiosqlite", "aiosqlite (event loop side)"),
    ("asyncpg", "asyncpg"),
    ("aiohttp", "aiohttp, yarl, multidict"),
    ("yarl", "aiohttp, yarl, multidict"),
    ("multidict", "aiohttp, yarl, multidict"),
    ("asyncio/", "asyncio event loop"),
    ("selectors", "asyncio event loop"),
    ("urllib/", "urllib (form encoding)"),
    ("babel/", "Babel"),
    ("cryptography", "cryptography (Fernet)"),
    ("json/", "json"),
)


def _area(file: str) -> str:
    return next((label for key, label in AREAS if key in file), "other")


def profile_report(path: Path, answers: int, code: Path = ROOT, limit: int = 25) -> str:
    """Own CPU time of the profiled window per answer: by layer, then the costliest functions.

    Built-ins are charged to their callers' layers. Cumulative times are left out: cProfile
    cannot follow SQLAlchemy's greenlet switches, so they double count.
    """
    entries = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    per = 1000.0 / answers if answers else math.nan
    layers: Counter[str] = Counter()
    for (file, _line, _name), (_cc, _nc, tottime, _ct, callers) in entries.items():
        if file != "~" or not callers:
            layers[_area(file)] += tottime
            continue
        shares = sum(c[2] for c in callers.values()) or 1.0
        for (caller_file, _l, _n), c in callers.items():
            layers[_area(caller_file)] += tottime * c[2] / shares
    total = sum(layers.values())
    out = [
        f"cProfile (CPU time of the event loop thread), {answers} answers, "
        f"{total * per:.2f} ms per answer under the profiler (it inflates every figure)",
        "",
        "| layer | own ms/answer | share |",
        "|---|---:|---:|",
    ]
    out += [f"| {name} | {t * per:.3f} | {t / total:.0%} |" for name, t in layers.most_common()]
    out += ["", "| own ms/answer | function |", "|---:|---|"]
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:limit]
    for (file, line, name), (_cc, _nc, tottime, _ct, _callers) in ranked:
        short = file.split("site-packages/")[-1].replace(str(code) + "/", "")
        short = short.split("/lib/python3.11/")[-1]
        out.append(f"| {tottime * per:.3f} | `{short}:{line} {name}` |")
    return "\n".join(out)


def _median_run(runs: list[Result]) -> Result:
    ordered = sorted(runs, key=lambda r: r.rate)
    return ordered[len(ordered) // 2]


# -- command line ----------------------------------------------------------------------------


def configurations(
    mode: str, databases: list[str], baselines: bool, workers: int = 1
) -> list[Config]:
    """Each Suara configuration right after its own mode's echo bot; the naive bot last.
    With `workers` above 1, webhook on PostgreSQL runs once more with that many processes."""
    modes = ["webhook", "polling"] if mode == "all" else [mode]
    found: list[Config] = []
    for each in modes:
        if baselines:
            found.append(Config("echo", each))
        found += [Config("suara", each, db) for db in databases]
        if each == "webhook" and "postgres" in databases and workers > 1:
            found.append(Config("suara", each, "postgres", workers))
    if baselines:
        found.append(Config("naive", "polling"))
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Suara's answer-path benchmark", formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=200, help="simulated customers (200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed window per run (10)")
    parser.add_argument(
        "--questions", type=int, default=0, help="answers per customer in the window (0: no cap)"
    )
    parser.add_argument("--mode", choices=("webhook", "polling", "all"), default="all")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres", "all"),
        default="all",
        help="all: SQLite, and PostgreSQL when reachable",
    )
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    parser.add_argument("--concurrent-updates", type=int, default=16, help="the bot setting (16)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also run Suara's webhook on PostgreSQL with this many processes (2; 1 = not)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the bot (all its threads) to the last core, emulator and customers to the first",
    )
    parser.add_argument(
        "--no-group-commit",
        dest="group_commit",
        action="store_false",
        help="Suara with a transaction per update instead of its group commit (an A/B)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration; median")
    parser.add_argument("--pg-url", default=PG_URL, help="an existing database to connect to")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile", type=Path, help="also profile Suara (webhook) and save pstats here"
    )
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--quick", action="store_true", help="a sanity run in well under 20 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.customers, args.seconds, args.database, args.mode = 40, 1.5, "sqlite", "webhook"
    return args


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    databases = ["sqlite", "postgres"] if args.database == "all" else [args.database]
    if "postgres" in databases and not await postgres_reachable(args.pg_url):
        if args.database == "postgres":
            print(f"PostgreSQL at {args.pg_url} is not reachable", file=sys.stderr)
            return 2
        print("PostgreSQL is not reachable: SQLite only", file=sys.stderr)
        databases.remove("postgres")
    if args.pin:
        os.sched_setaffinity(0, {0})
    with snapshot() as code:
        options = Options(
            args.customers,
            args.seconds,
            args.questions,
            args.concurrent_updates,
            args.seed,
            args.pg_url,
            args.pin,
            code,
            args.group_commit,
        )
        return await _run_all(
            args, options, configurations(args.mode, databases, args.baselines, args.workers)
        )


async def _run_all(args: argparse.Namespace, options: Options, configs: list[Config]) -> int:
    """Every configuration `--repeat` times, then the table, the ratios and the profile."""
    started = time.monotonic()
    digest = source_digest(options.code)
    runs: dict[Config, list[Result]] = {c: [] for c in configs}
    for _ in range(args.repeat):
        for config in configs:
            result = await run(config, options)
            runs[config].append(result)
            print(
                f"{config.label}: {result.rate:,.0f} answers/s, p95 {result.p95_ms:.0f} ms, "
                f"bot {result.bot_cpu_ms:.2f} ms CPU/answer, {result.durable}",
                file=sys.stderr,
            )
    results = [_median_run(runs[c]) for c in configs]
    print(
        f"\n{args.customers} customers, {args.seconds:g} s window, "
        f"concurrent_updates={args.concurrent_updates}, median of {args.repeat}"
        + (", bot pinned to one core" if args.pin else "")
        + ("" if args.group_commit else ", Suara's group commit off")
        + f"; code under test {digest}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )
    print(table(results))
    print()
    print(ratios(results))
    problems = [r for r in results if r.failures or r.unacknowledged or r.durable.startswith("MIS")]
    for r in problems:
        print(f"\n{r.config.label}: {r.unacknowledged} unacknowledged; {r.failures}")

    if args.profile:
        suara = [c for c in configs if c.kind == "suara"]
        config = Config("suara", "webhook", suara[0].database if suara else "sqlite")
        profiled = await run(config, options, profile=args.profile)
        print(f"\nProfiled run ({config.label}): {profiled.rate:,.0f} answers/s under cProfile\n")
        print(profile_report(args.profile, profiled.answers, options.code))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "options": vars(args) | {"profile": str(args.profile), "json": str(args.json)},
                    "source_digest": digest,
                    "runs": [asdict(r) for c in configs for r in runs[c]],
                    "spread": {c.label: [round(r.rate) for r in runs[c]] for c in configs},
                },
                indent=2,
                default=str,
            )
        )
    print(f"\nfinished in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
