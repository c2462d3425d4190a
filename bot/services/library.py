"""The survey library in chat: upload a survey, list surveys, preview one, choose a branch's.

Every command runs through `StaffAccess.run_command`, so the permission table, the session and
the audit log apply as to any staff command; what a command touches is checked against the
actor's scope here.

An upload is validated and stored as a new version; sessions in flight keep the version they
pinned. A preview runs the engine on a state kept in the `meta` table under the editor's
Telegram id, never in sessions or answers, so nothing an editor presses reaches results or
creates a customer. Its buttons name session 0, which no real session has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services.access import Org, Scope
from bot.services.conversation import Action, Completed, Question, Rejected, apply_action
from bot.services.staff import Actor, Refused, StaffAccess, Who
from bot.services.surveys import SurveyCatalog
from flows import Problem, Survey, SurveyDefinitionError, engine, load_survey_bytes
from flows.engine import Ask, Finish, Reject, State
from flows.errors import FlowError, InvalidState
from storage import meta, orgs
from storage import staff as staff_store
from storage import surveys as survey_store
from storage.db import Database

MAX_SURVEY_BYTES = 64 * 1024
PREVIEW_SESSION = 0


@dataclass(frozen=True)
class SurveyRejected:
    locale: str
    file_name: str
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class SurveyStored:
    locale: str
    key: str
    version: int
    is_new: bool


@dataclass(frozen=True)
class SurveyEntry:
    key: str
    version: int
    branches: tuple[str, ...]  # the branches in the caller's scope whose QR opens it


@dataclass(frozen=True)
class SurveyListing:
    locale: str
    surveys: tuple[SurveyEntry, ...]


@dataclass(frozen=True)
class SurveyUsed:
    locale: str
    key: str
    scope: Scope
    branches: tuple[str, ...]


@dataclass(frozen=True)
class Preview:
    """One step of a preview: a question, a rejected answer, or the end."""

    shown: Question | Rejected | Completed
    started: bool = False


@dataclass(frozen=True)
class PreviewStale:
    locale: str


def _preview_key(telegram_id: int) -> str:
    return f"preview:{telegram_id}"


class SurveyLibrary:
    def __init__(
        self, db: Database, catalog: SurveyCatalog, staff: StaffAccess, default_survey: str
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._staff = staff
        self._default = default_survey

    async def is_staff(self, who: Who) -> bool:
        """Whether a document from this user could be a survey upload (no audit: customers'
        files go on to the customer conversation untouched)."""

        async def work(connection: AsyncConnection) -> bool:
            member = await staff_store.by_telegram_id(connection, who.telegram_id)
            return member is not None and member.active and member.totp_secret is not None

        return await self._db.run(work)

    async def upload(
        self, who: Who, file_name: str, size: int, content: bytes | None
    ) -> SurveyRejected | SurveyStored | Refused:
        """A survey YAML sent as a document: every problem listed, or a new version stored.
        `content` is None when the file is too large to fetch."""

        async def body(
            connection: AsyncConnection, actor: Actor, at: datetime
        ) -> SurveyRejected | SurveyStored | Refused:
            locale = actor.member.locale
            if content is None or size > MAX_SURVEY_BYTES or len(content) > MAX_SURVEY_BYTES:
                return Refused(locale, "too_large", {"limit": MAX_SURVEY_BYTES // 1024})
            try:
                survey, text = load_survey_bytes(content, source=file_name)
            except SurveyDefinitionError as error:
                return SurveyRejected(locale, file_name, error.problems)
            stored, is_new = await survey_store.register(
                connection, survey.id, text, survey.checksum
            )
            return SurveyStored(locale, stored.key, stored.version, is_new)

        return await self._staff.run_command(
            who, "survey.upload", body, target=f"file:{file_name[:60]}"
        )

    async def list_surveys(self, who: Who) -> SurveyListing | Refused:
        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> SurveyListing:
            org = await Org.load(connection)
            visible = set(org.branch_codes_within(actor.scope))
            using: dict[str, list[str]] = {}
            for branch in org.branches.values():
                if branch.code in visible:
                    using.setdefault(branch.survey_key or self._default, []).append(branch.code)
            entries = tuple(
                SurveyEntry(key, version, tuple(sorted(using.get(key, []))))
                for key, version in await survey_store.summary(connection)
            )
            return SurveyListing(actor.member.locale, entries)

        return await self._staff.run_command(who, "survey.list", body)

    async def use(self, who: Who, key: str, scope_text: str) -> SurveyUsed | Refused:
        """`/survey_use <key> <scope>`: the survey a branch's or region's QR opens."""

        async def body(
            connection: AsyncConnection, actor: Actor, at: datetime
        ) -> SurveyUsed | Refused:
            locale = actor.member.locale
            scope = Scope.parse(scope_text)
            org = await Org.load(connection)
            if scope is None or not org.exists(scope):
                return Refused(locale, "unknown_scope", {"scope": scope_text})
            if not org.covers(actor.scope, scope):
                return Refused(locale, "scope")
            if await survey_store.latest(connection, key) is None:
                return Refused(locale, "unknown_survey", {"survey": key})
            codes = org.branch_codes_within(scope)
            await orgs.set_survey(connection, codes, key)
            return SurveyUsed(locale, key, scope, tuple(codes))

        target = f"survey:{key[:32]} {scope_text[:40]}"
        return await self._staff.run_command(who, "survey.use", body, target=target)

    # -- preview ----------------------------------------------------------------------------

    async def preview(self, who: Who, key: str) -> Preview | Refused:
        """`/survey_preview <key>`: the latest version's first question, on a preview state."""

        async def body(
            connection: AsyncConnection, actor: Actor, at: datetime
        ) -> Preview | Refused:
            locale = actor.member.locale
            pinned = await self._catalog.latest(connection, key)
            if pinned is None:
                return Refused(locale, "unknown_survey", {"survey": key})
            step = engine.start(pinned.survey)
            shown = await self._show(connection, who, locale, pinned.id, pinned.survey, 1, step)
            return Preview(shown, started=True)

        return await self._staff.run_command(
            who, "survey.preview", body, target=f"survey:{key[:32]}"
        )

    async def press(
        self, who: Who, version: int, action: Action, value: str | None
    ) -> Preview | PreviewStale | Refused:
        """A button on a preview question."""

        async def step(survey: Survey, state: State) -> engine.Step:
            return apply_action(survey, state, state.current or "", action, value)

        return await self._preview_step(who, version, step)

    async def text(self, who: Who, text: str) -> Preview | PreviewStale | Refused | None:
        """A typed answer while a preview is open; None when this user has no preview, so the
        text belongs to the customer conversation."""

        async def work(connection: AsyncConnection) -> bool:
            return await meta.get(connection, _preview_key(who.telegram_id)) is not None

        if not await self._db.run(work):
            return None

        async def step(survey: Survey, state: State) -> engine.Step:
            return engine.answer(survey, state, state.current or "", text)

        return await self._preview_step(who, None, step)

    async def _preview_step(
        self, who: Who, version: int | None, make: Any
    ) -> Preview | PreviewStale | Refused:
        async def work(connection: AsyncConnection) -> Preview | PreviewStale | Refused:
            at = self._staff.clock()
            actor = await self._staff.authorize(connection, who, "survey.preview", at)
            if isinstance(actor, Refused):
                return actor
            locale = actor.member.locale
            raw = await meta.get(connection, _preview_key(who.telegram_id))
            if raw is None:
                return PreviewStale(locale)
            saved = json.loads(raw)
            if version is not None and saved["version"] != version:
                return PreviewStale(locale)
            try:
                pinned = await self._catalog.pinned(connection, saved["survey"])
                state = State.from_dict(saved["state"])
                step = await make(pinned.survey, state)
            except (FlowError, InvalidState, LookupError):
                return PreviewStale(locale)
            shown = await self._show(
                connection, who, locale, pinned.id, pinned.survey, saved["version"] + 1, step
            )
            return Preview(shown)

        return await self._db.run(work)

    async def _show(
        self,
        connection: AsyncConnection,
        who: Who,
        locale: str,
        survey_id: int,
        survey: Survey,
        version: int,
        step: engine.Step,
    ) -> Question | Rejected | Completed:
        """Keep the preview's state (or drop it at the end) and say what to show."""
        key = _preview_key(who.telegram_id)
        effect = step.effects[-1]
        if isinstance(effect, Finish):
            await meta.delete(connection, key)
            return Completed(locale, survey)
        if isinstance(effect, Reject):  # the question on screen stays, and so do its buttons
            return Rejected(locale, effect)
        state = {"survey": survey_id, "version": version, "state": step.state.to_dict()}
        await meta.put(connection, key, json.dumps(state))
        assert isinstance(effect, Ask)
        return Question(locale, survey, PREVIEW_SESSION, version, effect, intro=version == 1)
