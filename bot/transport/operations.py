"""`/metrics` in Prometheus's text format and `/healthz`, for the webhook server and, in
polling mode, a small server of their own on METRICS_PORT.

`/healthz` is ready when the database answers and takes writes. Its whole answer is made at
most once per `HEALTH_TTL` and then served as the same bytes: a flood of probes costs the
event loop, which customers share, little more than aiohttp's handling of each request.

Counters kept in this process (updates, sends, 429s) come from the services; figures the
database holds (answers, open sessions, the send queue) are read at each scrape, so every
process reports the same truth about them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from telegram.ext import Application

from bot.wiring.services import Services
from storage import campaigns as campaign_store
from storage.db import describe
from storage.stats import totals

log = logging.getLogger(__name__)
SENDER_STALE = 10.0  # seconds without a look for work: the sender is stuck
HEALTH_TTL = 1.0  # seconds a health answer is reused
Handler = Callable[[web.Request], Awaitable[web.Response]]


class _Snapshot:
    """One scrape's figures, handed to prometheus-client as a collector."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families


UPDATES_KEY = "updates_handled"


async def count_update(_update: object, context: Any) -> None:
    """Runs before every handler, in a group of its own: one more update handled here."""
    context.bot_data[UPDATES_KEY] = context.bot_data.get(UPDATES_KEY, 0) + 1


async def render(services: Services, application: Application) -> bytes:  # type: ignore[type-arg]
    async def read(connection: Any) -> tuple[int, int, int]:
        answers, open_sessions = await totals(connection)
        depth = await campaign_store.pending_count(connection, services.sender.clock())
        return answers, open_sessions, depth

    answers, open_sessions, depth = await services.db.run(read)
    stats = services.sender.stats
    families: list[Any] = []

    def counter(name: str, text: str, value: float) -> None:
        family = CounterMetricFamily(name, text)
        family.add_metric([], value)
        families.append(family)

    def gauge(name: str, text: str, value: float) -> None:
        family = GaugeMetricFamily(name, text)
        family.add_metric([], value)
        families.append(family)

    updates = application.bot_data.get(UPDATES_KEY, 0)
    counter("suara_updates_handled", "Telegram updates handled by this process", updates)
    counter("suara_answers_recorded", "Answers stored, all processes", answers)
    counter("suara_messages_sent", "Campaign messages sent by this process", stats.sent)
    counter("suara_messages_failed", "Campaign messages failed in this process", stats.failed)
    counter("suara_messages_blocked", "Customers found to have blocked the bot", stats.blocked)
    counter("suara_flood_waits", "429 answers received by this process", services.pacer.flood_waits)
    gauge("suara_send_queue_depth", "Campaign deliveries due and not yet sent", depth)
    gauge("suara_open_sessions", "Surveys in progress", open_sessions)
    gauge("suara_sender_leader", "1 if this process is the campaign sender", int(stats.leader))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))  # type: ignore[arg-type]
    return generate_latest(registry)


def health_details(services: Services, application: Application) -> dict[str, str]:  # type: ignore[type-arg]
    """The scheduler and the sender, beside the database check of `/healthz`."""
    queue = application.job_queue
    scheduler = "ok" if queue is not None and queue.scheduler.running else "stopped"
    stats = services.sender.stats
    if time.monotonic() - stats.last_tick > SENDER_STALE:
        sender = "stalled"
    else:
        sender = "leader" if stats.leader else "standby"
    return {"database": "ok", "scheduler": scheduler, "sender": sender}


def metrics_handler(services: Services, application: Application) -> Any:  # type: ignore[type-arg]
    async def metrics(_request: web.Request) -> web.Response:
        body = await render(services, application)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


async def _check_database(services: Services) -> tuple[int, dict[str, str]]:
    """The health check's verdict: the database answers, and a write goes through."""
    try:
        await services.db.ping()
    except Exception as error:
        log.warning("health check: the database does not answer (%s)", describe(error))
        return 503, {"status": "database unavailable"}
    try:
        await services.db.check_writable()
    except Exception as error:
        log.warning("health check: the database takes no writes (%s)", describe(error))
        return 503, {"status": "database takes no writes"}
    return 200, {"status": "ok"}


def health_handler(
    services: Services,
    application: Application,  # type: ignore[type-arg]
    clock: Callable[[], float] = time.monotonic,
) -> Handler:
    """`/healthz`: the verdict with the scheduler's and the sender's state, as JSON."""
    answer: tuple[int, bytes] | None = None
    made_at = 0.0
    making = asyncio.Lock()

    async def healthz(_request: web.Request) -> web.Response:
        nonlocal answer, made_at
        if answer is None or clock() - made_at >= HEALTH_TTL:
            async with making:  # probes arriving together share one check
                if answer is None or clock() - made_at >= HEALTH_TTL:
                    status, body = await _check_database(services)
                    if status == 200:
                        body |= health_details(services, application)
                    answer, made_at = (status, json.dumps(body).encode()), clock()
        status, data = answer
        return web.Response(body=data, status=status, content_type="application/json")

    return healthz


def operations_app(
    services: Services,
    application: Application,  # type: ignore[type-arg]
    clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """`/metrics` and `/healthz` on their own, for polling mode."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(services, application))
    app.router.add_get("/healthz", health_handler(services, application, clock))
    return app
