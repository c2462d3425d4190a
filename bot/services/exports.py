"""Exports: one row per response and one column per question, as CSV or XLSX.

Rows are streamed from the database into a temporary file, never held all at once. Choice
answers show their labels in the reader's language; times are the branch's local time. XLSX
adds a summary sheet with the figures `/results` shows. The scope is checked here, and every
export is audited, saying whether it named anyone.

Names and phones are exported only when asked for (`contacts`), to admins and above, after a
fresh code (step-up), and only for customers who agreed at the survey's end to be contacted
about that response and have not been erased; the other rows leave those cells empty. On the
command line `--with-contacts` does the same for the operator.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import xlsxwriter
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services.access import PERMISSIONS, Org, Scope
from bot.services.i18n import gettext as _
from bot.services.i18n import use_locale
from bot.services.results import (
    Period,
    Results,
    Summary,
    operator_request,
    option_label,
    split_arguments,
    staff_request,
    windows_for,
)
from bot.services.staff import STEP_UP_WINDOW, Actor, CodeNeeded, Refused, StaffAccess, Who
from bot.services.surveys import SurveyCatalog
from flows.schema import QuestionType, Survey, localized
from storage import audit
from storage import results as store
from storage import staff as staff_store
from storage.db import Database

Format = Literal["csv", "xlsx"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx")
CONTACTS = "contacts"  # the word that asks for names and phones


@dataclass(frozen=True)
class ExportFile:
    locale: str
    path: Path
    filename: str
    rows: int
    contacts: bool = False  # whether the name and phone columns are there
    named: int = 0  # rows that name a customer

    @property
    def audit_details(self) -> dict[str, Any]:
        return {"rows": self.rows, "identities": self.contacts, "named": self.named}


@dataclass(frozen=True)
class Column:
    survey_key: str
    question_id: str
    header: str


class Exports:
    """Writes exports for staff in their scope and for the command line."""

    def __init__(
        self,
        db: Database,
        catalog: SurveyCatalog,
        staff: StaffAccess,
        results: Results,
        zone: ZoneInfo,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._staff = staff
        self._results = results
        self._zone = zone

        staff.add_risky("export.contacts", self._contacts_after_step_up)

    async def for_staff(self, who: Who, args: list[str]) -> ExportFile | CodeNeeded | Refused:
        """`/export [scope] [period] [csv|xlsx] [contacts]`, inside the caller's scope;
        `contacts` (admins and above) waits for a fresh code unless the last one is fresh."""
        contacts = any(w.lower() == CONTACTS for w in args)
        target = " ".join(args)[:80] or None

        async def body(
            connection: AsyncConnection, actor: Actor, at: datetime
        ) -> ExportFile | CodeNeeded | Refused:
            if not contacts:
                return await self._for_actor(connection, actor, at, args)
            checked = await self._request(connection, actor, at, args)
            if isinstance(checked, Refused):
                return checked
            last = actor.member.totp_last_at
            if last is not None and at - last <= STEP_UP_WINDOW:
                return await self._for_actor(connection, actor, at, args)
            pending = {"action": "export.contacts", "args": {"words": args}, "target": target}
            await staff_store.update(connection, actor.member.id, pending=pending, pending_at=at)
            return CodeNeeded(actor.member.locale, "export.contacts")

        action = "export.contacts" if contacts else "export.read"
        return await self._staff.run_command(who, action, body, target=target)

    async def _contacts_after_step_up(
        self, connection: AsyncConnection, actor: Actor, at: datetime, words: list[str], **_: Any
    ) -> ExportFile | Refused:
        """The export with contacts a fresh code was asked for, once the code is accepted."""
        return await self._for_actor(connection, actor, at, words)

    async def _request(
        self, connection: AsyncConnection, actor: Actor, at: datetime, args: list[str]
    ) -> tuple[Org, Scope, Period, Format, bool] | Refused:
        words = [w for w in args if w.lower() not in (*FORMATS, CONTACTS)]
        formats = [w.lower() for w in args if w.lower() in FORMATS]
        scope_text, period_text, wrong = split_arguments(words)
        if wrong or len(formats) > 1 or (period_text or "").startswith("campaign"):
            return Refused(actor.member.locale, "usage")
        asked = await staff_request(connection, actor, at, self._zone, scope_text, period_text)
        if isinstance(asked, Refused):
            return asked
        fmt: Format = "xlsx" if formats == ["xlsx"] else "csv"
        return *asked, fmt, any(w.lower() == CONTACTS for w in args)

    async def _for_actor(
        self, connection: AsyncConnection, actor: Actor, at: datetime, args: list[str]
    ) -> ExportFile | Refused:
        checked = await self._request(connection, actor, at, args)
        if isinstance(checked, Refused):
            return checked
        org, scope, period, fmt, contacts = checked
        if contacts and actor.role < PERMISSIONS["export.contacts"]:
            return Refused(actor.member.locale, "role")
        return await self._write(
            connection, org, scope, period, fmt, actor.member.locale, contacts=contacts
        )

    async def for_operator(
        self,
        scope_text: str | None,
        period_text: str | None,
        fmt: Format,
        locale: str = "en",
        *,
        contacts: bool = False,
    ) -> ExportFile:
        """The command line's export, audited as the system; names and phones only when the
        operator asks for them (`--with-contacts`), as for an admin after step-up."""

        async def work(connection: AsyncConnection) -> ExportFile:
            at = self._staff.clock()
            org, scope, period = await operator_request(
                connection, self._zone, scope_text, period_text, at
            )
            written = await self._write(
                connection, org, scope, period, fmt, locale, contacts=contacts
            )
            await audit.append(
                connection,
                "system",
                "export.contacts" if contacts else "export.read",
                target=str(scope),
                outcome="done",
                details={"format": fmt, **written.audit_details},
                at=at,
            )
            return written

        return await self._db.run(work)

    async def _write(
        self,
        connection: AsyncConnection,
        org: Org,
        scope: Scope,
        period: Period,
        fmt: Format,
        locale: str,
        *,
        contacts: bool = False,
    ) -> ExportFile:
        branches = [org.branches[code] for code in org.branch_codes_within(scope)]
        windows = windows_for(branches, period)
        surveys = {
            sid: (await self._catalog.pinned(connection, sid)).survey
            for sid in await store.surveys_answered(connection, windows)
        }
        columns = _columns(surveys.values(), locale)
        by_id = {b.id: b for b in branches}
        with use_locale(locale):
            fixed = [_("Response"), _("Branch"), _("Completed (branch time)"), _("Survey")]
            if contacts:
                fixed += [_("Name"), _("Phone")]
        header = fixed + [c.header for c in columns]
        named = 0

        def cells(response: store.Response) -> list[Any]:
            branch = by_id[response.branch_id]
            survey = surveys[response.survey_id]
            local = response.completed_at.astimezone(ZoneInfo(branch.timezone))
            row: list[Any] = [
                response.session_id,
                branch.code,
                local.strftime("%Y-%m-%d %H:%M"),
                survey.id,
            ]
            if contacts:
                nonlocal named
                named += response.name is not None or response.phone is not None
                row += [response.name or "", response.phone or ""]
            for column in columns:
                if column.survey_key != survey.id or column.question_id not in response.answers:
                    row.append("")
                else:
                    value = response.answers[column.question_id]
                    row.append(_cell(survey, column.question_id, value, locale))
            return row

        name = f"suara-{str(scope).replace(':', '-')}-{period.first}-{period.last}.{fmt}"
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - handed to the caller to send
            prefix="suara-export-", suffix=f".{fmt}", delete=False
        )
        handle.close()
        path = Path(handle.name)
        stream = store.responses(connection, windows, contacts=contacts)
        if fmt == "csv":
            count = await _write_csv(path, header, stream, cells)
        else:
            summary = await self._results.summary(connection, org, scope, period, locale)
            count = await _write_xlsx(path, header, stream, cells, summary)
        return ExportFile(locale, path, name, count, contacts, named)


async def _write_csv(path: Path, header: list[str], stream: Any, cells: Callable[..., Any]) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8-sig") as out:  # Excel reads the BOM
        writer = csv.writer(out)
        writer.writerow(header)
        async for response in stream:
            writer.writerow(cells(response))
            count += 1
    return count


async def _write_xlsx(
    path: Path, header: list[str], stream: Any, cells: Callable[..., Any], summary: Summary
) -> int:
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    try:
        with use_locale(summary.locale):
            sheet = book.add_worksheet(_("Responses"))
            totals = book.add_worksheet(_("Summary"))
        bold = book.add_format({"bold": True})
        sheet.write_row(0, 0, header, bold)
        count = 0
        async for response in stream:
            count += 1
            sheet.write_row(count, 0, cells(response))
        for row, (label, value) in enumerate(_summary_rows(summary)):
            totals.write(row, 0, label, bold)
            totals.write(row, 1, value)
    finally:
        book.close()
    return count


def _summary_rows(summary: Summary) -> list[tuple[str, Any]]:
    s = summary.scores
    with use_locale(summary.locale):
        rows: list[tuple[str, Any]] = [
            (_("Scope"), str(summary.scope)),
            (_("From"), summary.period.first.isoformat()),
            (_("To"), summary.period.last.isoformat()),
            (_("Invitations"), s.invitations),
            (_("Response rate"), s.response_rate),
            (_("Responses"), s.responses),
            (_("Completion rate"), s.completion_rate),
            ("NPS", s.nps.score),
            (_("Promoters"), s.nps.promoters),
            (_("Passives"), s.nps.passives),
            (_("Detractors"), s.nps.detractors),
            ("CES", s.ces.mean),
        ]
        rows += [(f"CSAT {line.question} (1–{line.scale})", line.summary.mean) for line in s.csat]
        rows += [
            (f"{b.code} NPS", b.scores.nps.score) for b in summary.branches if not b.small_sample
        ]
    return rows


def _columns(surveys: Any, locale: str) -> list[Column]:
    """One column per question of each survey answered, labelled in the reader's language;
    versions of one survey share their columns."""
    seen: dict[tuple[str, str], Column] = {}
    keys = {survey.id for survey in surveys}
    for survey in surveys:
        for question in survey.questions:
            key = (survey.id, question.id)
            if key in seen:
                continue
            text = localized(question.text, locale, survey.default_locale)
            header = text if len(keys) == 1 else f"{survey.id}: {text}"
            seen[key] = Column(survey.id, question.id, header)
    return list(seen.values())


def _cell(survey: Survey, question_id: str, value: Any, locale: str) -> Any:
    if value is None or not survey.has_question(question_id):
        return "" if value is None else value
    question = survey.question(question_id)
    if question.type == QuestionType.YESNO:
        with use_locale(locale):
            return _("Yes") if value else _("No")
    if question.type == QuestionType.CHOICE:
        return option_label(survey, question_id, value, locale)
    if question.type == QuestionType.MULTI:
        return "; ".join(option_label(survey, question_id, v, locale) for v in value)
    return value
