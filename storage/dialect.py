"""The few statements whose spelling differs between SQLite and PostgreSQL.

They are built once per shape and reused with fresh parameters: on the answer path, building an
upsert costs more CPU than running it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_ignore_statement(
    dialect: str,
    table: sa.Table,
    keys: tuple[str, ...] | None = None,
    where: sa.ColumnElement[bool] | None = None,
) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` as `dialect` spells it; with `keys` (and `where`, for
    a partial unique index) only a conflict on that index is ignored."""
    module = postgresql if dialect == "postgresql" else sqlite
    if keys is None:
        return module.insert(table).on_conflict_do_nothing()
    return module.insert(table).on_conflict_do_nothing(index_elements=list(keys), index_where=where)


@cache
def _upsert(dialect: str, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table)
    changes = {name: statement.excluded[name] for name in columns if name not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)


async def upsert(
    connection: AsyncConnection,
    table: sa.Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
) -> None:
    """Insert, or update every non-key column of the row with the same keys."""
    statement = _upsert(connection.dialect.name, table, tuple(values), tuple(keys))
    await connection.execute(statement, values)
