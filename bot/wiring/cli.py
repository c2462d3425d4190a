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

from bot.errors import SuaraError
from bot.wiring.config import Settings, load_settings
from bot.wiring.logs import configure_logging

log = logging.getLogger("suara")


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
    demo.add_argument("--customers", type=int, default=100, help="how many (default 100)")
    demo.add_argument("--seed", type=int, default=7, help="random seed for the customers")
    commands.add_parser("rotate-key", help="re-encrypt personal data under a new key")
    purge = commands.add_parser("purge", help="apply the retention period now")
    purge.add_argument("--dry-run", action="store_true", help="only report what would go")
    init = commands.add_parser("init", help="prepare the database")
    init.add_argument(
        "--example", action="store_true", help="load the example organisation and print deep links"
    )
    invite = commands.add_parser("staff-invite", help="print a one-time staff invitation link")
    invite.add_argument("--role", required=True, help="super_admin, admin, editor or viewer")
    invite.add_argument("--scope", required=True, help="all, region:<code> or branch:<code>")
    invite.add_argument("--name", help="the invitee's name, as staff lists will show it")
    verify = commands.add_parser("audit-verify", help="check the audit log's hash chain")
    verify.add_argument("--head", help="a chain head recorded earlier, as ROWS:HASH")
    _campaign_parser(commands)
    return parser


def _campaign_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    campaign = commands.add_parser("campaign", help="campaigns, for the bank's schedulers")
    actions = campaign.add_subparsers(dest="campaign_command", required=True)
    create = actions.add_parser("create", help="a draft campaign; prints its id last")
    create.add_argument("--name", required=True)
    create.add_argument("--survey", required=True, help="the survey key")
    create.add_argument("--scope", required=True, help="all, region:<code> or branch:<code>")
    create.add_argument("--start", default="now", help="now or YYYY-MM-DDTHH:MM, local time")
    create.add_argument("--reminders", default="24h,72h", help="at most two, e.g. 24h,72h")
    create.add_argument("--expires", default="7d", help="e.g. 7d or 48h after the start")
    listing = actions.add_parser("list", help="the latest campaigns")
    listing.add_argument("--json", action="store_true")
    for name in ("show", "launch", "pause", "resume", "cancel"):
        action = actions.add_parser(name, help=f"{name} a campaign")
        action.add_argument("id")
        if name == "show":
            action.add_argument("--json", action="store_true")


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
        if args.command == "staff-invite":
            return _run(lambda: _staff_invite(settings, args.role, args.scope, args.name))
        if args.command == "audit-verify":
            return _run(lambda: _audit_verify(settings, args.head))
        if args.command == "purge":
            return _run(lambda: _purge(settings, dry_run=args.dry_run))
        if args.command == "campaign":
            from bot.wiring.campaign_cli import run_campaign

            return _run(lambda: run_campaign(settings, args))
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
            payloads = await load_example(connection)
        username = await _bot_username(settings)
        print("Example organisation loaded. Open these links in Telegram:")
        for payload in payloads:
            print(f"  https://t.me/{username or '<your_bot>'}?start={payload}")
        if username is None:
            print("(replace <your_bot> with your bot's username from @BotFather)")
        return 0
    finally:
        await services.db.dispose()


async def _rotate_key(settings: Settings) -> int:
    from bot.services import keys
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        await db.upgrade()
        count = await keys.rotate(settings, db)
    finally:
        await db.dispose()
    print(f"Re-encrypted {count} values under the new key.")
    if settings.encryption_keys is not None:
        print("Now remove the old keys from ENCRYPTION_KEYS, keeping only the first.")
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


async def _staff_invite(
    settings: Settings, role_text: str, scope_text: str, name: str | None
) -> int:
    from bot.services.access import Role, Scope
    from bot.services.staff import Refused
    from bot.wiring.app import open_services

    role, scope = Role.parse(role_text), Scope.parse(scope_text)
    if role is None:
        raise SuaraError(f"Unknown role {role_text!r}: use super_admin, admin, editor or viewer.")
    if scope is None:
        raise SuaraError(f"Unknown scope {scope_text!r}: use all, region:<code> or branch:<code>.")
    services = await open_services(settings)
    try:
        invited = await services.staff.invite_as_system(role, scope, name)
    finally:
        await services.db.dispose()
    if isinstance(invited, Refused):
        raise SuaraError(f"There is no {scope}: import the branches first (import-branches).")
    username = await _bot_username(settings)
    print(f"One-time invitation for a {role.label} ({scope}), valid for 24 hours:")
    print(f"https://t.me/{username or '<your_bot>'}?start=s_{invited.token}")
    return 0


async def _audit_verify(settings: Settings, head: str | None) -> int:
    from storage import audit
    from storage.db import Database

    recorded: tuple[int, str] | None = None
    if head is not None:
        rows, _, digest = head.partition(":")
        if not rows.isdigit() or len(digest) != 64:
            raise SuaraError("--head must look like ROWS:HASH, as audit-verify printed it.")
        recorded = (int(rows), digest.lower())
    db = Database(settings.database_url)
    try:
        await db.upgrade()
        async with db.transaction() as connection:
            found = await audit.check_chain(connection, recorded)
    finally:
        await db.dispose()
    print(f"Audit log: {found.rows} rows, head {found.rows}:{found.head}")
    if found.broken is not None:
        print(f"BROKEN: row {found.broken} does not match the chain before it.")
    if found.head_missing and recorded is not None:
        print(
            f"BROKEN: the recorded head {recorded[0]}:{recorded[1][:12]}… is not in the chain: "
            "rows were removed from the end or rewritten."
        )
    if found.intact:
        print("The chain is intact.")
        return 0
    return 1


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
