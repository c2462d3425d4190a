"""Processed Telegram update ids: the same update delivered twice is handled once."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.dialect import insert_ignore_statement
from storage.models import processed_updates
from storage.prepared import Prepared

_CLAIM = Prepared(
    lambda dialect: insert_ignore_statement(dialect, processed_updates).returning(
        processed_updates.c.update_id
    )
)


async def claim(connection: AsyncConnection, update_id: int, at: datetime) -> bool:
    """Record the update id, processed at `at`, in the caller's unit of work, so the claim
    commits with the update's work or not at all; False if it was processed before."""
    return bool(await _CLAIM.rows(connection, update_id=update_id, processed_at=at))


async def prune(connection: AsyncConnection, before: datetime) -> int:
    """Forget ids older than Telegram keeps updates (24 h), so the table stays small."""
    result = await connection.execute(
        sa.delete(processed_updates).where(processed_updates.c.processed_at < before)
    )
    return result.rowcount
