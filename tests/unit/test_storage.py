"""Repositories against a real database (SQLite, or PostgreSQL with SUARA_TEST_DATABASE)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from storage import audit, orgs, sessions, surveys, updates
from storage import customers as customer_store
from storage.db import Database
from storage.errors import VersionConflict
from storage.models import audit_log, survey_sessions

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # every write here happens then


async def _customer(db: Database, telegram_id: int = 42) -> customer_store.Customer:
    async with db.transaction() as connection:
        return await customer_store.record_decision(
            connection, telegram_id, "v1", True, "id", at=AT
        )


async def _session(db: Database) -> sessions.Session:
    customer = await _customer(db)
    async with db.transaction() as connection:
        version, _ = await surveys.register(connection, "s", "text", "c1")
        return await sessions.create(connection, customer.id, version.id, None, {"a": 1}, at=AT)


async def test_update_ids_are_claimed_once(db: Database) -> None:
    async with db.transaction() as connection:
        assert await updates.claim(connection, 7, AT) is True
    async with db.transaction() as connection:
        assert await updates.claim(connection, 7, AT) is False
        assert await updates.claim(connection, 8, AT) is True


async def test_a_claim_rolls_back_with_its_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as connection:
            await updates.claim(connection, 9, AT)
            raise RuntimeError("handler failed")
    async with db.transaction() as connection:
        assert await updates.claim(connection, 9, AT) is True


async def test_versioned_save_refuses_a_stale_read(db: Database) -> None:
    session = await _session(db)
    async with db.transaction() as connection:
        saved = await sessions.save(connection, session, state={"a": 2}, at=AT)
    assert saved.version == session.version + 1
    with pytest.raises(VersionConflict):
        async with db.transaction() as connection:
            await sessions.save(connection, session, state={"a": 3}, at=AT)
    async with db.transaction() as connection:
        fresh = await sessions.get(connection, session.id)
    assert fresh is not None and fresh.state == {"a": 2}


@pytest.mark.parametrize("ending", ["erasure", "retention"])
async def test_a_session_ended_in_bulk_refuses_a_save_read_before(
    db: Database, ending: str
) -> None:
    """A press read before an erasure or a purge must not reopen the session nor bring back
    the answers its state held."""
    session = await _session(db)
    async with db.transaction() as connection:
        if ending == "erasure":
            assert session.customer_id is not None
            await sessions.detach_customer(connection, session.customer_id, AT)
        else:
            await sessions.purge_before(connection, AT + timedelta(days=1))
    with pytest.raises(VersionConflict):
        async with db.transaction() as connection:
            await sessions.save(connection, session, state={"a": 2}, at=AT)
    async with db.transaction() as connection:
        ended = await sessions.get(connection, session.id)
    assert ended is not None and (ended.status, ended.state) == (sessions.ABANDONED, {})


async def test_state_is_encrypted_at_rest(db: Database) -> None:
    session = await _session(db)
    async with db.transaction() as connection:
        await sessions.save(connection, session, state={"comment": "antrean terlalu lama"}, at=AT)
        raw = await connection.scalar(
            sa.select(sa.type_coerce(survey_sessions.c.state, sa.Text)).where(
                survey_sessions.c.id == session.id
            )
        )
    assert "antrean" not in raw


async def test_a_completed_session_keeps_its_answers_and_scrubs_its_state(db: Database) -> None:
    session = await _session(db)
    values = {
        "csat": ("rating", 4),
        "nps": ("nps", 0),
        "ok": ("yesno", False),
        "why": ("choice", "queue"),
        "fix": ("multi", ["queue", "staff"]),
        "note": ("text", "ramah"),
        "n": ("number", 2.5),
        "opt": ("text", None),
    }
    results = [(qid, kind, value) for qid, (kind, value) in values.items()]
    ended = await db.run(lambda connection: sessions.complete(connection, session, results, at=AT))
    assert (ended.status, ended.state, ended.version) == ("completed", {}, session.version + 1)
    async with db.transaction() as connection:
        stored = {a.question_id: a for a in await sessions.answers_of(connection, session.id)}
        fresh = await sessions.get(connection, session.id)
    assert {qid: a.value for qid, a in stored.items()} == {
        qid: value for qid, (_, value) in values.items()
    }
    assert stored["opt"].skipped is True
    assert fresh == ended
    with pytest.raises(VersionConflict):  # a session completes once
        await db.run(lambda connection: sessions.complete(connection, session, results, at=AT))
    async with db.transaction() as connection:
        assert len(await sessions.answers_of(connection, session.id)) == len(values)


async def test_a_press_only_finds_its_own_session(db: Database) -> None:
    session = await _session(db)
    async with db.transaction() as connection:
        assert await sessions.get_for_telegram_user(connection, session.id, 42) is not None
        assert await sessions.get_for_telegram_user(connection, session.id, 43) is None


async def test_survey_versions_follow_the_text(db: Database) -> None:
    async with db.transaction() as connection:
        first, new = await surveys.register(connection, "s", "one", "c1")
        again, new_again = await surveys.register(connection, "s", "one", "c1")
        second, _ = await surveys.register(connection, "s", "two", "c2")
        latest = await surveys.latest(connection, "s")
    assert (first.version, new, again.id, new_again, second.version) == (
        1,
        True,
        first.id,
        False,
        2,
    )
    assert latest == second


async def test_orgs_upsert_by_code(db: Database) -> None:
    async with db.transaction() as connection:
        region = await orgs.ensure_region(connection, "JKT", "Jakarta")
        branch = await orgs.ensure_branch(connection, "JKT01", "Sudirman", region)
        renamed = await orgs.ensure_branch(connection, "JKT01", "Sudirman Raya", region)
        found = await orgs.branch_by_code(connection, "jkt01")
    assert renamed.id == branch.id and found is not None and found.name == "Sudirman Raya"


async def test_audit_chain_detects_tampering(db: Database) -> None:
    async with db.transaction() as connection:
        for n in range(3):
            await audit.append(
                connection, "customer:1", "customer.consent", details={"n": n}, at=AT
            )
        assert await audit.verify(connection) is None
        second = (await audit.entries(connection))[1]
        await connection.execute(
            sa.update(audit_log).where(audit_log.c.id == second.id).values(outcome="refused")
        )
        assert await audit.verify(connection) == second.id


async def test_old_update_ids_are_forgotten(db: Database) -> None:
    async with db.transaction() as connection:
        await updates.claim(connection, 1, AT)
        assert await updates.prune(connection, AT - timedelta(hours=1)) == 0
        assert await updates.prune(connection, AT + timedelta(seconds=1)) == 1
        assert await updates.claim(connection, 1, AT) is True
