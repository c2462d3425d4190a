"""One bot under test, in a process of its own so its CPU time is its own.

`python -m bench.botproc --kind suara|echo|naive --mode webhook|polling ...` starts the bot
against the emulator at --api-root, prints one JSON line `{"event": "ready"}` and then obeys
lines on standard input: `profile-start`, `profile-stop <file>` (cProfile of the event loop
thread's CPU time, dumped as pstats) and `stop`; then it prints `{"event": "stopped"}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import resource
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.baselines import ALLOWED_UPDATES, WEBHOOK_PATH, build_echo, build_naive, echo_web_app

ROOT = Path(__file__).resolve().parent.parent


def _say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def _commands() -> AsyncIterator[str]:
    """Lines from standard input, read without blocking the event loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode().strip()


async def _obey() -> None:
    """Run until told to stop (or until the parent goes away)."""
    profiler: cProfile.Profile | None = None
    async for command in _commands():
        if command == "profile-start":
            profiler = cProfile.Profile(time.thread_time)  # CPU, not waits for the GIL
            profiler.enable()
        elif command.startswith("profile-stop") and profiler is not None:
            profiler.disable()
            profiler.dump_stats(command.split(" ", 1)[1])
            profiler = None
            _say("profiled")
        elif command == "stop":
            break


@contextlib.asynccontextmanager
async def _suara(args: argparse.Namespace) -> AsyncIterator[None]:
    from bot.devtools.example import load_example
    from bot.wiring.app import open_services
    from bot.wiring.config import load_settings
    from bot.wiring.runner import Webhook, running, supervise

    settings = load_settings(
        _env_file=None,
        bot_token=args.token,
        telegram_api_url=args.api_root,
        database_url=args.database,
        key_file=Path(args.folder) / "bench.key",
        surveys_dir=ROOT / "surveys",
        privacy_notice_file=ROOT / "locales" / "privacy_notice.yaml",
        concurrent_updates=args.concurrent_updates,
        resubmit_after_hours=0,  # a customer may answer the branch survey again at once
        send_rate=min(args.send_rate, 1000.0),  # the bench measures the bot, not the limits
        per_chat_rate=30.0,
        per_chat_burst=30.0,
        log_level="WARNING",
        workers=args.workers,
    )
    if args.send_rate > 1000.0:  # bench.sender's ceiling: the setting's cap lifted
        settings = settings.model_copy(update={"send_rate": args.send_rate})
    services = await open_services(settings)
    if args.no_group_commit:
        _unit_per_transaction(services.db)
    try:
        async with services.db.transaction() as connection:
            await load_example(connection)
        hook = None
        if args.mode == "webhook":
            public = f"http://127.0.0.1:{args.port}"
            hook = Webhook(public, "127.0.0.1", args.port, args.secret)
        if args.workers > 1:
            assert hook is not None
            await services.db.dispose()
            stop = asyncio.Event()
            supervisor = asyncio.create_task(supervise(settings, hook, stop))
            while _listening(args.port) < args.workers:  # all of them, before any connection
                if supervisor.done():
                    await supervisor  # it failed: say why
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # the primary registers the webhook after listening
            try:
                yield
            finally:
                stop.set()
                await supervisor
            return
        async with running(services, hook):
            yield
    finally:
        await services.db.dispose()


def _listening(port: int) -> int:
    """How many sockets listen on this TCP port (several share it with SO_REUSEPORT)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
    )


def _unit_per_transaction(db: Any) -> None:
    """Give every unit of work a transaction of its own, to see what group commit buys."""
    if not callable(getattr(db, "run", None)):
        raise SystemExit("this Database has no group commit (Database.run) to switch off")

    async def run(work: Callable[[Any], Awaitable[Any]]) -> Any:
        async with db.transaction() as connection:
            return await work(connection)

    db.run = run


@contextlib.asynccontextmanager
async def _echo(args: argparse.Namespace) -> AsyncIterator[None]:
    webhook = args.mode == "webhook"
    app = build_echo(
        args.api_root, args.token, concurrent_updates=args.concurrent_updates, webhook=webhook
    )
    async with app:
        await app.start()
        runner: web.AppRunner | None = None
        try:
            if webhook:
                runner = web.AppRunner(
                    echo_web_app(app, args.secret, args.concurrent_updates), access_log=None
                )
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", args.port).start()
                await app.bot.set_webhook(
                    f"http://127.0.0.1:{args.port}{WEBHOOK_PATH}",
                    secret_token=args.secret,
                    allowed_updates=ALLOWED_UPDATES,
                    max_connections=min(100, args.concurrent_updates * 2),
                )
            else:
                assert app.updater is not None
                await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
            yield
        finally:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if runner is not None:
                await runner.cleanup()
            await app.stop()


@contextlib.asynccontextmanager
async def _naive(args: argparse.Namespace) -> AsyncIterator[None]:
    app = build_naive(args.api_root, args.token)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()


async def main(args: argparse.Namespace) -> None:
    kinds = {"suara": _suara, "echo": _echo, "naive": _naive}
    async with kinds[args.kind](args):
        _say("ready")
        await _obey()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _say("stopped", cpu=usage.ru_utime + usage.ru_stime, max_rss_kib=usage.ru_maxrss)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("suara", "echo", "naive"), required=True)
    parser.add_argument("--mode", choices=("webhook", "polling"), required=True)
    parser.add_argument("--api-root", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--database", default="")
    parser.add_argument("--folder", default=".")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--concurrent-updates", type=int, default=16)
    parser.add_argument("--no-group-commit", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="Suara's webhook processes")
    parser.add_argument("--send-rate", type=float, default=1000.0, help="Suara's SEND_RATE")
    return parser.parse_args(argv)


if __name__ == "__main__":
    from bot.wiring.runner import run  # the bot's event loop: uvloop where installed

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run(main(parse_args()))
