"""Small facts about the database itself, such as the encryption canary."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import upsert
from storage.models import meta

CANARY = "crypto.canary"


async def get(connection: AsyncConnection, key: str) -> str | None:
    return await connection.scalar(sa.select(meta.c.value).where(meta.c.key == key))


async def put(connection: AsyncConnection, key: str, value: str) -> None:
    await upsert(connection, meta, {"key": key, "value": value}, keys=("key",))
