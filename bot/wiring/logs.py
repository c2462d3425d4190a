"""Logging for operators: Suara's own records at the chosen level, and never a library's
DEBUG output, which carries message texts (python-telegram-bot) or SQL parameters (database
drivers) — personal data — and request URLs that hold the bot token (HTTP clients)."""

from __future__ import annotations

import logging

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
