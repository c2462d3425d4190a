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
from telegram.ext import Application

from bot.app import build_application, open_services, publish_commands
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
    app = build_application(services, webhook=webhook is not None)
    async with app:
        await publish_commands(app)
        await app.start()
        site_runner: web.AppRunner | None = None
        try:
            if webhook is None:
                assert app.updater is not None
                await app.updater.start_polling(
                    allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False
                )
            else:
                site_runner = web.AppRunner(
                    create_web_app(
                        app,
                        webhook.secret,
                        services=services,
                        concurrency=services.settings.concurrent_updates,
                    ),
                    access_log=None,
                )
                await site_runner.setup()
                await web.TCPSite(site_runner, webhook.host, webhook.port).start()
                await app.bot.set_webhook(
                    url=webhook.public_url.rstrip("/") + WEBHOOK_PATH,
                    secret_token=webhook.secret,
                    allowed_updates=ALLOWED_UPDATES,
                    max_connections=min(100, services.settings.concurrent_updates * 2),
                )
            yield app
        finally:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if site_runner is not None:
                await site_runner.cleanup()
            await app.stop()


async def serve(settings: Settings, *, webhook: bool) -> None:
    """`python run_bot.py [--webhook]`: run until SIGINT or SIGTERM."""
    services = await open_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    hook = None
    if webhook:
        if not settings.webhook_url:
            raise ConfigError("Setting WEBHOOK_URL is needed for --webhook.")
        secret = (
            settings.webhook_secret.get_secret_value()
            if settings.webhook_secret
            else secrets.token_urlsafe(32)
        )
        hook = Webhook(settings.webhook_url, settings.listen_host, settings.listen_port, secret)
    try:
        async with running(services, hook):
            log.info(
                "Suara is running (%s); press Ctrl+C to stop", "webhook" if hook else "polling"
            )
            await stop.wait()
    finally:
        await services.db.dispose()
