"""Campaign outcomes as text, in the staff member's language; times in the launcher's zone."""

from __future__ import annotations

import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services.campaigns import CampaignList, CampaignView, Report, SetupStep
from bot.services.i18n import N_, gettext, number, use_locale
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
    "scope": N_("Which customers: which branch or region?"),
    "start": N_("When should it start?"),
    "confirm": N_("Launch it now?"),
}

CHOICES = {
    "now": N_("Now"),
    "1h": N_("In 1 hour"),
    "24h": N_("In 24 hours"),
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
        lines.extend(_counts(outcome.report))
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
