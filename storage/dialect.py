"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def _insert(connection: AsyncConnection, table: sa.Table) -> Any:
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    return module.insert(table)


async def insert_ignore(
    connection: AsyncConnection, table: sa.Table, values: Mapping[str, Any]
) -> bool:
    """Insert unless the key exists; True when a row was inserted."""
    statement = _insert(connection, table).values(**values).on_conflict_do_nothing()
    result = await connection.execute(statement)
    return result.rowcount == 1


async def upsert(
    connection: AsyncConnection,
    table: sa.Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
) -> None:
    """Insert, or update every non-key column of the row with the same keys."""
    statement = _insert(connection, table).values(**values)
    changes = {name: statement.excluded[name] for name in values if name not in keys}
    await connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))
