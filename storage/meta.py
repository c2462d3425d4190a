"""Small facts about the database itself, such as the encryption canary."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import upsert
from storage.models import meta
from storage.prepared import Prepared

CANARY = "crypto.canary"


# Prepared: a survey preview is looked up on every text a customer types.
_GET = Prepared(sa.select(meta.c.value).where(meta.c.key == sa.bindparam("key")))


async def get(connection: AsyncConnection, key: str) -> str | None:
    row = await _GET.first(connection, key=key)
    return None if row is None else row.value


async def put(connection: AsyncConnection, key: str, value: str) -> None:
    await upsert(connection, meta, {"key": key, "value": value}, keys=("key",))


async def delete(connection: AsyncConnection, key: str) -> None:
    await connection.execute(sa.delete(meta).where(meta.c.key == key))
