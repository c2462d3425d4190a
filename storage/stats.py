"""Totals for operations: cheap counts read at each metrics scrape."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import answers, survey_sessions


async def totals(connection: AsyncConnection) -> tuple[int, int]:
    """(answers recorded, sessions open)."""
    recorded = await connection.scalar(sa.select(sa.func.count()).select_from(answers))
    open_sessions = await connection.scalar(
        sa.select(sa.func.count())
        .select_from(survey_sessions)
        .where(survey_sessions.c.status == "open")
    )
    return int(recorded or 0), int(open_sessions or 0)
