"""Survey versions and the links that open them.

A survey file's text is stored whole, with its checksum: a changed file becomes a new version,
and every session pins the version it started on.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import now, survey_links, surveys
from storage.prepared import Prepared


@dataclass(frozen=True)
class SurveyVersion:
    id: int
    key: str
    version: int
    source: str
    checksum: str


@dataclass(frozen=True)
class SurveyLink:
    token: str
    survey_key: str
    branch_id: int | None
    expires_at: datetime | None


def _version(row: sa.Row) -> SurveyVersion:
    return SurveyVersion(row.id, row.key, row.version, row.source, row.checksum)


async def register(
    connection: AsyncConnection, key: str, source: str, checksum: str
) -> tuple[SurveyVersion, bool]:
    """Store a survey text unless that exact text is stored; True when a new version was made."""
    same = await connection.execute(
        sa.select(surveys).where(surveys.c.key == key, surveys.c.checksum == checksum)
    )
    if (row := same.first()) is not None:
        return _version(row), False
    latest = await connection.scalar(
        sa.select(sa.func.max(surveys.c.version)).where(surveys.c.key == key)
    )
    version = (latest or 0) + 1
    result = await connection.execute(
        sa.insert(surveys).values(
            key=key, version=version, source=source, checksum=checksum, created_at=now()
        )
    )
    return SurveyVersion(result.inserted_primary_key[0], key, version, source, checksum), True


_LATEST = Prepared(
    sa.select(surveys)
    .where(surveys.c.key == sa.bindparam("key"))
    .order_by(surveys.c.version.desc())
    .limit(1)
)


async def latest(connection: AsyncConnection, key: str) -> SurveyVersion | None:
    row = await _LATEST.first(connection, key=key)
    return None if row is None else _version(row)


async def by_id(connection: AsyncConnection, survey_id: int) -> SurveyVersion | None:
    row = (await connection.execute(sa.select(surveys).where(surveys.c.id == survey_id))).first()
    return None if row is None else _version(row)


async def create_link(
    connection: AsyncConnection,
    survey_key: str,
    branch_id: int | None = None,
    expires_at: datetime | None = None,
) -> SurveyLink:
    """A short random token for a `c_<token>` deep link (well under the 64-character limit)."""
    token = secrets.token_urlsafe(9)
    await connection.execute(
        sa.insert(survey_links).values(
            token=token,
            survey_key=survey_key,
            branch_id=branch_id,
            expires_at=expires_at,
            created_at=now(),
        )
    )
    return SurveyLink(token, survey_key, branch_id, expires_at)


async def link(connection: AsyncConnection, token: str) -> SurveyLink | None:
    row = (
        await connection.execute(sa.select(survey_links).where(survey_links.c.token == token))
    ).first()
    return (
        None
        if row is None
        else SurveyLink(row.token, row.survey_key, row.branch_id, row.expires_at)
    )


async def links(connection: AsyncConnection) -> list[SurveyLink]:
    rows = await connection.execute(sa.select(survey_links).order_by(survey_links.c.id))
    return [SurveyLink(r.token, r.survey_key, r.branch_id, r.expires_at) for r in rows]


async def summary(connection: AsyncConnection) -> list[tuple[str, int]]:
    """Every survey key with its latest version number, by key."""
    rows = await connection.execute(
        sa.select(surveys.c.key, sa.func.max(surveys.c.version))
        .group_by(surveys.c.key)
        .order_by(surveys.c.key)
    )
    return [(row[0], row[1]) for row in rows]


async def keys(connection: AsyncConnection) -> set[str]:
    """The keys of every survey stored in the catalog."""
    return set(await connection.scalars(sa.select(surveys.c.key).distinct()))
