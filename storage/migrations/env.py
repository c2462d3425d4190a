"""Alembic environment: runs on the application's connection, or on DATABASE_URL from the CLI."""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy import Connection

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
        async with engine.begin() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


given = config.attributes.get("connection")
if given is not None:
    _migrate(given)
else:
    if config.config_file_name:
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_migrate_from_settings())
