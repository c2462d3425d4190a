"""The aiohttp web server: Telegram's webhook, `/healthz` for the platform's probes.

Each delivery is checked against the secret-token header (403 when missing or wrong), processed
to the end, and answered with the one Bot API call a handler handed back, if any — so a button
press costs one outgoing request (the edit) instead of two — or with 500 when the bot failed,
so that Telegram delivers the update again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.transport import incoming, webhook_reply
from bot.transport.operations import health_details, metrics_handler
from bot.wiring.services import Services

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram"


def create_web_app(
    application: Application,  # type: ignore[type-arg]
    secret: str,
    *,
    services: Services,
    concurrency: int = 32,
) -> web.Application:
    slots = asyncio.Semaphore(concurrency)

    async def webhook(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("webhook delivery refused: wrong or missing secret token")
            return web.Response(status=403)
        try:
            payload = await request.json(loads=json.loads)
            if not isinstance(payload, dict):
                return web.Response(status=400)
            update = Update.de_json(incoming.trim(payload), application.bot)
        except (ValueError, TypeError, KeyError):
            return web.Response(status=400)
        async with slots:
            with webhook_reply.delivery() as answer:
                await application.process_update(update)
        if answer.failed:
            return web.Response(status=500)  # Telegram delivers it again later
        if answer.call is None:
            return web.Response(status=200)
        return web.json_response(answer.call)

    async def healthz(_request: web.Request) -> web.Response:
        """Ready when the database answers."""
        try:
            await services.db.ping()
        except Exception:
            log.warning("health check: the database does not answer")
            return web.json_response({"status": "database unavailable"}, status=503)
        return web.json_response({"status": "ok", **health_details(services, application)})

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler(services, application))
    return app
