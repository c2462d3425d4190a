"""The customer conversation service: deep links, consent, answers, language, opt-out.

Each call is one unit of work for one Telegram update: it reads the clock once, reads the stored
state, runs the survey engine, saves with optimistic concurrency and commits — and only then does
the handler render and send. It returns plain outcomes; it never touches Telegram.

A redelivered update records nothing twice, but it shows the customer where they are: its
reply may never have gone out (a crash after the commit, a send that failed). A survey button
names the session version it was drawn for, so a second delivery of a press, or a press on an
outdated question, finds a newer version and redraws the current question. Every other update
claims its update id in the same unit of work; a second delivery then redraws instead.

A question carries the message that shows it live (`live_message_id`), so the handler can take
the keyboard off that one when the question goes out anew: one live copy per chat.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services import customer_lists
from bot.services.clock import Clock, system_clock
from bot.services.follow_up import open_follow_up
from bot.services.i18n import resolve_locale
from bot.services.privacy import PrivacyNotice
from bot.services.surveys import Pinned, SurveyCatalog
from bot.wiring.config import Settings
from flows import engine
from flows.engine import Ask, Finish, Reject, State, Step
from flows.errors import FlowError
from flows.schema import Survey
from storage import audit, orgs, updates
from storage import campaigns as campaign_store
from storage import customers as customer_store
from storage import sessions as session_store
from storage.customers import Customer
from storage.db import Database
from storage.errors import VersionConflict
from storage.surveys import link as find_link

log = logging.getLogger(__name__)

PAYLOAD = re.compile(r"^(?P<kind>[bck])_(?P<value>[A-Za-z0-9_-]{1,40})$")
Action = Literal["answer", "toggle", "done", "back", "skip"]
InfoKind = Literal[
    "greeting",
    "link_unknown",
    "already_answered",
    "stale",
    "no_session",
    "opted_out",
    "opted_in",
    "needs_consent",
    "declined",
    "contact_unknown",
]
T = TypeVar("T")
_ATTEMPTS = 3
# Telegram keeps an undelivered update for at most 24 hours; two days of claims is ample.
UPDATE_MEMORY = timedelta(days=2)


@dataclass(frozen=True)
class Person:
    """Who sent the update, as Telegram tells it."""

    telegram_id: int
    language_code: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Duplicate:
    """Nothing to show: the update was handled before and the customer has no survey."""


@dataclass(frozen=True)
class Info:
    locale: str
    kind: InfoKind


@dataclass(frozen=True)
class ShowNotice:
    locale: str
    text: str
    payload: str | None


@dataclass(frozen=True)
class Question:
    locale: str
    survey: Survey
    session_id: int
    version: int  # the session's version: the buttons drawn for it name it
    ask: Ask
    intro: bool = False
    resumed: bool = False
    live_message_id: int | None = None  # the message showing the session's question until now


@dataclass(frozen=True)
class Rejected:
    locale: str
    reject: Reject


@dataclass(frozen=True)
class Completed:
    locale: str
    survey: Survey
    follow_up: bool = False  # the outro may promise a follow-up (services.follow_up)
    may_contact: bool = False  # the customer agreed, at the survey's end, to be contacted
    live_message_id: int | None = None
    alert: bool = False  # a follow-up opened: its alert is due


@dataclass(frozen=True)
class LanguageSet:
    locale: str
    question: Question | None


Outcome = Duplicate | Info | ShowNotice | Question | Rejected | Completed | LanguageSet


class Conversations:
    """Runs customer conversations against the database and the survey engine."""

    def __init__(
        self,
        db: Database,
        catalog: SurveyCatalog,
        notice: PrivacyNotice,
        settings: Settings,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._notice = notice
        self._settings = settings
        self.clock = clock

    # -- entry points ---------------------------------------------------------------------

    async def start(self, update_id: int, person: Person, payload: str | None) -> Outcome:
        """`/start [payload]`: show the notice if consent is missing, else open the survey."""
        at = self.clock()

        async def work(connection: AsyncConnection) -> Outcome:
            customer = await customer_store.by_telegram_id(connection, person.telegram_id)
            if not self._has_consent(customer):
                locale = _reader_locale(customer, person)
                return ShowNotice(locale, self._notice.text(locale), _clean_payload(payload))
            assert customer is not None
            if customer.opted_out:
                await customer_store.update(connection, customer.id, at=at, opted_out=False)
                await audit.append(connection, _actor(customer), "customer.opt_in", at=at)
                if not payload:
                    return Info(customer.locale, "opted_in")
            return await self._open(connection, customer, payload, at)

        async def again(connection: AsyncConnection) -> Outcome:
            return await self._where(connection, person, payload)

        return await self._unit(update_id, at, work, again)

    async def consent(
        self, update_id: int, person: Person, agreed: bool, locale: str, payload: str | None
    ) -> Outcome:
        """Agree or Decline on the notice; Agree continues to what the deep link opened."""
        locale = resolve_locale(locale)
        at = self.clock()

        async def work(connection: AsyncConnection) -> Outcome:
            customer = await customer_store.record_decision(
                connection,
                person.telegram_id,
                self._notice.version,
                agreed,
                locale,
                person.name,
                at=at,
            )
            await audit.append(
                connection,
                _actor(customer),
                "customer.consent",
                outcome="agree" if agreed else "decline",
                details={"version": self._notice.version},
                at=at,
            )
            if not agreed:
                return Info(locale, "declined")
            return await self._open(connection, customer, payload, at)

        async def again(connection: AsyncConnection) -> Outcome:
            if not agreed:
                return Info(locale, "declined")
            return await self._where(connection, person, payload)

        return await self._unit(update_id, at, work, again)

    async def press(
        self,
        update_id: int,
        person: Person,
        session_id: int,
        version: int,
        action: Action,
        value: str | None = None,
    ) -> Outcome:
        """A survey button drawn for `version` of the session: answer, toggle, done, back or
        skip on the current question. Any other version means the press is outdated (or
        redelivered): it changes nothing and redraws where the customer is."""
        at = self.clock()

        async def work(connection: AsyncConnection) -> Outcome:
            found = await session_store.get_for_telegram_user(
                connection, session_id, person.telegram_id
            )
            if found is None:
                return Info(resolve_locale(person.language_code), "stale")
            session, locale = found
            if version > session.version:
                return Info(locale, "stale")  # never drawn: forged
            if session.status != session_store.OPEN or session.version != version:
                assert session.customer_id is not None  # found through its customer
                shown = await self._current(connection, session.customer_id, locale)
                return shown or Info(locale, "stale")
            pinned = await self._catalog.pinned(connection, session.survey_id)
            state = State.from_dict(session.state)
            if state.current is None:
                return Info(locale, "stale")
            try:
                step = apply_action(pinned.survey, state, state.current, action, value)
            except FlowError:
                return Info(locale, "stale")
            if any(isinstance(effect, Reject) for effect in step.effects):
                return Info(locale, "stale")  # buttons only offer valid values: this was forged
            return await self._advance(connection, session, pinned, locale, step, at)

        return await self._unit(update_id, at, work)

    async def reply_text(self, update_id: int, person: Person, text: str) -> Outcome:
        """A typed message: the answer to the current question, whatever its type."""
        at = self.clock()

        async def work(connection: AsyncConnection) -> Outcome:
            customer = await customer_store.by_telegram_id(connection, person.telegram_id)
            if not self._has_consent(customer):
                locale = _reader_locale(customer, person)
                return Info(locale, "needs_consent")
            assert customer is not None
            session = await session_store.open_for_customer(connection, customer.id)
            if session is None:
                return Info(customer.locale, "no_session")
            pinned = await self._catalog.pinned(connection, session.survey_id)
            state = State.from_dict(session.state)
            if state.current is None:
                return Info(customer.locale, "no_session")
            # Any question may be answered by typing: a number, "ya", or an option's words.
            step = engine.answer(pinned.survey, state, state.current, text)
            for effect in step.effects:
                if isinstance(effect, Reject):
                    return Rejected(customer.locale, effect)
            return await self._advance(connection, session, pinned, customer.locale, step, at)

        async def again(connection: AsyncConnection) -> Outcome:
            return await self._where(connection, person, None)

        return await self._unit(update_id, at, work, again)

    async def set_language(self, update_id: int, person: Person, locale: str) -> Outcome:
        """Switch language; an open survey is asked again in the new language."""
        locale = resolve_locale(locale)
        at = self.clock()

        async def work(connection: AsyncConnection) -> Outcome:
            customer = await customer_store.by_telegram_id(connection, person.telegram_id)
            if not self._has_consent(customer):
                # Nothing is stored before consent: show the notice in the chosen language.
                return ShowNotice(locale, self._notice.text(locale), None)
            assert customer is not None
            await customer_store.update(connection, customer.id, at=at, locale=locale)
            session = await session_store.open_for_customer(connection, customer.id)
            if session is None:
                return LanguageSet(locale, None)
            pinned = await self._catalog.pinned(connection, session.survey_id)
            step = engine.resume(pinned.survey, State.from_dict(session.state))
            return LanguageSet(locale, _question(locale, pinned, session, step, resumed=True))

        return await self._unit(update_id, at, work, work)  # the same again: it is idempotent

    async def stop(self, update_id: int, person: Person) -> Outcome:
        """`/stop`: opt out of every future invitation; `/start` opts back in."""
        at = self.clock()

        async def work(connection: AsyncConnection) -> Outcome:
            customer = await customer_store.by_telegram_id(connection, person.telegram_id)
            if customer is None:
                return Info(resolve_locale(person.language_code), "opted_out")
            if not customer.opted_out:
                await customer_store.update(connection, customer.id, at=at, opted_out=True)
                await audit.append(connection, _actor(customer), "customer.opt_out", at=at)
            return Info(customer.locale, "opted_out")

        return await self._unit(update_id, at, work, work)  # the same again: it is idempotent

    async def shown(
        self, session_id: int, message_id: int, *, newer_only: bool = True
    ) -> tuple[bool, int | None]:
        """The session's question is now live in `message_id`: whether it is (two updates of
        one customer may send copies at once; with `newer_only` the newest message keeps it),
        and the message that held it before, whose keyboard must go."""

        async def work(connection: AsyncConnection) -> tuple[bool, int | None]:
            return await session_store.shown_in(
                connection, session_id, message_id, newer_only=newer_only
            )

        return await self._db.run(work)

    async def shared_contact(self, update_id: int, person: Person, phone: str) -> Outcome:
        """The customer shared their own phone number: it finds their imported customer as a
        personal link does, and their branch survey opens."""
        at = self.clock()

        async def work(connection: AsyncConnection) -> Outcome:
            customer = await customer_store.by_telegram_id(connection, person.telegram_id)
            if not self._has_consent(customer):
                return Info(_reader_locale(customer, person), "needs_consent")
            assert customer is not None
            payload = await customer_lists.claim_phone(connection, customer.id, phone, at)
            if payload is None:
                return Info(customer.locale, "contact_unknown")
            return await self._open(connection, customer, payload, at)

        return await self._unit(update_id, at, work)

    async def locale_of(self, person: Person) -> str:
        """The reader's language for replies that change nothing (help, privacy)."""
        async with self._db.transaction() as connection:
            customer = await customer_store.by_telegram_id(connection, person.telegram_id)
        return _reader_locale(customer, person)

    async def forget_updates(self) -> int:
        """Forget claims of updates Telegram can no longer deliver again, so the table that
        catches redeliveries stays small; returns how many were forgotten."""
        before = self.clock() - UPDATE_MEMORY
        return await self._db.run(lambda connection: updates.prune(connection, before))

    @property
    def notice(self) -> PrivacyNotice:
        return self._notice

    # -- internals ------------------------------------------------------------------------

    def _has_consent(self, customer: Customer | None) -> bool:
        return customer is not None and customer.consent_version == self._notice.version

    async def _unit(
        self,
        update_id: int,
        at: datetime,
        work: Callable[[AsyncConnection], Awaitable[T]],
        again: Callable[[AsyncConnection], Awaitable[T]] | None = None,
    ) -> T:
        """One unit of work per update, group-committed; a lost version race is retried. The
        whole unit, retries too, happens at `at`: the clock is read once per update.

        With `again`, the update id is recorded in the same transaction as the work, so a
        redelivery runs `again` instead (which shows where the customer is); survey presses
        need no claim, as their versions already make a second delivery outdated."""

        async def claimed(connection: AsyncConnection) -> T:
            assert again is not None
            if not await updates.claim(connection, update_id, at):
                return await again(connection)
            return await work(connection)

        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self._db.run(work if again is None else claimed)
            except VersionConflict:
                if attempt == _ATTEMPTS:
                    raise
                log.info("update %d lost a version race (attempt %d)", update_id, attempt)
        raise AssertionError("unreachable")

    async def _where(
        self, connection: AsyncConnection, person: Person, payload: str | None
    ) -> Outcome:
        """Where the customer is: the notice before consent, else the open survey's question
        (sent anew), else the end of the survey they finished last; else nothing."""
        customer = await customer_store.by_telegram_id(connection, person.telegram_id)
        if not self._has_consent(customer):
            locale = _reader_locale(customer, person)
            return ShowNotice(locale, self._notice.text(locale), _clean_payload(payload))
        assert customer is not None
        current = await self._current(connection, customer.id, customer.locale, resumed=True)
        return current or Duplicate()

    async def _current(
        self, connection: AsyncConnection, customer_id: int, locale: str, *, resumed: bool = False
    ) -> Question | Completed | None:
        """The open session's current question, or the end of the latest session when it was
        completed; None when the customer has no survey to show."""
        session = await session_store.open_for_customer(connection, customer_id)
        if session is not None:
            pinned = await self._catalog.pinned(connection, session.survey_id)
            step = engine.resume(pinned.survey, State.from_dict(session.state))
            return _question(locale, pinned, session, step, resumed=resumed)
        latest = await session_store.latest_for_customer(connection, customer_id)
        if latest is None or latest.status != session_store.COMPLETED:
            return None
        pinned = await self._catalog.pinned(connection, latest.survey_id)
        return Completed(locale, pinned.survey, latest.live_message_id)

    async def _open(
        self, connection: AsyncConnection, customer: Customer, payload: str | None, at: datetime
    ) -> Outcome:
        """Open what a deep link names, resuming a survey in progress rather than restarting."""
        payload = _clean_payload(payload)
        current = await session_store.open_for_customer(connection, customer.id)
        if payload is None:
            if current is None:
                return Info(customer.locale, "greeting")
            pinned = await self._catalog.pinned(connection, current.survey_id)
            step = engine.resume(pinned.survey, State.from_dict(current.state))
            return _question(customer.locale, pinned, current, step, resumed=True)
        if payload.startswith("p_"):  # a personal link from a customer list
            payload = await customer_lists.claim_link(connection, customer.id, payload[2:], at)
            if payload is None:
                return Info(customer.locale, "link_unknown")
        target = await self._resolve(connection, payload, customer, at)
        if target is None:
            return Info(customer.locale, "link_unknown")
        survey_key, branch_id, survey_id = target
        pinned = await (
            self._catalog.latest(connection, survey_key)
            if survey_id is None
            else self._catalog.pinned(connection, survey_id)
        )
        if pinned is None:
            return Info(customer.locale, "link_unknown")
        if branch_id is not None and branch_id != customer.branch_id:
            await customer_store.update(connection, customer.id, at=at, branch_id=branch_id)
        if current is not None:
            current_pin = await self._catalog.pinned(connection, current.survey_id)
            if current_pin.survey.id == survey_key and current.branch_id == branch_id:
                step = engine.resume(current_pin.survey, State.from_dict(current.state))
                return _question(customer.locale, current_pin, current, step, resumed=True)
            await session_store.save(connection, current, status=session_store.ABANDONED, at=at)
        if await self._answered_recently(connection, customer, survey_key, branch_id, at):
            return Info(customer.locale, "already_answered")
        step = engine.start(pinned.survey)
        session = await session_store.create(
            connection,
            customer.id,
            pinned.id,
            branch_id,
            step.state.to_dict(),
            campaign_id=_campaign_of(payload),
            at=at,
        )
        return _question(customer.locale, pinned, session, step, intro=True)

    async def _resolve(
        self, connection: AsyncConnection, payload: str, customer: Customer, at: datetime
    ) -> tuple[str, int | None, int | None] | None:
        """(survey key, branch, pinned survey version or None for the latest)."""
        match = PAYLOAD.match(payload)
        if match is None:
            return None
        if match["kind"] == "k":  # a campaign's invitation: its pinned version, while it runs
            found_id = await campaign_store.open_survey(connection, match["value"])
            if found_id is None:
                return None
            key = (await self._catalog.pinned(connection, found_id)).survey.id
            return key, customer.branch_id, found_id
        if match["kind"] == "b":
            branch = await orgs.branch_by_code(connection, match["value"])
            if branch is None:
                return None
            return branch.survey_key or self._settings.default_survey, branch.id, None
        found = await find_link(connection, match["value"])
        if found is None or (found.expires_at is not None and found.expires_at < at):
            return None
        return found.survey_key, found.branch_id, None

    async def _answered_recently(
        self,
        connection: AsyncConnection,
        customer: Customer,
        survey_key: str,
        branch_id: int | None,
        at: datetime,
    ) -> bool:
        hours = self._settings.resubmit_after_hours
        if hours == 0:
            return False
        last = await session_store.last_completed(connection, customer.id, survey_key, branch_id)
        return (
            last is not None
            and last.completed_at is not None
            and (at - last.completed_at < timedelta(hours=hours))
        )

    async def _advance(
        self,
        connection: AsyncConnection,
        session: session_store.Session,
        pinned: Pinned,
        locale: str,
        step: Step,
        at: datetime,
    ) -> Outcome:
        """Persist the step: the new state, or at the end the final answers, all at once."""
        finish = next((e for e in step.effects if isinstance(e, Finish)), None)
        if finish is None:
            saved = await session_store.save_step(connection, session, step.state.to_dict(), at=at)
            return _question(locale, pinned, saved, step)
        survey = pinned.survey
        contact = survey.contact_question
        may_contact = contact is not None and finish.answers.get(contact) is True
        await session_store.complete(
            connection,
            session,
            [(qid, survey.question(qid).type, value) for qid, value in finish.answers.items()],
            contact_consent=None if contact is None else may_contact,
            at=at,
        )
        if session.customer_id is not None:
            await customer_store.touch(connection, session.customer_id, at)
        promised, alert = await open_follow_up(
            connection, survey, session.id, session.branch_id, finish.answers, at
        )
        return Completed(
            locale,
            survey,
            follow_up=promised,
            may_contact=may_contact,
            live_message_id=session.live_message_id,
            alert=alert,
        )


async def answers_so_far(
    connection: AsyncConnection, session: session_store.Session
) -> dict[str, object]:
    """A session's answers: its state holds them while it is open, the answers table once it
    has completed (an abandoned session keeps none)."""
    if session.status == session_store.OPEN:
        return dict(State.from_dict(session.state).answers)
    return {
        row.question_id: row.value for row in await session_store.answers_of(connection, session.id)
    }


def apply_action(
    survey: Survey, state: State, question_id: str, action: Action, value: str | None
) -> Step:
    """The engine step a button press asks for (a survey's preview presses the same buttons)."""
    if action == "answer":
        return engine.answer(survey, state, question_id, value)
    if action == "toggle":
        return engine.toggle(survey, state, question_id, value or "")
    if action == "done":
        return engine.answer(survey, state, question_id, list(state.draft))
    if action == "back":
        return engine.back(survey, state, question_id)
    return engine.skip(survey, state, question_id)


def _question(
    locale: str,
    pinned: Pinned,
    session: session_store.Session,
    step: Step,
    *,
    intro: bool = False,
    resumed: bool = False,
) -> Question:
    ask = next(effect for effect in step.effects if isinstance(effect, Ask))
    return Question(
        locale,
        pinned.survey,
        session.id,
        session.version,
        ask,
        intro=intro,
        resumed=resumed,
        live_message_id=session.live_message_id,
    )


def _reader_locale(customer: Customer | None, person: Person) -> str:
    """The customer's chosen language, or before any choice the one their Telegram app uses."""
    return customer.locale if customer else resolve_locale(person.language_code)


def _campaign_of(payload: str) -> int | None:
    """The campaign a deep link's payload invites to, if it is a campaign's invitation."""
    match = PAYLOAD.match(payload)
    if match is None or match["kind"] != "k" or not match["value"].isdigit():
        return None
    return int(match["value"])


def _clean_payload(payload: str | None) -> str | None:
    return (payload or "").strip()[:64] or None


def _actor(customer: Customer) -> str:
    return f"customer:{customer.id}"
