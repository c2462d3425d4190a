"""The aiohttp web server: Telegram's webhook, `/healthz` for the platform's probes and
`/metrics` (bot.transport.operations).

Each delivery is checked against the secret-token header (403 when missing or wrong), processed
to the end, and answered with the one Bot API call a handler handed back, if any — so a button
press costs one outgoing request (the edit) instead of two — or with 500 when the bot failed,
so that Telegram delivers the update again.

No update may fail forever: a body that is not an update is answered 400 and one the bot
cannot use 200, each logged once; an update that keeps failing with a fault of its own (a bug,
not an outage of the database) is answered 500 only `REDELIVERY_CAP` times, then acknowledged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web, web_response
from telegram import Update
from telegram.ext import Application

from bot.transport import incoming, webhook_reply
from bot.transport.incoming import NotAnUpdate
from bot.transport.operations import health_handler, metrics_handler
from bot.wiring.services import Services

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram"
REDELIVERY_CAP = 3  # deliveries answered 500 for one update before it is acknowledged anyway
SERVER_NAME = "Suara"  # the Server header: no names or versions of the software underneath
# aiohttp writes its own name and Python's version into every response, its error pages for
# malformed requests too, from this one default; it has no setting for it.
web_response.SERVER_SOFTWARE = SERVER_NAME


class FailureCounts:
    """How many deliveries of each recent update failed; bounded, oldest forgotten first."""

    def __init__(self, remember: int = 10_000) -> None:
        self._counts: OrderedDict[int, int] = OrderedDict()
        self._remember = remember

    def add(self, update_id: int) -> int:
        count = self._counts.pop(update_id, 0) + 1
        self._counts[update_id] = count
        if len(self._counts) > self._remember:
            self._counts.popitem(last=False)
        return count

    def forget(self, update_id: int) -> None:
        self._counts.pop(update_id, None)


def parse(body: bytes, bot: object) -> Update | str:
    """The update in a delivery's body, or why the bot cannot use it; NotAnUpdate for a body
    that is not an update (also a JSON text nested too deep to parse)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise NotAnUpdate("not JSON, or nested too deep") from None
    reason = incoming.admit(payload)
    if reason is not None:
        return reason
    if incoming.ESCAPED_SURROGATE.search(body):
        payload = incoming.mend_text(payload)
    try:
        return Update.de_json(incoming.trim(payload), bot)  # type: ignore[arg-type]
    except Exception:  # a field of the wrong shape deep inside
        raise NotAnUpdate("python-telegram-bot cannot parse it") from None


def create_web_app(
    application: Application,  # type: ignore[type-arg]
    secret: str,
    *,
    services: Services,
    concurrency: int = 32,
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    slots = asyncio.Semaphore(concurrency)
    failures = FailureCounts()

    async def webhook(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("webhook delivery refused: wrong or missing secret token")
            return web.Response(status=403)
        try:
            update = parse(await request.read(), application.bot)
        except NotAnUpdate as error:
            log.warning("webhook delivery refused: the body is %s", error)
            return web.Response(status=400)
        if isinstance(update, str):
            log.warning("webhook update acknowledged unused: %s", update)
            return web.Response(status=200)
        async with slots:
            with webhook_reply.delivery() as answer:
                await application.process_update(update)
        if answer.failed:
            # Telegram delivers it again later: through an outage as long as it keeps the
            # update, but a fault of this update's own only a few times.
            if answer.outage or failures.add(update.update_id) <= REDELIVERY_CAP:
                return web.Response(status=500)
            log.error(
                "update %s failed %d times; acknowledged so that Telegram stops delivering it",
                update.update_id,
                REDELIVERY_CAP + 1,
            )
            answer.call = None
        failures.forget(update.update_id)
        if answer.call is None:
            return web.Response(status=200)
        return web.json_response(answer.call)

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/healthz", health_handler(services, application, clock))
    app.router.add_get("/metrics", metrics_handler(services, application))
    return app
