"""`/results` and `/export`: the summary as text in the reader's language with its chart,
and the responses as a document."""

from __future__ import annotations

import html

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.services.charts import summary_chart
from bot.services.exports import ExportFile
from bot.services.i18n import fixed, ngettext, number, percent, use_locale
from bot.services.i18n import gettext as _
from bot.services.results import Scores, Summary
from handlers.context import Context
from handlers.staff import render
from handlers.staff.common import paced, say, show, who

MAX_BRANCH_LINES = 20  # a Telegram message holds 4,096 characters


def _score(value: float | None) -> str:
    return "–" if value is None else fixed(value, 1)


def _share(value: float | None) -> str:
    return "–" if value is None else percent(value)


def _change(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return ""
    delta = now - before
    return f" ({'+' if delta >= 0 else ''}{fixed(delta, 1)})"


def summary_text(summary: Summary) -> str:
    """The summary a staff member reads: headline figures, then the detail, then branches."""
    s, p = summary.scores, summary.previous
    with use_locale(summary.locale):
        period = f"{summary.period.first.isoformat()} – {summary.period.last.isoformat()}"
        scope = render.scope_name(summary.scope)
        campaign = summary.campaign
        if campaign is None:
            title = _("Results for {scope}, {period}").format(scope=scope, period=period)
            responses = ngettext(
                "{count} response (previous period: {before})",
                "{count} responses (previous period: {before})",
                s.responses,
            ).format(count=number(s.responses, 0), before=number(p.responses, 0))
        else:
            title = _("Results for {scope}, campaign {number} “{name}”, {period}").format(
                scope=scope, number=campaign.id, name=html.escape(campaign.name), period=period
            )
            responses = ngettext("{count} response", "{count} responses", s.responses).format(
                count=number(s.responses, 0)
            )
        lines = [
            "<b>" + title + "</b>",
            ngettext(
                "{count} invitation sent, response rate {rate}",
                "{count} invitations sent, response rate {rate}",
                s.invitations,
            ).format(count=number(s.invitations, 0), rate=_share(s.response_rate)),
            responses,
            _("Completion rate: {rate}").format(rate=_share(s.completion_rate)),
            _(
                "NPS {score}{change}: {promoters} promoters, {passives} passives, "
                "{detractors} detractors"
            ).format(
                score=_score(s.nps.score),
                change=_change(s.nps.score, p.nps.score),
                promoters=number(s.nps.promoters, 0),
                passives=number(s.nps.passives, 0),
                detractors=number(s.nps.detractors, 0),
            ),
        ]
        for line in s.csat:
            lines.append(
                _("CSAT {question} (1–{scale}): mean {mean}, top-2 {top}").format(
                    question=html.escape(line.question),
                    scale=line.scale,
                    mean=_score(line.summary.mean),
                    top=_share(line.summary.top2_share),
                )
            )
        if s.ces.count:
            lines.append(_("CES mean {mean} (1–7)").format(mean=_score(s.ces.mean)))
        for question, options in s.choices:
            top = ", ".join(f"{html.escape(o)} ({number(n, 0)})" for o, n in options)
            lines.append(
                _("Top choices, {question}: {top}").format(question=html.escape(question), top=top)
            )
        if s.drop_off:
            stopped = ", ".join(f"{html.escape(q)} ({number(n, 0)})" for q, n in s.drop_off[:5])
            lines.append(_("Stopped at: {where}").format(where=stopped))
        if summary.small_sample:
            lines.append(_("Small sample: fewer than 30 responses, read with care."))
        if len(summary.branches) > 1:
            lines.append("")
            lines.append(_("Branches, best first:"))
            shown = summary.branches[:MAX_BRANCH_LINES]
            for rank, branch in enumerate(shown, start=1):
                lines.append(
                    _branch_line(rank, branch.code, branch.name, branch.scores, branch.small_sample)
                )
            if len(summary.branches) > len(shown):
                more = len(summary.branches) - len(shown)
                lines.append(_("… and {count} more in the export.").format(count=number(more, 0)))
        return "\n".join(lines)


def _branch_line(rank: int, code: str, name: str, scores: Scores, small: bool) -> str:
    text = ngettext(
        "{code} {name}: NPS {nps}, CSAT top-2 {csat}, {count} response",
        "{code} {name}: NPS {nps}, CSAT top-2 {csat}, {count} responses",
        scores.responses,
    ).format(
        code=code,
        name=html.escape(name),
        nps=_score(scores.nps.score),
        csat=_share(scores.csat_top2),
        count=number(scores.responses, 0),
    )
    if scores.invitations:
        text += ", " + _("response rate {rate}").format(rate=_share(scores.response_rate))
    if small:
        return "· " + text + " " + _("(small sample, not ranked)")
    return f"{rank}. {text}"


async def results(update: Update, context: Context) -> None:
    """Shows the results for a scope and period, with a chart."""
    outcome = await context.services.results.for_staff(who(update), list(context.args or []))
    if not isinstance(outcome, Summary):
        await show(update, context, outcome, "results")
        return
    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
    await say(context, chat_id, summary_text(outcome))
    chart = summary_chart(outcome)
    await paced(context, chat_id, lambda: context.bot.send_photo(chat_id, chart))


async def export(update: Update, context: Context) -> None:
    """Sends the responses in scope as a CSV or XLSX document."""
    outcome = await context.services.exports.for_staff(who(update), list(context.args or []))
    if not isinstance(outcome, ExportFile):
        await show(update, context, outcome, "export")
        return
    await send_export(update, context, outcome)


async def send_export(update: Update, context: Context, outcome: ExportFile) -> None:
    """The export as a document, then gone from the disk (it may hold names and phones)."""
    assert update.effective_chat is not None
    try:
        with use_locale(outcome.locale):
            caption = ngettext("{count} response", "{count} responses", outcome.rows).format(
                count=number(outcome.rows, 0)
            )
        chat_id = update.effective_chat.id
        content = outcome.path.read_bytes()
        await paced(
            context,
            chat_id,
            lambda: context.bot.send_document(
                chat_id, content, filename=outcome.filename, caption=caption
            ),
        )
    finally:
        outcome.path.unlink(missing_ok=True)


def register(app: Application, group: int) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("results", results), group)
    app.add_handler(CommandHandler("export", export), group)
