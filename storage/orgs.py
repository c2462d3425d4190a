"""Regions and branches: the bank's organisation that scopes results and access."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import branches, regions
from storage.prepared import Prepared


@dataclass(frozen=True)
class Region:
    id: int
    code: str
    name: str


@dataclass(frozen=True)
class Branch:
    id: int
    code: str
    name: str
    region_id: int
    timezone: str
    survey_key: str | None


def _branch(row: sa.Row) -> Branch:
    return Branch(row.id, row.code, row.name, row.region_id, row.timezone, row.survey_key)


async def ensure_region(connection: AsyncConnection, code: str, name: str) -> Region:
    """Create the region or rename the existing one with that code."""
    found = (await connection.execute(sa.select(regions).where(regions.c.code == code))).first()
    if found is None:
        result = await connection.execute(sa.insert(regions).values(code=code, name=name))
        return Region(result.inserted_primary_key[0], code, name)
    if found.name != name:
        await connection.execute(
            sa.update(regions).where(regions.c.id == found.id).values(name=name)
        )
    return Region(found.id, code, name)


async def ensure_branch(
    connection: AsyncConnection,
    code: str,
    name: str,
    region: Region,
    timezone: str = "Asia/Jakarta",
    survey_key: str | None = None,
) -> Branch:
    """Create the branch or bring the existing one with that code up to date."""
    values = {"name": name, "region_id": region.id, "timezone": timezone, "survey_key": survey_key}
    found = (
        await connection.execute(sa.select(branches.c.id).where(branches.c.code == code))
    ).first()
    if found is None:
        result = await connection.execute(sa.insert(branches).values(code=code, **values))
        branch_id = result.inserted_primary_key[0]
    else:
        branch_id = found.id
        await connection.execute(
            sa.update(branches).where(branches.c.id == branch_id).values(**values)
        )
    return Branch(branch_id, code, name, region.id, timezone, survey_key)


_BRANCH_BY_CODE = Prepared(
    sa.select(branches).where(sa.func.upper(branches.c.code) == sa.bindparam("code"))
)


async def branch_by_code(connection: AsyncConnection, code: str) -> Branch | None:
    """The branch a deep link names, whatever the case of its code (`/start b_jkt01`)."""
    row = await _BRANCH_BY_CODE.first(connection, code=code.upper())
    return None if row is None else _branch(row)


async def branch_by_id(connection: AsyncConnection, branch_id: int) -> Branch | None:
    row = (await connection.execute(sa.select(branches).where(branches.c.id == branch_id))).first()
    return None if row is None else _branch(row)


async def all_branches(connection: AsyncConnection) -> list[Branch]:
    rows = await connection.execute(sa.select(branches).order_by(branches.c.code))
    return [_branch(row) for row in rows]


async def all_regions(connection: AsyncConnection) -> list[Region]:
    rows = await connection.execute(sa.select(regions).order_by(regions.c.code))
    return [Region(row.id, row.code, row.name) for row in rows]


async def set_survey(connection: AsyncConnection, codes: list[str], survey_key: str) -> None:
    """Make these branches' QR codes open `survey_key`."""
    if codes:
        await connection.execute(
            sa.update(branches).where(branches.c.code.in_(codes)).values(survey_key=survey_key)
        )
