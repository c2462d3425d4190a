"""Exports: one row per response and one column per question, as CSV or XLSX.

Rows are streamed from the database into a temporary file, never held all at once. Choice
answers show their labels in the reader's language; times are the branch's local time. XLSX
adds a summary sheet with the figures `/results` shows. The scope is checked here, and every
export is audited. Names and phones are not exported: customers have not been asked whether
the bank may contact them about their answers.
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

from bot.services.access import Org, Scope
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
from bot.services.staff import Actor, Refused, StaffAccess, Who
from bot.services.surveys import SurveyCatalog
from flows.schema import QuestionType, Survey, localized
from storage import audit
from storage import results as store
from storage.db import Database

Format = Literal["csv", "xlsx"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx")


@dataclass(frozen=True)
class ExportFile:
    locale: str
    path: Path
    filename: str
    rows: int


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

    async def for_staff(self, who: Who, args: list[str]) -> ExportFile | Refused:
        """`/export [scope] [period] [csv|xlsx]`, inside the caller's scope."""
        words = [w for w in args if w.lower() not in FORMATS]
        formats = [w.lower() for w in args if w.lower() in FORMATS]
        scope_text, period_text, wrong = split_arguments(words)

        async def body(
            connection: AsyncConnection, actor: Actor, at: datetime
        ) -> ExportFile | Refused:
            if wrong or len(formats) > 1:
                return Refused(actor.member.locale, "usage")
            asked = await staff_request(connection, actor, at, self._zone, scope_text, period_text)
            if isinstance(asked, Refused):
                return asked
            fmt: Format = "xlsx" if formats == ["xlsx"] else "csv"
            return await self._write(connection, *asked, fmt, actor.member.locale)

        target = " ".join(args)[:80] or None
        return await self._staff.run_command(who, "export.read", body, target=target)

    async def for_operator(
        self, scope_text: str | None, period_text: str | None, fmt: Format, locale: str = "en"
    ) -> ExportFile:
        async def work(connection: AsyncConnection) -> ExportFile:
            org, scope, period = await operator_request(
                connection, self._zone, scope_text, period_text
            )
            await audit.append(
                connection, "system", "export.read", target=str(scope), details={"format": fmt}
            )
            return await self._write(connection, org, scope, period, fmt, locale)

        return await self._db.run(work)

    async def _write(
        self,
        connection: AsyncConnection,
        org: Org,
        scope: Scope,
        period: Period,
        fmt: Format,
        locale: str,
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
        header = fixed + [c.header for c in columns]

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
        stream = store.responses(connection, windows)
        if fmt == "csv":
            count = await _write_csv(path, header, stream, cells)
        else:
            summary = await self._results.summary(connection, org, scope, period, locale)
            count = await _write_xlsx(path, header, stream, cells, summary)
        return ExportFile(locale, path, name, count)


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
