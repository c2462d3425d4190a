"""Command line: run the bot, the demo, and the operator's commands.

A user error (bad setting, missing key, unknown survey) prints one sentence and exits with 2;
only a fault in Suara itself shows a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import BinaryIO

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
    invite = commands.add_parser("staff-invite", help="print a one-time staff invitation link")
    invite.add_argument("--role", required=True, help="super_admin, admin, editor or viewer")
    invite.add_argument("--scope", required=True, help="all, region:<code> or branch:<code>")
    invite.add_argument("--name", help="the invitee's name, as staff lists will show it")
    results = commands.add_parser("results", help="print result figures, as /results shows")
    results.add_argument("--scope", help="all (default), a branch or region code")
    results.add_argument(
        "--period",
        help="7d, 30d (default), 2026-10, 2026-10-01..2026-10-31 or 'campaign <id>'",
    )
    results.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    export = commands.add_parser("export", help="write responses to a CSV or XLSX file")
    export.add_argument("--scope", help="all (default), a branch or region code")
    export.add_argument("--period", help="7d, 30d (default), 2026-10 or 2026-10-01..2026-10-31")
    export.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    export.add_argument("--out", required=True, help="the file to write")
    export.add_argument(
        "--with-contacts",
        action="store_true",
        help="add name and phone for customers who agreed to be contacted (audited)",
    )
    commands.add_parser("rebuild-rollups", help="recompute the results roll-ups from the answers")
    branches = commands.add_parser(
        "import-branches", help="create or update regions and branches from a CSV file"
    )
    branches.add_argument(
        "file", help="CSV: region code, region name, branch code, branch name, time zone, survey"
    )
    lists = commands.add_parser("import-customers", help="import a customer list (CSV)")
    lists.add_argument("file", help="CSV: customer ref, name, phone, branch code, locale")
    lists.add_argument("--links", help="write ref, name and personal link of new links here")
    lists.add_argument(
        "--renew-links",
        action="store_true",
        help="new links for every customer in the file (their old links stop working)",
    )
    verify = commands.add_parser("audit-verify", help="check the audit log's hash chain")
    verify.add_argument("--head", help="a chain head recorded earlier, as ROWS:HASH")
    _campaign_parser(commands)
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
    create.add_argument(
        "--list",
        action="append",
        dest="lists",
        metavar="FILE",
        help="target only the customers of this list (CSV: a customer list, or one column of "
        "customer refs); may be given more than once",
    )
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
            return _run(lambda: run_demo(customers=args.customers, seed=args.seed), bot_loop=True)
        settings = load_settings()
        configure_logging(settings.log_level)
        if args.command == "init":
            return _run(lambda: _init(settings, example=args.example))
        if args.command == "rotate-key":
            return _run(lambda: _rotate_key(settings))
        if args.command == "staff-invite":
            return _run(lambda: _staff_invite(settings, args.role, args.scope, args.name))
        if args.command == "results":
            return _run(lambda: _results(settings, args.scope, args.period, as_json=args.json))
        if args.command == "export":
            return _run(
                lambda: _export(
                    settings,
                    args.scope,
                    args.period,
                    args.format,
                    args.out,
                    contacts=args.with_contacts,
                )
            )
        if args.command == "rebuild-rollups":
            return _run(lambda: _rebuild_rollups(settings))
        if args.command == "import-branches":
            data = _read_file(args.file)
            return _run(lambda: _import_branches(settings, args.file, data))
        if args.command == "import-customers":
            return _import_customers_command(settings, args.file, args.links, args.renew_links)
        if args.command == "audit-verify":
            return _run(lambda: _audit_verify(settings, args.head))
        if args.command == "purge":
            return _run(lambda: _purge(settings, dry_run=args.dry_run))
        if args.command == "campaign":
            from bot.wiring.campaign_cli import run_campaign

            return _run(lambda: run_campaign(settings, args))
        from bot.wiring.runner import serve

        return _run(lambda: serve(settings, webhook=args.webhook), bot_loop=True)
    except SuaraError as error:
        print(f"suara: {error}", file=sys.stderr)
        return 2


def _run(make: Callable[[], Awaitable[int | None]], *, bot_loop: bool = False) -> int:
    """Run a command; `bot_loop`: on the running bot's event loop (uvloop where installed)."""
    try:
        if bot_loop:
            from bot.wiring.runner import run

            result = run(make())  # type: ignore[arg-type]
        else:
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


@contextlib.contextmanager
def _figures_refused(scope: str | None, period: str | None) -> Iterator[None]:
    """A scope or period the results cannot use, as one sentence."""
    from bot.services.results import BadCampaign, BadPeriod, BadScope

    try:
        yield
    except BadCampaign:
        raise SuaraError(
            f"Period {period!r} names no campaign that reaches {scope or 'all'}."
        ) from None
    except BadScope:
        raise SuaraError(f"There is no branch or region {scope!r}.") from None
    except BadPeriod:
        raise SuaraError(
            f"Period {period!r} is not 7d, 30d, 2026-10, 2026-10-01..2026-10-31"
            " or (for results) campaign <id>."
        ) from None


async def _results(
    settings: Settings, scope: str | None, period: str | None, *, as_json: bool
) -> int:
    import json

    from bot.wiring.app import open_services

    services = await open_services(settings)
    try:
        with _figures_refused(scope, period):
            summary = await services.results.for_operator(scope, period)
    finally:
        await services.db.dispose()
    figures = summary.to_json()
    if as_json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
        return 0
    nps = figures["nps"]
    campaign = figures["period"].get("campaign")
    named = f", campaign {campaign['id']} ({campaign['name']})" if campaign else ""
    print(
        f"Results for {figures['scope']}{named}, "
        f"{figures['period']['from']} to {figures['period']['to']}"
    )
    print(f"  responses {figures['responses']}, started {figures['started']}")
    print(
        f"  invitations {figures['invitations']}, answered {figures['invitations_answered']},"
        f" response rate {figures['response_rate']}"
    )
    print(f"  NPS {nps['score']} ({nps['promoters']}/{nps['passives']}/{nps['detractors']})")
    for line in figures["csat"]:
        print(f"  CSAT {line['question']} (1-{line['scale']}): mean {line['mean']}")
    for branch in figures["branches"]:
        print(
            f"  {branch['code']}: {branch['responses']} responses, NPS {branch['nps']['score']},"
            f" {branch['invitations']} invitations, response rate {branch['response_rate']}"
        )
    return 0


async def _export(
    settings: Settings,
    scope: str | None,
    period: str | None,
    fmt: str,
    out: str,
    *,
    contacts: bool = False,
) -> int:
    import shutil

    from bot.wiring.app import open_services

    services = await open_services(settings)
    try:
        with _figures_refused(scope, period):
            written = await services.exports.for_operator(
                scope,
                period,
                fmt,  # type: ignore[arg-type]
                contacts=contacts,
            )
    finally:
        await services.db.dispose()
    shutil.move(written.path, out)
    named = f", naming {written.named} customers" if written.contacts else ""
    print(f"Wrote {written.rows} responses to {out}{named}.")
    return 0


async def _rebuild_rollups(settings: Settings) -> int:
    from bot.services.clock import system_clock
    from storage import audit
    from storage import results as rollups
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        await db.upgrade()
        async with db.transaction() as connection:
            rows = await rollups.rebuild(connection)
            await audit.append(
                connection, "system", "results.rebuild", details={"rows": rows}, at=system_clock()
            )
        await rollups.settle(db.engine)
    finally:
        await db.dispose()
    print(f"Roll-ups rebuilt: {rows} rows.")
    return 0


def _read_file(file: str) -> bytes:
    try:
        with open(file, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise SuaraError(f"There is no file {file}.") from None
    except IsADirectoryError:
        raise SuaraError(f"{file} is a directory, not a CSV file.") from None
    except OSError as error:
        raise SuaraError(f"{file} cannot be read ({error.strerror}).") from None


async def _import_branches(settings: Settings, file: str, data: bytes) -> int:
    from bot.services.branches import import_branches
    from bot.wiring.app import open_services

    services = await open_services(settings)
    try:
        report = await import_branches(services.db, data, at=services.staff.clock())
    finally:
        await services.db.dispose()
    if not report.ok:
        count = len(report.problems)
        print(
            f"{file}: nothing imported, {count} problem{'s' if count != 1 else ''}:",
            file=sys.stderr,
        )
        for problem in report.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    print(
        f"{file}: {len(report.rows)} branches imported "
        f"({report.created} new, {report.updated} updated)."
    )
    return 0


def _import_customers_command(
    settings: Settings, path: str, links_path: str | None, renew: bool
) -> int:
    """Read the list and open the links file first: an import whose links could not be
    written would leave links nobody can print again."""
    from contextlib import nullcontext
    from pathlib import Path

    try:
        data = Path(path).read_bytes()
        links = open(links_path, "wb") if links_path else nullcontext()  # noqa: SIM115
    except OSError as error:
        raise SuaraError(f"Cannot use {error.filename}: {error.strerror}.") from None
    with links as out:
        return _run(lambda: _import_customers(settings, data, out, renew))


async def _import_customers(
    settings: Settings, data: bytes, out: BinaryIO | None, renew: bool
) -> int:
    from bot.services import customer_lists
    from bot.wiring.app import open_services

    services = await open_services(settings)
    try:
        report = await services.customer_lists.import_as_system(data, renew=renew)
    except customer_lists.BadList as error:
        raise SuaraError(error.reason) from None
    finally:
        await services.db.dispose()
    print(customer_lists.describe(report))
    if out is not None:
        username = await _bot_username(settings) or "<your_bot>"
        out.write(customer_lists.links_csv(report.links, username))
        print(f"{len(report.links)} new personal links written to {out.name}.")
    elif report.links:
        print(f"{len(report.links)} new personal links were made: use --links FILE to keep them.")
    if report.updated or report.unchanged:
        print("Customers imported before keep their links (--renew-links gives them new ones).")
    return 1 if report.rejected else 0


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
