"""`/metrics` in Prometheus's text format and the health details, for the webhook server and,
in polling mode, a small server of their own on METRICS_PORT.

Counters kept in this process (updates, sends, 429s) come from the services; figures the
database holds (answers, open sessions, the send queue) are read at each scrape, so every
process reports the same truth about them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from telegram.ext import Application

from bot.wiring.services import Services
from storage import campaigns as campaign_store
from storage.stats import totals

log = logging.getLogger(__name__)
SENDER_STALE = 10.0  # seconds without a look for work: the sender is stuck


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


def operations_app(services: Services, application: Application) -> web.Application:  # type: ignore[type-arg]
    """`/metrics` and `/healthz` on their own, for polling mode."""

    async def healthz(_request: web.Request) -> web.Response:
        try:
            await services.db.ping()
        except Exception:
            log.warning("health check: the database does not answer")
            return web.json_response({"status": "database unavailable"}, status=503)
        return web.json_response({"status": "ok", **health_details(services, application)})

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(services, application))
    app.router.add_get("/healthz", healthz)
    return app
