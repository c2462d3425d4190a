"""Survey sessions and their answers: the conversation state lives here, not in memory.

A session's `version` column gives optimistic concurrency: a save names the version it read and
fails if another update (or another process) saved first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import invitations
from storage import results as rollups
from storage.dialect import insert_ignore_statement
from storage.errors import VersionConflict
from storage.models import OPEN_ONLY, answers, customers, survey_sessions, surveys
from storage.prepared import Prepared

OPEN, COMPLETED, ABANDONED = "open", "completed", "abandoned"
SCRUBBED: dict[str, Any] = {}  # the state of a session that has ended
# Every write to a session moves its version on, bulk ones too: a save read before it then
# fails, instead of reopening the session or bringing back the answers its state held.
_NEXT_VERSION = {"version": survey_sessions.c.version + 1}


@dataclass(frozen=True)
class Session:
    id: int
    customer_id: int | None
    survey_id: int
    branch_id: int | None
    status: str
    state: dict[str, Any]
    version: int
    completed_at: datetime | None
    live_message_id: int | None = None
    campaign_id: int | None = None  # the campaign whose invitation opened it
    contact_consent: bool | None = None  # read only with a customer's data (`for_customer`)


@dataclass(frozen=True)
class StoredAnswer:
    question_id: str
    question_type: str
    value: Any
    skipped: bool
    answered_at: datetime


def _session(row: sa.Row) -> Session:
    return Session(
        row.id,
        row.customer_id,
        row.survey_id,
        row.branch_id,
        row.status,
        json.loads(row.state),
        row.version,
        row.completed_at,
        row.live_message_id,
        row.campaign_id,
    )


def _dump(state: Mapping[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False)


_CREATE_COLUMNS = (
    "customer_id",
    "survey_id",
    "branch_id",
    "status",
    "state",
    "version",
    "reached",
    "started_at",
    "updated_at",
    "campaign_id",
)
# One open session per customer (a partial unique index): of two taps that open a session at
# once, the second inserts nothing and continues the winner's session instead.
_CREATE = Prepared(
    lambda dialect: (
        insert_ignore_statement(
            dialect,
            survey_sessions,
            ("customer_id",),
            OPEN_ONLY,
        )
        .values({name: sa.bindparam(name) for name in _CREATE_COLUMNS})
        .returning(survey_sessions.c.id)
    )
)


async def create(
    connection: AsyncConnection,
    customer_id: int,
    survey_id: int,
    branch_id: int | None,
    state: Mapping[str, Any],
    campaign_id: int | None = None,
    *,
    at: datetime,
) -> Session:
    """Open a session at `at`, or return the customer's open one when another update opened it
    first."""
    created = await _CREATE.first(
        connection,
        customer_id=customer_id,
        survey_id=survey_id,
        branch_id=branch_id,
        status=OPEN,
        state=_dump(state),
        version=1,
        reached=state.get("current"),
        started_at=at,
        updated_at=at,
        campaign_id=campaign_id,
    )
    if created is None:
        winner = await open_for_customer(connection, customer_id)
        assert winner is not None, "an open session blocked the insert"
        return winner
    await rollups.record_start(connection, branch_id, survey_id, at)
    return Session(
        created.id,
        customer_id,
        survey_id,
        branch_id,
        OPEN,
        dict(state),
        1,
        None,
        campaign_id=campaign_id,
    )


async def get(connection: AsyncConnection, session_id: int) -> Session | None:
    statement = sa.select(survey_sessions).where(survey_sessions.c.id == session_id)
    row = (await connection.execute(statement)).first()
    return None if row is None else _session(row)


# The answer path's statements run prepared on the driver (storage.prepared).
_FOR_USER = Prepared(
    sa.select(survey_sessions, customers.c.locale.label("customer_locale"))
    .join(customers, customers.c.id == survey_sessions.c.customer_id)
    .where(
        survey_sessions.c.id == sa.bindparam("session_id"),
        customers.c.telegram_id == sa.bindparam("user"),
    )
)
_SAVE_STATEMENT = (
    sa.update(survey_sessions)
    .where(
        survey_sessions.c.id == sa.bindparam("session_id"),
        survey_sessions.c.version == sa.bindparam("read_version"),
    )
    .values(
        state=sa.bindparam("state"),
        status=sa.bindparam("status"),
        version=sa.bindparam("version"),
        updated_at=sa.bindparam("updated_at"),
        completed_at=sa.bindparam("completed_at"),
        reached=sa.func.coalesce(
            sa.bindparam("reached", type_=sa.String), survey_sessions.c.reached
        ),
        contact_consent=sa.func.coalesce(
            sa.bindparam("contact_consent", type_=sa.Boolean), survey_sessions.c.contact_consent
        ),
    )
    .returning(survey_sessions.c.id, survey_sessions.c.started_at, survey_sessions.c.reached)
)
_SAVE = Prepared(_SAVE_STATEMENT)
# A versioned UPDATE is atomic by itself: as its unit's only write it needs no transaction.
_SAVE_ALONE = Prepared(_SAVE_STATEMENT, alone=True)
_ANSWER = Prepared(
    sa.insert(answers).values(
        {column.name: sa.bindparam(column.name) for column in answers.c if column.name != "id"}
    )
)


async def get_for_telegram_user(
    connection: AsyncConnection, session_id: int, telegram_id: int
) -> tuple[Session, str] | None:
    """The session and its customer's locale, only if it belongs to this Telegram user.

    A button press names its session; this is where a press on someone else's is refused.
    """
    row = await _FOR_USER.first(connection, session_id=session_id, user=telegram_id)
    return None if row is None else (_session(row), row.customer_locale)


_OPEN_FOR_CUSTOMER = Prepared(
    sa.select(survey_sessions)
    .where(
        survey_sessions.c.customer_id == sa.bindparam("customer_id"),
        survey_sessions.c.status == OPEN,
    )
    .order_by(survey_sessions.c.id.desc())
    .limit(1)
)


async def open_for_customer(connection: AsyncConnection, customer_id: int) -> Session | None:
    row = await _OPEN_FOR_CUSTOMER.first(connection, customer_id=customer_id)
    return None if row is None else _session(row)


async def latest_for_customer(connection: AsyncConnection, customer_id: int) -> Session | None:
    statement = (
        sa.select(survey_sessions)
        .where(survey_sessions.c.customer_id == customer_id)
        .order_by(survey_sessions.c.id.desc())
        .limit(1)
    )
    row = (await connection.execute(statement)).first()
    return None if row is None else _session(row)


async def shown_in(
    connection: AsyncConnection, session_id: int, message_id: int, *, newer_only: bool
) -> tuple[bool, int | None]:
    """Note the message that now holds the session's live question, and return whether it
    does (with `newer_only`, a newer message sent meanwhile keeps it) and the message that held
    it before. The version stays: the buttons already drawn for it remain valid."""
    row = (
        await connection.execute(
            sa.select(survey_sessions.c.live_message_id)
            .where(survey_sessions.c.id == session_id)
            .with_for_update()
        )
    ).first()
    previous = None if row is None else row.live_message_id
    if newer_only and previous is not None and previous > message_id:
        return False, previous
    await connection.execute(
        sa.update(survey_sessions)
        .where(survey_sessions.c.id == session_id)
        .values(live_message_id=message_id)
    )
    return True, previous


async def last_completed(
    connection: AsyncConnection, customer_id: int, survey_key: str, branch_id: int | None
) -> Session | None:
    """The customer's latest completed run of any version of this survey at this branch."""
    statement = (
        sa.select(survey_sessions)
        .join(surveys, surveys.c.id == survey_sessions.c.survey_id)
        .where(
            survey_sessions.c.customer_id == customer_id,
            survey_sessions.c.status == COMPLETED,
            surveys.c.key == survey_key,
            survey_sessions.c.branch_id.is_(None)
            if branch_id is None
            else survey_sessions.c.branch_id == branch_id,
        )
        .order_by(survey_sessions.c.completed_at.desc())
        .limit(1)
    )
    row = (await connection.execute(statement)).first()
    return None if row is None else _session(row)


async def save(
    connection: AsyncConnection,
    session: Session,
    *,
    state: Mapping[str, Any] | None = None,
    status: str | None = None,
    contact_consent: bool | None = None,
    at: datetime,
) -> Session:
    """Write a new state, as of `at`, if nobody else has since `session` was read; else
    VersionConflict.

    Only an open session keeps its state (which may hold free text): ending one scrubs it.
    """
    return await _save(_SAVE, connection, session, state, status, at, contact_consent)


async def save_step(
    connection: AsyncConnection, session: Session, state: Mapping[str, Any], *, at: datetime
) -> Session:
    """`save` for a unit whose one write this is (a press that moves to the next question):
    it commits alone, without a transaction, and the unit may write nothing after it."""
    return await _save(_SAVE_ALONE, connection, session, state, None, at)


async def _save(
    statement: Prepared,
    connection: AsyncConnection,
    session: Session,
    state: Mapping[str, Any] | None,
    status: str | None,
    moment: datetime,
    contact_consent: bool | None = None,
) -> Session:
    status = status or session.status
    if status != OPEN:
        state = SCRUBBED
    state = session.state if state is None else dict(state)
    completed_at = moment if status == COMPLETED else session.completed_at
    saved = await statement.rows(
        connection,
        session_id=session.id,
        read_version=session.version,
        state=_dump(state),
        status=status,
        version=session.version + 1,
        updated_at=moment,
        completed_at=completed_at,
        reached=state.get("current"),
        contact_consent=contact_consent,
    )
    if not saved:
        raise VersionConflict(f"session {session.id} changed since version {session.version}")
    if session.status == OPEN and status == ABANDONED:
        ended = saved[0]
        await rollups.record_stops(
            connection, [(session.branch_id, session.survey_id, ended.started_at, ended.reached)]
        )
    return replace(
        session, status=status, state=state, version=session.version + 1, completed_at=completed_at
    )


async def complete(
    connection: AsyncConnection,
    session: Session,
    results: Iterable[tuple[str, str, Any]],
    contact_consent: bool | None = None,
    *,
    at: datetime,
) -> Session:
    """End a session at `at` with its answers, (question id, type, value) each, all or nothing, and
    whether the customer agreed to be contacted about them (None: the survey did not ask).

    While a session is open its encrypted state holds every answer durably; the answers table
    receives them once, when the path is final, so the summaries see whole responses only.
    """
    results = list(results)
    ended = await save(
        connection, session, status=COMPLETED, contact_consent=contact_consent, at=at
    )
    await rollups.record_completion(connection, session.branch_id, session.survey_id, at, results)
    if session.campaign_id is not None and session.customer_id is not None:
        await invitations.record_response(connection, session.campaign_id, session.customer_id)
    await _ANSWER.many(
        connection,
        [
            {
                "session_id": session.id,
                "question_id": question_id,
                "question_type": question_type,
                "answered_at": at,
                **answer_columns(question_type, value),
            }
            for question_id, question_type, value in results
        ],
    )
    return ended


def answer_columns(question_type: str, value: Any) -> dict[str, Any]:
    """Spread a normalised engine value over the typed answer columns."""
    columns: dict[str, Any] = {
        "value_number": None,
        "value_choice": None,
        "value_text": None,
        "skipped": value is None,
    }
    if value is None:
        return columns
    if question_type in ("rating", "nps", "ces", "number"):
        columns["value_number"] = float(value)
    elif question_type == "yesno":
        columns["value_number"] = 1.0 if value else 0.0
    elif question_type == "choice":
        columns["value_choice"] = value
    elif question_type == "multi":
        columns["value_choice"] = ",".join(value)
    else:
        columns["value_text"] = value
    return columns


def answer_value(row: sa.Row) -> Any:
    """An answer row back as the engine's normalised value (None when skipped)."""
    if row.skipped:
        return None
    kind = row.question_type
    if kind in ("rating", "nps", "ces"):
        return int(row.value_number)
    if kind == "number":
        return int(row.value_number) if row.value_number.is_integer() else row.value_number
    if kind == "yesno":
        return row.value_number == 1.0
    if kind == "choice":
        return row.value_choice
    if kind == "multi":
        return row.value_choice.split(",") if row.value_choice else []
    return row.value_text


async def answers_of(connection: AsyncConnection, session_id: int) -> list[StoredAnswer]:
    rows = await connection.execute(
        sa.select(answers).where(answers.c.session_id == session_id).order_by(answers.c.id)
    )
    return [
        StoredAnswer(r.question_id, r.question_type, answer_value(r), r.skipped, r.answered_at)
        for r in rows
    ]


async def for_customer(connection: AsyncConnection, customer_id: int) -> list[Session]:
    rows = await connection.execute(
        sa.select(survey_sessions)
        .where(survey_sessions.c.customer_id == customer_id)
        .order_by(survey_sessions.c.id)
    )
    return [replace(_session(row), contact_consent=row.contact_consent) for row in rows]


async def detach_customer(connection: AsyncConnection, customer_id: int, at: datetime) -> int:
    """Unlink a customer's sessions (as of `at`) and drop their free text; rated answers stay,
    anonymous.

    An open session ends (abandoned). Returns the number of sessions detached.
    """
    owned = sa.select(survey_sessions.c.id).where(survey_sessions.c.customer_id == customer_id)
    await connection.execute(
        sa.update(answers).where(answers.c.session_id.in_(owned)).values(value_text=None)
    )
    ended = await connection.execute(
        sa.update(survey_sessions)
        .where(survey_sessions.c.customer_id == customer_id, survey_sessions.c.status == OPEN)
        .values(status=ABANDONED, **_NEXT_VERSION)
        .returning(
            survey_sessions.c.branch_id,
            survey_sessions.c.survey_id,
            survey_sessions.c.started_at,
            survey_sessions.c.reached,
        )
    )
    await rollups.record_stops(connection, [tuple(row) for row in ended])
    result = await connection.execute(
        sa.update(survey_sessions)
        .where(survey_sessions.c.customer_id == customer_id)
        .values(customer_id=None, state=_dump(SCRUBBED), updated_at=at, **_NEXT_VERSION)
    )
    return result.rowcount


async def free_text_before(connection: AsyncConnection, cutoff: datetime) -> int:
    """How many free-text answers were given in sessions last touched before `cutoff`."""
    count = await connection.scalar(
        sa.select(sa.func.count())
        .select_from(answers.join(survey_sessions, survey_sessions.c.id == answers.c.session_id))
        .where(survey_sessions.c.updated_at < cutoff, answers.c.value_text.is_not(None))
    )
    return int(count or 0)


async def open_before(connection: AsyncConnection, cutoff: datetime) -> int:
    """How many sessions are still open but untouched since `cutoff`."""
    count = await connection.scalar(
        sa.select(sa.func.count())
        .select_from(survey_sessions)
        .where(survey_sessions.c.updated_at < cutoff, survey_sessions.c.status == OPEN)
    )
    return int(count or 0)


async def purge_before(connection: AsyncConnection, cutoff: datetime) -> tuple[int, int]:
    """Drop free text from sessions last touched before `cutoff` and end those still open.

    Returns (free-text answers dropped, sessions ended); rated answers stay for the summaries.
    """
    old = sa.select(survey_sessions.c.id).where(survey_sessions.c.updated_at < cutoff)
    texts = await connection.execute(
        sa.update(answers)
        .where(answers.c.session_id.in_(old), answers.c.value_text.is_not(None))
        .values(value_text=None)
    )
    ended = [
        tuple(row)
        for row in await connection.execute(
            sa.update(survey_sessions)
            .where(survey_sessions.c.updated_at < cutoff, survey_sessions.c.status == OPEN)
            .values(status=ABANDONED, state=_dump(SCRUBBED), **_NEXT_VERSION)
            .returning(
                survey_sessions.c.branch_id,
                survey_sessions.c.survey_id,
                survey_sessions.c.started_at,
                survey_sessions.c.reached,
            )
        )
    ]
    await rollups.record_stops(connection, ended)
    return texts.rowcount, len(ended)
