"""The append-only audit log; each row's hash covers the previous row's, so edits show.

`verify` walks the chain and reports the first row whose hash does not match its content.
Details must never hold secrets, codes or personal data: callers pass ids and outcomes only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import audit_log

GENESIS = "0" * 64
_LOCK_KEY = 0x5A_0A_0D_17  # PostgreSQL advisory lock that serialises appends


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]


def _digest(
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    target: str | None,
    outcome: str,
    details: str,
) -> str:
    body = json.dumps(
        [prev_hash, at.isoformat(timespec="microseconds"), actor, action, target, outcome, details],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()


async def append(
    connection: AsyncConnection,
    actor: str,
    action: str,
    *,
    target: str | None = None,
    outcome: str = "done",
    details: Mapping[str, Any] | None = None,
    at: datetime,
) -> None:
    """Add one entry, stamped `at`, in the caller's transaction, chained to the newest one."""
    if connection.dialect.name == "postgresql":
        await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
    previous = await connection.scalar(
        sa.select(audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
    )
    prev_hash = previous or GENESIS
    text = json.dumps(
        dict(details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    digest = _digest(prev_hash, at, actor, action, target, outcome, text)
    await connection.execute(
        sa.insert(audit_log).values(
            at=at,
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            details=text,
            prev_hash=prev_hash,
            hash=digest,
        )
    )


@dataclass(frozen=True)
class ChainCheck:
    """The chain as found: its length and last hash (the head an operator records), the first
    row that breaks it, and whether a recorded head was found in it."""

    rows: int
    head: str
    broken: int | None
    head_missing: bool = False

    @property
    def intact(self) -> bool:
        return self.broken is None and not self.head_missing


async def check_chain(
    connection: AsyncConnection, recorded: tuple[int, str] | None = None
) -> ChainCheck:
    """Walk the chain. With a recorded head (row count and hash), rows cut off the end, or a
    chain rewritten from some row on, show as the recorded head missing."""
    prev_hash = GENESIS
    count = 0
    broken: int | None = None
    head_seen = recorded is None
    rows = await connection.stream(sa.select(audit_log).order_by(audit_log.c.id))
    async for row in rows:
        count += 1
        expected = _digest(
            prev_hash, row.at, row.actor, row.action, row.target, row.outcome, row.details
        )
        if broken is None and (row.prev_hash != prev_hash or row.hash != expected):
            broken = row.id
        if recorded is not None and count == recorded[0]:
            head_seen = row.hash == recorded[1]
        prev_hash = row.hash
    return ChainCheck(count, prev_hash, broken, head_missing=not head_seen)


async def verify(connection: AsyncConnection) -> int | None:
    """The id of the first entry that breaks the chain, or None when it is intact."""
    return (await check_chain(connection)).broken


async def entries(
    connection: AsyncConnection, *, actor: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    statement = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if actor is not None:
        statement = statement.where(audit_log.c.actor == actor)
    rows = await connection.execute(statement)
    return [
        AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.outcome, json.loads(r.details))
        for r in rows
    ]
