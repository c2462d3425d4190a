"""Run the bot, polling or behind an aiohttp webhook; `run_bot.py`, the demo and tests use it.

Behind the webhook, `WORKERS` processes may share the port (SO_REUSEPORT; the kernel spreads
Telegram's connections over them) when the database is PostgreSQL: conversation state lives in
the database under optimistic concurrency, so any process may take any update. The first
process is the primary: it registers the webhook and the command menu and runs the
housekeeping jobs. Each process paces its sends at its share of the rates.

The bot runs on uvloop's event loop where it is installed (every platform but Windows): the
loop's own work is about a third of the CPU a blast message costs, and uvloop does it in C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import secrets
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from cryptography import x509
from telegram import Update
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import Application

from bot.errors import ConfigError, SuaraError
from bot.transport.operations import operations_app
from bot.transport.web import WEBHOOK_PATH, create_web_app
from bot.wiring.app import build_application, create_requests, open_services, publish_commands
from bot.wiring.config import Settings
from bot.wiring.logs import configure_logging
from bot.wiring.services import Services

log = logging.getLogger(__name__)
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER]
T = TypeVar("T")


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed, else None: asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the bot's event loop (`event_loop_factory`)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)


@dataclass(frozen=True)
class Webhook:
    """Where Telegram should deliver, and where this process listens."""

    public_url: str
    host: str
    port: int
    secret: str
    tls_cert: Path | None = None  # with tls_key: serve HTTPS directly
    tls_key: Path | None = None

    def tls(self) -> ssl.SSLContext | None:
        """The HTTPS context, or None for plain HTTP behind a TLS proxy; ConfigError in one
        sentence when the files do not make one."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as error:
            reason = getattr(error, "reason", None) or error.strerror or type(error).__name__
            raise ConfigError(
                f"Settings TLS_CERT ({self.tls_cert}) and TLS_KEY ({self.tls_key}) do not "
                f"load as a certificate and its key ({reason})."
            ) from None
        return context

    def self_signed_certificate(self) -> bytes | None:
        """The certificate to upload with setWebhook, which Telegram then trusts: only one
        that no authority signed (its issuer is itself)."""
        if self.tls_cert is None:
            return None
        data = self.tls_cert.read_bytes()
        certificate = x509.load_pem_x509_certificate(data)
        return data if certificate.issuer == certificate.subject else None


@asynccontextmanager
async def running(
    services: Services, webhook: Webhook | None = None, *, primary: bool = True
) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """The bot receiving updates until the block ends; then it stops cleanly."""
    requests = create_requests(services.settings)
    app = build_application(services, requests, webhook=webhook is not None, jobs=primary)
    site: web.AppRunner | None = None
    try:
        async with app:
            if primary:
                await publish_commands(app)
            await app.start()
            sending = asyncio.Event()
            sender = asyncio.create_task(services.sender.run(app.bot, sending))
            try:
                if webhook is None:
                    assert app.updater is not None
                    await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
                    site = await _serve_operations(app, services)
                else:
                    site = await _serve_webhook(app, services, webhook, primary=primary)
                yield app
            finally:
                if app.updater is not None and app.updater.running:
                    await app.updater.stop()
                if site is not None:
                    await site.cleanup()
                sending.set()
                await sender
                await app.stop()
    finally:
        for request in requests:  # also when start-up failed half way
            await request.shutdown()


async def _serve_operations(
    app: Application,  # type: ignore[type-arg]
    services: Services,
) -> web.AppRunner | None:
    """In polling mode, `/metrics` and `/healthz` on METRICS_PORT when it is set."""
    port = services.settings.metrics_port
    if port is None:
        return None
    site = web.AppRunner(operations_app(services, app), access_log=None)
    await site.setup()
    await web.TCPSite(site, services.settings.listen_host, port).start()
    return site


async def _serve_webhook(
    app: Application,  # type: ignore[type-arg]
    services: Services,
    webhook: Webhook,
    *,
    primary: bool,
) -> web.AppRunner:
    """Listen first, then (the primary) tell Telegram where to deliver."""
    settings = services.settings
    concurrency = settings.concurrent_updates
    site = web.AppRunner(
        create_web_app(app, webhook.secret, services=services, concurrency=concurrency),
        access_log=None,
    )
    await site.setup()
    shared = settings.workers > 1
    tls = webhook.tls()
    await web.TCPSite(
        site, webhook.host, webhook.port, reuse_port=shared or None, ssl_context=tls
    ).start()
    if not primary:
        return site
    try:
        await app.bot.set_webhook(
            url=webhook.public_url.rstrip("/") + WEBHOOK_PATH,
            secret_token=webhook.secret,
            allowed_updates=ALLOWED_UPDATES,
            max_connections=min(100, concurrency * 2),
            certificate=webhook.self_signed_certificate(),
        )
    except BaseException:
        await site.cleanup()  # free the port: the caller never saw this site
        raise
    return site


async def serve(settings: Settings, *, webhook: bool) -> None:
    """`python run_bot.py [--webhook]`: run until SIGINT or SIGTERM."""
    if settings.bot_token is None:
        raise ConfigError("Setting BOT_TOKEN is missing: get a token from @BotFather.")
    if webhook and not settings.webhook_url:
        raise ConfigError("Setting WEBHOOK_URL is needed for --webhook.")
    if settings.workers > 1 and not webhook:
        raise ConfigError("Setting WORKERS above 1 needs --webhook: polling runs one process.")
    if settings.workers > 1 and settings.is_sqlite:
        raise ConfigError("Setting WORKERS above 1 needs PostgreSQL: SQLite serves one process.")
    hook = None
    if webhook:
        assert settings.webhook_url is not None
        secret = (
            settings.webhook_secret.get_secret_value()
            if settings.webhook_secret
            else secrets.token_urlsafe(32)
        )
        if (settings.tls_cert is None) != (settings.tls_key is None):
            raise ConfigError("Settings TLS_CERT and TLS_KEY go together: set both or neither.")
        hook = Webhook(
            settings.webhook_url,
            settings.listen_host,
            settings.listen_port,
            secret,
            settings.tls_cert,
            settings.tls_key,
        )
        hook.tls()  # a certificate that does not load stops start-up here, in one sentence
    if settings.workers > 1:
        assert hook is not None
        await supervise(settings, hook)
    else:
        await _serve_one(settings, hook)


async def _serve_one(settings: Settings, hook: Webhook | None, *, worker: int = 0) -> None:
    services = await open_services(settings)
    stop = _stop_on_signals()
    try:
        async with running(services, hook, primary=worker == 0):
            log.info(
                "Suara is running (%s%s); press Ctrl+C to stop",
                "webhook" if hook else "polling",
                f", worker {worker + 1} of {settings.workers}" if settings.workers > 1 else "",
            )
            await stop.wait()
    except TelegramError as error:
        raise ConfigError(bot_api_failure(settings, error)) from None
    finally:
        await services.db.dispose()


async def supervise(settings: Settings, hook: Webhook, stop: asyncio.Event | None = None) -> None:
    """Start the worker processes and stop them all on SIGINT or SIGTERM (or when `stop` is
    set), or as soon as one of them ends."""
    services = await open_services(settings)  # migrate and create the key file only once
    await services.db.dispose()
    share = settings.model_copy(
        update={
            "send_rate": settings.send_rate / settings.workers,
            "per_chat_rate": settings.per_chat_rate / settings.workers,
        }
    )
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(share, hook, n), name=f"suara-worker-{n + 1}")
        for n in range(settings.workers)
    ]
    for process in workers:
        process.start()
    if stop is None:
        stop = _stop_on_signals()
    try:
        while not stop.is_set() and all(process.is_alive() for process in workers):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker stops cleanly
        for process in workers:
            await asyncio.to_thread(process.join)
    failed = [p.name for p in workers if p.exitcode not in (0, -signal.SIGTERM)]
    if failed and not stop.is_set():
        raise ConfigError(f"Worker {failed[0]} stopped unexpectedly; see its log above.")


def bot_api_failure(settings: Settings, error: TelegramError) -> str:
    """One sentence telling a Bot API that cannot be reached from one that refused a call:
    the fix differs (the network or TELEGRAM_API_URL, against the token or WEBHOOK_URL)."""
    api = settings.telegram_api_url
    if isinstance(error, InvalidToken):
        return "The Bot API refused BOT_TOKEN: check it with @BotFather."
    if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        return (
            f"The Bot API at {api} cannot be reached ({error.message}): "
            "check TELEGRAM_API_URL and the network."
        )
    return (
        f"The Bot API at {api} refused a call ({error.message}): "
        "check WEBHOOK_URL and the bot's settings with @BotFather."
    )


def _stop_on_signals() -> asyncio.Event:
    """Set on SIGINT or SIGTERM (Ctrl+C, or the platform stopping the process)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _worker(settings: Settings, hook: Webhook, number: int) -> None:
    """A worker process's entry point (spawned: nothing is inherited but its arguments)."""
    configure_logging(settings.log_level)
    try:
        run(_serve_one(settings, hook, worker=number))
    except SuaraError as error:
        print(f"suara: {error}", file=sys.stderr)
        sys.exit(2)
