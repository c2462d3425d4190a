"""Campaign outcomes as text, in the staff member's language; times in the launcher's zone."""

from __future__ import annotations

import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.campaigns import CampaignList, CampaignView, ListMatch, Report, SetupStep
from bot.services.customer_lists import row_error_text
from bot.services.i18n import N_, gettext, ngettext, number, percent, use_locale
from handlers.staff.render import scope_name, when

_ = gettext

STATUS = {
    "draft": N_("draft"),
    "scheduled": N_("scheduled"),
    "running": N_("running"),
    "paused": N_("paused"),
    "finished": N_("finished"),
    "cancelled": N_("cancelled"),
}

EXCLUDED = {
    "unknown_ref": N_("unknown customer ref"),
    "not_in_scope": N_("not in scope"),
    "no_telegram": N_("no Telegram account"),
    "no_consent": N_("no consent to the current notice"),
    "opted_out": N_("opted out"),
    "blocked": N_("blocked the bot"),
    "cooldown": N_("surveyed recently"),
}

DONE = {
    "campaign.create": N_(
        "Campaign {id} is ready as a draft. Launch it with /campaign_launch {id}."
    ),
    "campaign.launch": N_("Campaign {id} is launched."),
    "campaign.pause": N_("Campaign {id} is paused."),
    "campaign.resume": N_("Campaign {id} goes on."),
    "campaign.cancel": N_("Campaign {id} is cancelled."),
}

QUESTIONS = {
    "survey": N_("New campaign: which survey?"),
    "scope": N_("Which customers: which branch or region, or an imported list?"),
    "list": N_(
        "Send the customer list as a CSV file: the customer list format, or one customer ref "
        "per row. Only its customers in your scope who can receive a message are invited."
    ),
    "start": N_("When should it start?"),
    "confirm": N_("Launch it now?"),
}

CHOICES = {
    "now": N_("Now"),
    "1h": N_("In 1 hour"),
    "24h": N_("In 24 hours"),
    "list": N_("An imported list"),
    "launch": N_("Launch"),
    "cancel": N_("Cancel"),
}


def view(outcome: CampaignView) -> str:
    campaign, zone = outcome.campaign, outcome.zone
    with use_locale(outcome.locale):
        lines = []
        if outcome.action in DONE:
            lines.append(_(DONE[outcome.action]).format(id=campaign.id))
        lines.append(
            _("Campaign {id} «{name}»: {status}").format(
                id=campaign.id,
                name=html.escape(campaign.name, quote=False),
                status=_(STATUS.get(campaign.status, campaign.status)),
            )
        )
        lines.append(
            _("Survey {survey}, {scope}").format(
                survey=html.escape(outcome.survey_key or "?"), scope=scope_name(campaign.scope)
            )
        )
        start = campaign.started_at or campaign.start_at
        lines.append(
            _("Start: {start}; reminders after {reminders} hours; open for {hours} hours").format(
                start=when(start, zone) if start else _("at launch"),
                reminders=", ".join(str(h) for h in campaign.reminders) or "-",
                hours=campaign.expires_hours,
            )
        )
        if campaign.by_list:
            lines.append(_("Customers: those of the imported list"))
        if outcome.list_match is not None:
            lines.append(list_report(outcome.list_match))
        lines.extend(_counts(outcome.report))
        return "\n".join(lines)


def list_report(match: ListMatch, shown: int = 20) -> str:
    """How the list met the customers, in the current language: every row left out is named."""
    lines = [
        ngettext(
            "The list names {refs} customer ref: {found} found in scope.",
            "The list names {refs} customer refs: {found} found in scope.",
            match.refs,
        ).format(refs=number(match.refs, 0), found=number(match.found, 0))
    ]
    for rows, text in (
        (match.unknown_rows, _("Unknown customer ref on rows {rows}")),
        (match.outside_rows, _("Not in scope on rows {rows}")),
    ):
        if rows:
            more = f" (+{number(len(rows) - shown, 0)})" if len(rows) > shown else ""
            lines.append(text.format(rows=", ".join(str(r) for r in rows[:shown]) + more))
    lines.extend(html.escape(row_error_text(error)) for error in match.rejected[:shown])
    return "\n".join(lines)


def _counts(report: Report) -> list[str]:
    lines = []
    if report.dry_run:
        lines.append(
            _("Would invite {count} customers now.").format(count=number(report.targeted, 0))
        )
    else:
        lines.append(
            _(
                "Invited {targeted}: sent {sent}, waiting {pending}, failed {failed}, "
                "blocked {blocked}; reminders sent {reminded}; responses {responses}"
            ).format(
                targeted=number(report.targeted, 0),
                sent=number(report.sent, 0),
                pending=number(report.pending, 0),
                failed=number(report.failed, 0),
                blocked=number(report.blocked, 0),
                reminded=number(report.reminded, 0),
                responses=number(report.responses, 0),
            )
        )
    for branch in report.branches:
        rate = percent(branch.responses / branch.invited, 0) if branch.invited else "-"
        lines.append(
            _("{branch}: invited {invited}, responses {responses}, response rate {rate}").format(
                branch=branch.code,
                invited=number(branch.invited, 0),
                responses=number(branch.responses, 0),
                rate=rate,
            )
        )
    if report.excluded:
        parts = [
            f"{_(EXCLUDED.get(reason, reason))} {number(count, 0)}"
            for reason, count in sorted(report.excluded.items())
        ]
        lines.append(_("Left out: {reasons}").format(reasons=", ".join(parts)))
    return lines


def listing(outcome: CampaignList) -> str:
    with use_locale(outcome.locale):
        if not outcome.campaigns:
            return _("No campaigns yet. /campaign_new starts one.")
        lines = [_("Campaigns in your scope (newest first):")]
        for campaign in outcome.campaigns:
            lines.append(
                f"{campaign.id}. {html.escape(campaign.name, quote=False)} — "
                f"{_(STATUS.get(campaign.status, campaign.status))} — {scope_name(campaign.scope)}"
            )
        return "\n".join(lines)


def setup_step(outcome: SetupStep) -> tuple[str, InlineKeyboardMarkup]:
    with use_locale(outcome.locale):
        text = _(QUESTIONS[outcome.step])
        if outcome.list_match is not None:
            text = list_report(outcome.list_match) + "\n\n" + text
        if outcome.view is not None:
            text = view(outcome.view) + "\n\n" + text
        buttons = [
            InlineKeyboardButton(
                _(CHOICES[label]) if label in CHOICES else label,
                callback_data=f"cn:{outcome.campaign_id}:{value}"[:64],
            )
            for value, label in outcome.choices
        ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return text, InlineKeyboardMarkup(rows)
