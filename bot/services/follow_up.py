"""The closed loop: detractor alerts to the branch's staff, follow-ups, escalation.

A finished response at or below its survey's alert thresholds (flows.scoring.alerting), at a
branch where someone takes alerts, opens a follow-up in the very transaction that completes the
session, so nothing is lost and the customer never waits for the alert: the alert goes out
from a job that claims it (at most once). Staff take and resolve follow-ups with a note; those
left unresolved for `FOLLOW_UP_ESCALATE_HOURS` go once to the admins of the branch's region
(the super admins when the region has none), claimed by an idempotent tick driven by the clock.

Only staff who receive alerts can follow up, so the outro promises a follow-up exactly when an
active staff member with the branch in scope has alerts on (`follow_up_promised`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services.access import Org, Scope
from bot.services.clock import Clock, system_clock
from bot.services.staff import SYSTEM, Actor, Refused, StaffAccess, Who
from bot.services.surveys import SurveyCatalog
from flows.schema import QuestionType, Survey
from flows.scoring import alerting
from storage import audit
from storage import follow_ups as store
from storage import sessions as session_store
from storage.db import Database
from storage.follow_ups import FollowUp, Recipient

NOTE_TTL = timedelta(minutes=15)  # how long a Resolve press waits for its note
MAX_NOTE = 1000  # characters kept of a note
MAX_COMMENT = 600  # characters of each comment shown in an alert
LISTED = 30  # follow-ups /followups shows


async def follow_up_promised(connection: AsyncConnection, branch_id: int | None) -> bool:
    """True when an active staff member with this branch in scope has alerts on: then a
    detractor's answers reach someone who can follow up, and the outro may say so."""
    return branch_id is not None and await store.alerted_branch(connection, branch_id)


async def open_follow_up(
    connection: AsyncConnection,
    survey: Survey,
    session_id: int,
    branch_id: int | None,
    answers: Mapping[str, Any],
    at: datetime,
) -> tuple[bool, bool]:
    """On completion, in its transaction: (the outro may promise a follow-up, an alert is
    due). A follow-up opens only where the promise is made, so every one has a reader."""
    if not await follow_up_promised(connection, branch_id):
        return False, False
    assert branch_id is not None
    if not alerting(survey, answers):
        return True, False
    await store.open_one(connection, session_id, branch_id, at)
    return True, True


@dataclass(frozen=True)
class Score:
    question_id: str
    kind: str  # rating | nps | ces
    value: int
    high: int  # the top of its scale
    alerting: bool


@dataclass(frozen=True)
class Alert:
    """One follow-up to show to its recipients, each in their own language."""

    follow_up: FollowUp
    survey: Survey
    scores: tuple[Score, ...]
    comments: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    escalated: bool = False


@dataclass(frozen=True)
class AlertsState:
    locale: str
    on: bool


@dataclass(frozen=True)
class FollowUpList:
    locale: str
    items: tuple[FollowUp, ...]
    total: int
    at: datetime


@dataclass(frozen=True)
class FollowUpTaken:
    locale: str
    follow_up_id: int


@dataclass(frozen=True)
class NoteAsked:
    locale: str
    follow_up_id: int


@dataclass(frozen=True)
class FollowUpResolved:
    locale: str
    follow_up_id: int


@dataclass(frozen=True)
class NotANote:
    """The text was not a note anyone asked for: it goes on to the conversation."""


Outcome = AlertsState | FollowUpList | FollowUpTaken | NoteAsked | FollowUpResolved | Refused


class FollowUps:
    """Alerts, follow-ups and escalation; staff commands authorised and audited by StaffAccess."""

    def __init__(
        self,
        db: Database,
        catalog: SurveyCatalog,
        staff: StaffAccess,
        *,
        escalate_hours: float,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._staff = staff
        self._escalate_after = timedelta(hours=escalate_hours)
        self.clock = clock

    # -- staff commands --------------------------------------------------------------------

    async def alerts(self, who: Who, choice: str | None) -> Outcome:
        """`/alerts` shows the member's setting; `/alerts on|off` changes it."""
        wanted = {"on": True, "off": False}.get((choice or "").strip().lower())

        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            locale = actor.member.locale
            if choice is not None and wanted is None:
                return Refused(locale, "usage")
            current = await store.alerts_on(connection, actor.member.id)
            if wanted is None or wanted == current:
                return AlertsState(locale, current)
            await store.set_alerts(connection, actor.member.id, wanted)
            return AlertsState(locale, wanted)

        target = None if wanted is None else ("on" if wanted else "off")
        return await self._staff.run_command(who, "alerts.set", body, target)

    async def listing(self, who: Who) -> Outcome:
        """Unresolved follow-ups in the caller's scope, oldest first: the longest wait is the
        one closest to escalation, so it leads."""

        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            branch_ids = await _branch_ids(connection, actor.scope)
            items = await store.unresolved(connection, branch_ids, LISTED)
            total = await store.count_unresolved(connection, branch_ids)
            return FollowUpList(actor.member.locale, tuple(items), total, at)

        return await self._staff.run_command(who, "followups.list", body)

    async def take(self, who: Who, number: str) -> Outcome:
        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            found = await self._find(connection, actor, number)
            if isinstance(found, Refused):
                return found
            if not await store.take(connection, found.id, actor.member.id, at):
                return Refused(actor.member.locale, "follow_up_taken", {"number": found.id})
            return FollowUpTaken(actor.member.locale, found.id)

        return await self._staff.run_command(who, "followup.take", body, _target(number))

    async def resolve(self, who: Who, number: str) -> Outcome:
        """A Resolve press: the member's next text becomes the note that resolves it."""

        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            found = await self._find(connection, actor, number)
            if isinstance(found, Refused):
                return found
            await store.ask_note(connection, actor.member.id, found.id, at)
            return NoteAsked(actor.member.locale, found.id)

        return await self._staff.run_command(who, "followup.resolve", body, _target(number))

    async def note(self, who: Who, text: str) -> Outcome | NotANote:
        """A text from a private chat: the note a Resolve press asked for, or NotANote (one
        indexed read, so a customer's typed answer costs almost nothing more)."""
        asked = await self._db.run(lambda c: store.note_asked(c, who.telegram_id))
        if asked is None or not who.private or self.clock() - asked[1] > NOTE_TTL:
            return NotANote()
        number = str(asked[0])

        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            await store.ask_note(connection, actor.member.id, None, None)
            found = await self._find(connection, actor, number)
            if isinstance(found, Refused):
                return found
            note = text.strip()[:MAX_NOTE]
            if not note or not await store.resolve(connection, found.id, actor.member.id, note, at):
                return Refused(actor.member.locale, "follow_up_resolved", {"number": found.id})
            return FollowUpResolved(actor.member.locale, found.id)

        return await self._staff.run_command(who, "followup.resolve", body, _target(number))

    async def bad_press(self, who: Who) -> Outcome:
        """A follow-up button whose data this bot never made: refused and audited."""

        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            return Refused(actor.member.locale, "follow_up_bad")

        return await self._staff.run_command(who, "followup.take", body)

    async def _find(
        self, connection: AsyncConnection, actor: Actor, number: str
    ) -> FollowUp | Refused:
        """The unresolved follow-up `number` inside the actor's scope, locked for the change."""
        locale = actor.member.locale
        found = None
        if number.isdigit() and len(number) < 10:
            found = await store.get(connection, int(number), lock=True)
        if found is None:
            return Refused(locale, "unknown_follow_up", {"number": number[:12]})
        org = await Org.load(connection)
        if not org.covers(actor.scope, Scope("branch", found.branch_code)):
            return Refused(locale, "scope")
        if found.status == store.RESOLVED:
            return Refused(locale, "follow_up_resolved", {"number": found.id})
        return found

    # -- the jobs --------------------------------------------------------------------------

    async def due_alerts(self) -> list[Alert]:
        """Claim the follow-ups whose alert has not gone out, with what to show and to whom.
        Claimed means sent: a crash between the claim and the send loses that one message,
        never repeats it, and the follow-up still waits in /followups and escalates."""

        async def work(connection: AsyncConnection) -> list[Alert]:
            claimed = await store.claim_unalerted(connection, self.clock())
            return [
                await self._alert(
                    connection, f, tuple(await store.alert_recipients(connection, f.branch_id))
                )
                for f in claimed
            ]

        return await self._db.run(work)

    async def escalations(self) -> list[Alert]:
        """Claim unresolved follow-ups older than the escalation setting, each once, for the
        admins of their region; audited as the system. Idempotent across processes."""

        async def work(connection: AsyncConnection) -> list[Alert]:
            at = self.clock()
            alerts = []
            for found in await store.claim_overdue(connection, at - self._escalate_after, at):
                admins = tuple(await store.region_admins(connection, found.branch_id))
                await audit.append(
                    connection,
                    SYSTEM,
                    "followup.escalate",
                    target=f"follow_up:{found.id}",
                    details={"to": [f"staff:{a.staff_id}" for a in admins]},
                    at=at,
                )
                alerts.append(await self._alert(connection, found, admins, escalated=True))
            return alerts

        return await self._db.run(work)

    async def _alert(
        self,
        connection: AsyncConnection,
        found: FollowUp,
        recipients: tuple[Recipient, ...],
        *,
        escalated: bool = False,
    ) -> Alert:
        survey = (await self._catalog.pinned(connection, found.survey_id)).survey
        answers = {
            a.question_id: a.value
            for a in await session_store.answers_of(connection, found.session_id)
            if a.value is not None
        }
        hits = set(alerting(survey, answers))
        scores, comments = [], []
        for qid, value in answers.items():
            if not survey.has_question(qid):
                continue
            question = survey.question(qid)
            if question.value_range is not None and isinstance(value, int):
                high = question.value_range[-1]
                scores.append(Score(qid, question.type, value, high, qid in hits))
            elif question.type == QuestionType.TEXT and isinstance(value, str) and value.strip():
                comments.append(value.strip()[:MAX_COMMENT])
        return Alert(found, survey, tuple(scores), tuple(comments), recipients, escalated)


async def _branch_ids(connection: AsyncConnection, scope: Scope) -> list[int] | None:
    if scope.kind == "all":
        return None
    org = await Org.load(connection)
    return [org.branches[code].id for code in org.branch_codes_within(scope)]


def _target(number: str) -> str:
    return f"follow_up:{number}"[:80]
