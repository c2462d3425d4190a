"""The composition root: build the services and the python-telegram-bot application.

The one place in `bot/` that imports `handlers/`. It only builds things; running them is
`bot/wiring/runner.py`'s job.
"""

from __future__ import annotations

import logging
from datetime import time

from telegram import BotCommand, Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults, TypeHandler

from bot.errors import ConfigError
from bot.services import i18n, keys
from bot.services.campaigns import Campaigns
from bot.services.clock import Clock, system_clock
from bot.services.conversation import Conversations
from bot.services.customer_lists import CustomerLists
from bot.services.exports import Exports
from bot.services.follow_up import FollowUps
from bot.services.library import SurveyLibrary
from bot.services.personal_data import PersonalData
from bot.services.privacy import load_notice
from bot.services.results import Results
from bot.services.sender import Sender
from bot.services.staff import StaffAccess
from bot.services.surveys import SurveyCatalog
from bot.transport.operations import count_update
from bot.transport.pacing import Pacer, Updates
from bot.transport.request import AiohttpRequest, UpdatesRequest
from bot.wiring.config import Settings
from bot.wiring.services import Services
from handlers import customer, membership, staff
from handlers.context import ALERTS_JOB, SERVICES_KEY, Context
from handlers.errors import on_error
from handlers.render import COMMAND_HELP
from handlers.staff import follow_ups
from handlers.staff.menus import show_customer_menu
from storage.db import UNREACHABLE, Database, Timeouts, unreachable, unwritable

log = logging.getLogger(__name__)
CAMPAIGN_TICK = 2.0  # seconds
FOLLOW_UP_TICK = 2.0  # seconds: alerts left unsent, escalations due
UPDATE_COUNTER_GROUP = -100  # before every other handler group, alone in its own


async def open_services(settings: Settings, clock: Clock = system_clock) -> Services:
    """Upgrade the database, unlock the keys, load catalogs and surveys. `clock` is the one
    time every service reads: customer conversations, retention, staff sessions, campaigns,
    the sender (the demo's runs fast)."""
    i18n.load_catalogs()
    notice = load_notice(settings.privacy_notice_file)
    # Each update in flight holds a connection for its unit of work; jobs and the health
    # check take a few more. A smaller pool would open and close connections under load.
    try:
        db = Database(
            settings.database_url,
            pool_size=settings.concurrent_updates + 4,
            timeouts=Timeouts(settings.db_statement_timeout, settings.db_lock_timeout),
        )
    except OSError as error:  # SQLite's folder cannot be made
        raise ConfigError(unreachable(settings.database_url, error)) from None
    try:
        try:
            await db.ping()
        except UNREACHABLE as error:
            raise ConfigError(unreachable(settings.database_url, error)) from None
        await db.upgrade()
        await keys.activate(settings, db)
        try:
            await db.check_writable()
        except UNREACHABLE as error:
            raise ConfigError(unwritable(settings.database_url, error)) from None
        catalog = SurveyCatalog(db)
        report = await catalog.sync_directory(settings.surveys_dir)
        log.info(
            "surveys: %d new, %d unchanged, %d rejected",
            len(report.added),
            len(report.unchanged),
            len(report.rejected),
        )
        await catalog.check_in_use(settings.default_survey)
    except BaseException:
        await db.dispose()
        raise
    staff = StaffAccess(
        db, issuer=settings.totp_issuer, session_hours=settings.staff_session_hours, clock=clock
    )
    results = Results(db, catalog, staff, settings.zone)
    pacer = Pacer(settings.send_rate, settings.per_chat_rate, settings.per_chat_burst)
    return Services(
        settings,
        db,
        catalog,
        Conversations(db, catalog, notice, settings, clock),
        pacer,
        PersonalData(db, catalog, settings, clock),
        staff,
        results,
        Exports(db, catalog, staff, results, settings.zone),
        SurveyLibrary(db, catalog, staff, settings.default_survey),
        CustomerLists(db, staff, clock),
        Campaigns(
            db,
            catalog,
            staff,
            notice_version=notice.version,
            cooldown_days=settings.survey_cooldown_days,
            clock=clock,
        ),
        Sender(db, catalog, pacer, notice_version=notice.version, clock=clock),
        FollowUps(
            db, catalog, staff, escalate_hours=settings.follow_up_escalate_hours, clock=clock
        ),
    )


class CountingApplication(Application):  # type: ignore[type-arg]
    """PTB's Application, counting the updates it is processing, polled or delivered by the
    webhook alike (both come through `process_update`): the pacer holds blast traffic back
    for them."""

    def __init__(self, *, updates: Updates, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._updates = updates

    async def process_update(self, update: object) -> None:
        with self._updates.processing():
            await super().process_update(update)


def create_requests(settings: Settings) -> tuple[AiohttpRequest, AiohttpRequest]:
    """The HTTP clients for Bot API calls and for long polling; the caller shuts them down."""
    return (
        AiohttpRequest(connection_pool_size=max(8, settings.concurrent_updates * 2)),
        UpdatesRequest(connection_pool_size=2, read_timeout=40),
    )


def build_application(
    services: Services,
    requests: tuple[AiohttpRequest, AiohttpRequest],
    *,
    webhook: bool = False,
    jobs: bool = True,
) -> Application:  # type: ignore[type-arg]
    """The bot, talking to TELEGRAM_API_URL through one shared aiohttp session; `jobs` adds
    the housekeeping jobs (one process of several runs them)."""
    settings = services.settings
    if settings.bot_token is None:
        raise ConfigError("Setting BOT_TOKEN is missing: get a token from @BotFather.")
    api = settings.telegram_api_url
    builder = (
        ApplicationBuilder()
        .token(settings.bot_token.get_secret_value())
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .request(requests[0])
        .get_updates_request(requests[1])
        .context_types(ContextTypes(context=Context))
        .defaults(Defaults(tzinfo=settings.zone))
        .concurrent_updates(settings.concurrent_updates)
        .application_class(CountingApplication, {"updates": services.pacer.updates})
    )
    if webhook:
        builder = builder.updater(None)
    app = builder.build()
    app.bot_data[SERVICES_KEY] = services
    app.add_handler(TypeHandler(Update, count_update), UPDATE_COUNTER_GROUP)
    staff.register(app)
    customer.register(app)
    membership.register(app)
    app.add_error_handler(on_error)  # type: ignore[arg-type]
    if jobs:
        _schedule(app, services)
    _schedule_campaigns(app, services)
    return app


def _schedule_campaigns(app: Application, services: Services) -> None:  # type: ignore[type-arg]
    """Every process ticks: start due campaigns, end expired ones, wake the sender; send
    detractor alerts and escalate follow-ups."""

    async def tick(_context: object) -> None:
        await services.campaigns.tick()
        services.sender.wake()

    assert app.job_queue is not None
    app.job_queue.run_repeating(tick, interval=CAMPAIGN_TICK, first=0.5, name="campaigns")
    # Alerts go out at once from the customer's completion (handlers.customer wakes this job);
    # the tick catches what another process claimed no sooner, and escalates what is due.
    app.job_queue.run_repeating(
        follow_ups.deliver, interval=FOLLOW_UP_TICK, first=1.0, name=ALERTS_JOB
    )


def _schedule(app: Application, services: Services) -> None:  # type: ignore[type-arg]
    """Housekeeping; jobs only wake services, which are idempotent across processes."""
    settings = services.settings
    hours, minutes = (int(part) for part in settings.purge_time.split(":"))

    async def purge(_context: object) -> None:
        await services.personal_data.purge()

    async def forget_updates(_context: object) -> None:
        await services.conversations.forget_updates()

    assert app.job_queue is not None
    app.job_queue.run_daily(
        purge, time(hours, minutes, tzinfo=settings.zone), name="retention-purge"
    )
    app.job_queue.run_repeating(forget_updates, interval=3600, first=60, name="forget-updates")

    async def end_staff_sessions(context: object) -> None:
        for telegram_id in await services.staff.close_expired_sessions():
            await show_customer_menu(app.bot, telegram_id)

    app.job_queue.run_repeating(end_staff_sessions, interval=60, first=30, name="staff-sessions")


async def publish_commands(app: Application) -> None:  # type: ignore[type-arg]
    """The command menu, in each language Telegram clients may ask for."""
    for locale in i18n.LOCALES:
        with i18n.use_locale(locale):
            commands = [BotCommand(name, i18n.gettext(text)) for name, text in COMMAND_HELP.items()]
        await app.bot.set_my_commands(commands, language_code=None if locale == "id" else locale)
