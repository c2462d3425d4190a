"""Run the bot, polling or behind an aiohttp webhook; `run_bot.py`, the demo and tests use it."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from telegram import Update
from telegram.error import InvalidToken, NetworkError
from telegram.ext import Application

from bot.app import build_application, create_requests, open_services, publish_commands
from bot.config import Settings
from bot.errors import ConfigError
from bot.services import Services
from bot.web import WEBHOOK_PATH, create_web_app

log = logging.getLogger(__name__)
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]


@dataclass(frozen=True)
class Webhook:
    """Where Telegram should deliver, and where this process listens."""

    public_url: str
    host: str
    port: int
    secret: str


@asynccontextmanager
async def running(services: Services, webhook: Webhook | None = None) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """The bot receiving updates until the block ends; then it stops cleanly."""
    requests = create_requests(services.settings)
    app = build_application(services, requests, webhook=webhook is not None)
    site: web.AppRunner | None = None
    try:
        async with app:
            await publish_commands(app)
            await app.start()
            try:
                if webhook is None:
                    assert app.updater is not None
                    await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
                else:
                    site = await _serve_webhook(app, services, webhook)
                yield app
            finally:
                if app.updater is not None and app.updater.running:
                    await app.updater.stop()
                if site is not None:
                    await site.cleanup()
                await app.stop()
    finally:
        for request in requests:  # also when start-up failed half way
            await request.shutdown()


async def _serve_webhook(
    app: Application,
    services: Services,
    webhook: Webhook,  # type: ignore[type-arg]
) -> web.AppRunner:
    """Listen first, then tell Telegram where to deliver."""
    concurrency = services.settings.concurrent_updates
    site = web.AppRunner(
        create_web_app(app, webhook.secret, services=services, concurrency=concurrency),
        access_log=None,
    )
    await site.setup()
    await web.TCPSite(site, webhook.host, webhook.port).start()
    await app.bot.set_webhook(
        url=webhook.public_url.rstrip("/") + WEBHOOK_PATH,
        secret_token=webhook.secret,
        allowed_updates=ALLOWED_UPDATES,
        max_connections=min(100, concurrency * 2),
    )
    return site


async def serve(settings: Settings, *, webhook: bool) -> None:
    """`python run_bot.py [--webhook]`: run until SIGINT or SIGTERM."""
    if settings.bot_token is None:
        raise ConfigError("Setting BOT_TOKEN is missing: get a token from @BotFather.")
    if webhook and not settings.webhook_url:
        raise ConfigError("Setting WEBHOOK_URL is needed for --webhook.")
    hook = None
    if webhook:
        assert settings.webhook_url is not None
        secret = (
            settings.webhook_secret.get_secret_value()
            if settings.webhook_secret
            else secrets.token_urlsafe(32)
        )
        hook = Webhook(settings.webhook_url, settings.listen_host, settings.listen_port, secret)
    services = await open_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running(services, hook):
            log.info(
                "Suara is running (%s); press Ctrl+C to stop", "webhook" if hook else "polling"
            )
            await stop.wait()
    except InvalidToken:
        raise ConfigError("The Bot API refused BOT_TOKEN: check it with @BotFather.") from None
    except NetworkError as error:
        raise ConfigError(
            f"The Bot API at {settings.telegram_api_url} cannot be reached ({error.message}): "
            "check TELEGRAM_API_URL and the network."
        ) from None
    finally:
        await services.db.dispose()
