"""Alembic environment: runs on the application's connection, or on DATABASE_URL from the CLI."""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import metadata

config = context.config
target_metadata = metadata


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_from_settings() -> None:
    from storage.db import create_engine
    from storage.settings import database_url

    engine = create_engine(database_url())
    try:
        await _reachable(engine)
        async with engine.begin() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


async def _reachable(engine: AsyncEngine) -> None:
    """Exit with one sentence, not a driver traceback, when the database cannot be reached."""
    from storage.db import UNREACHABLE, unreachable

    try:
        async with engine.connect():
            pass
    except UNREACHABLE as error:
        url = engine.url.render_as_string(hide_password=False)
        raise SystemExit(f"alembic: {unreachable(url, error)}") from None


given = config.attributes.get("connection")
if given is not None:
    _migrate(given)
else:
    if config.config_file_name:
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_migrate_from_settings())
