"""Logging for operators: Suara's own records at the chosen level, and never a library's
DEBUG output, which carries message texts (python-telegram-bot) or SQL parameters (database
drivers) — personal data — and request URLs that hold the bot token (HTTP clients)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Libraries whose DEBUG (and for HTTP access logs, INFO) records may hold personal data or secrets.
QUIET = {
    "telegram": logging.INFO,
    "aiosqlite": logging.INFO,
    "asyncpg": logging.INFO,
    "sqlalchemy": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "apscheduler": logging.INFO,
    "alembic": logging.WARNING,
}


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    for name, floor in QUIET.items():
        logging.getLogger(name).setLevel(max(floor, logging.getLevelName(level)))


class FaultTally:
    """A fault that repeats, such as a database outage, logged once per interval with how
    many times it happened since, instead of a traceback per update (a 20 s PostgreSQL outage
    once wrote 960). `clock` is an input so tests move time without sleeping."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger, self._what, self._interval, self._clock = logger, what, interval, clock
        self._logged_at = self._seen_at = -float("inf")
        self._count = 0

    def record(self, detail: str) -> None:
        """Count one occurrence; log when none was logged within the interval."""
        now = self._clock()
        fresh = now - self._seen_at >= self._interval  # none for a while: a new outage
        if fresh:
            self._flush(self._seen_at, detail)  # what the last one left uncounted
            self._logger.error("%s (%s); the next ones are counted", self._what, detail)
            self._logged_at = now
        else:
            self._count += 1
            if now - self._logged_at >= self._interval:
                self._flush(now, detail)
        self._seen_at = now

    def _flush(self, until: float, detail: str) -> None:
        if self._count:
            self._logger.error(
                "%s: %d more failures in the last %.0f s (%s)",
                self._what,
                self._count,
                until - self._logged_at,
                detail,
            )
        self._logged_at, self._count = until, 0
