"""Command line: run the bot, the demo, and the operator's commands.

A user error (bad setting, missing key, unknown survey) prints one sentence and exits with 2;
only a fault in Suara itself shows a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence

from bot.errors import ConfigError, SuaraError
from bot.wiring.config import Settings, load_settings
from bot.wiring.logs import configure_logging

log = logging.getLogger("suara")
MAX_DEMO_CUSTOMERS = 10_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_bot.py", description="Suara survey bot")
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="serve Telegram's webhook (WEBHOOK_URL) instead of polling",
    )
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run the bot (the default)")
    run.add_argument("--webhook", action="store_true", help="serve the webhook instead of polling")
    demo = commands.add_parser("demo", help="simulated customers against a local Bot API emulator")
    demo.add_argument(
        "--customers", type=_customer_count, default=100, help="how many, 1 to 10000 (default 100)"
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed for the customers")
    commands.add_parser("rotate-key", help="re-encrypt personal data under a new key")
    purge = commands.add_parser("purge", help="apply the retention period now")
    purge.add_argument("--dry-run", action="store_true", help="only report what would go")
    init = commands.add_parser("init", help="prepare the database")
    init.add_argument(
        "--example", action="store_true", help="load the example organisation and print deep links"
    )
    return parser


def _customer_count(text: str) -> int:
    """argparse refuses anything else with its usage line and this sentence (exit 2)."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_DEMO_CUSTOMERS:
        raise argparse.ArgumentTypeError(f"use a whole number from 1 to {MAX_DEMO_CUSTOMERS}")
    return count


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from bot.devtools.demo import run_demo

            configure_logging("WARNING")
            return _run(lambda: run_demo(customers=args.customers, seed=args.seed))
        settings = load_settings()
        configure_logging(settings.log_level)
        if args.command == "init":
            return _run(lambda: _init(settings, example=args.example))
        if args.command == "rotate-key":
            return _run(lambda: _rotate_key(settings))
        if args.command == "purge":
            return _run(lambda: _purge(settings, dry_run=args.dry_run))
        from bot.wiring.runner import serve

        return _run(lambda: serve(settings, webhook=args.webhook))
    except SuaraError as error:
        print(f"suara: {error}", file=sys.stderr)
        return 2


def _run(make: Callable[[], Awaitable[int | None]]) -> int:
    try:
        result = asyncio.run(make())  # type: ignore[arg-type]
    except SuaraError as error:
        print(f"suara: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


async def _init(settings: Settings, *, example: bool) -> int:
    from bot.devtools.example import load_example
    from bot.wiring.app import open_services

    services = await open_services(settings)
    try:
        if not example:
            print("Database ready.")
            return 0
        async with services.db.transaction() as connection:
            links = await load_example(connection)
        await services.catalog.check_in_use(settings.default_survey)
        username = await _bot_username(settings)
        print("Example organisation loaded. Open these links in Telegram:")
        for link in links:
            opens = f"survey {link.survey_key or settings.default_survey}"
            label = f"{link.branch}: {opens}" if link.branch else opens
            print(f"  https://t.me/{username or '<your_bot>'}?start={link.payload}  ({label})")
        if username is None:
            print("(replace <your_bot> with your bot's username from @BotFather)")
        return 0
    finally:
        await services.db.dispose()


async def _rotate_key(settings: Settings) -> int:
    from bot.services import keys
    from storage.db import UNREACHABLE, Database, unreachable

    db = Database(settings.database_url)
    try:
        try:
            await db.ping()
        except UNREACHABLE as error:
            raise ConfigError(unreachable(settings.database_url, error)) from None
        await db.upgrade()
        count = await keys.rotate(settings, db)
    finally:
        await db.dispose()
    print(f"Re-encrypted {count} values under the new key.")
    if settings.encryption_keys is not None:
        print("Now remove the old keys from ENCRYPTION_KEYS, keeping only the first.")
    else:
        print(
            f"Back up the new key file {settings.key_file} with the database backups now: "
            "the old key no longer opens the data."
        )
    return 0


async def _purge(settings: Settings, *, dry_run: bool) -> int:
    from bot.wiring.app import open_services

    services = await open_services(settings)
    try:
        data = services.personal_data
        plan = await (data.plan_purge() if dry_run else data.purge())
    finally:
        await services.db.dispose()
    verb = "would be" if dry_run else "were"
    print(f"Retention {settings.retention_days} days (before {plan.cutoff:%Y-%m-%d}):")
    print(f"  {plan.customers} inactive customers {verb} anonymised")
    print(f"  {plan.free_text_answers} free-text answers {verb} deleted")
    print(f"  {plan.open_sessions} unfinished surveys {verb} ended")
    return 0


async def _bot_username(settings: Settings) -> str | None:
    """The bot's @username when a token is set and the Bot API answers; links need it."""
    if settings.bot_token is None:
        return None
    from telegram import Bot
    from telegram.error import TelegramError

    from bot.transport.request import AiohttpRequest

    bot = Bot(
        settings.bot_token.get_secret_value(),
        base_url=f"{settings.telegram_api_url}/bot",
        request=AiohttpRequest(connection_pool_size=1),
    )
    try:
        async with bot:
            return bot.username
    except TelegramError:
        return None
