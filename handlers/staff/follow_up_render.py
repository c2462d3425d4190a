"""Alerts and follow-ups as text and buttons, in each staff member's language.

An alert names the branch, the survey, the scores and the customer's comments; never who the
customer is. Its buttons carry `fu:t:<id>` (take) and `fu:r:<id>` (resolve).
"""

from __future__ import annotations

import html
import re
from datetime import datetime

from bot.services.follow_up import Alert, AlertsState, FollowUpList, Score
from bot.services.i18n import N_, duration, gettext, number, use_locale
from flows.schema import localized
from handlers.render import Keyboard, button, keyboard

_ = gettext
PRESS = re.compile(r"^fu:([tr]):(\d{1,9})$")

KINDS = {"rating": "CSAT", "nps": "NPS", "ces": "CES"}


def buttons(follow_up_id: int, *, taken: bool = False) -> Keyboard:
    """Take and Resolve; Resolve alone on the alert of whoever took it."""
    resolve = button(_("Resolve"), f"fu:r:{follow_up_id}")
    if taken:
        return keyboard([[resolve]])
    return keyboard([[button(_("Take"), f"fu:t:{follow_up_id}"), resolve]])


def alert(shown: Alert, locale: str, at: datetime) -> tuple[str, Keyboard]:
    """The alert (or its escalation) for one reader, with its Take and Resolve buttons."""
    found, survey = shown.follow_up, shown.survey
    with use_locale(locale):
        if shown.escalated:
            head = _("⏫ Follow-up #{id} has waited {age} without being resolved.").format(
                id=found.id, age=duration(at - found.created_at)
            )
        else:
            head = _("🔔 Follow-up #{id}: a customer was not satisfied.").format(id=found.id)
        lines = [
            f"<b>{head}</b>",
            _("Branch: {name} ({code})").format(
                name=html.escape(found.branch_name), code=html.escape(found.branch_code)
            ),
            _("Survey: {title}").format(
                title=html.escape(localized(survey.title, locale, survey.default_locale))
            ),
            _("Scores: {scores}").format(scores=" · ".join(_score(s) for s in shown.scores)),
        ]
        for comment in shown.comments:
            lines.append(_("Comment: «{text}»").format(text=html.escape(comment)))
        return "\n".join(lines), buttons(found.id)


def _score(score: Score) -> str:
    text = f"{KINDS.get(score.kind, score.kind)} ({html.escape(score.question_id)}) "
    text += f"{number(score.value, 0)}/{number(score.high, 0)}"
    return f"⚠️ {text}" if score.alerting else text


def alerts_state(outcome: AlertsState) -> str:
    with use_locale(outcome.locale):
        if outcome.on:
            return _(
                "Alerts are on: detractors in your branches reach you here. /alerts off stops them."
            )
        return _("Alerts are off. /alerts on sends you the detractors of your branches.")


def listing(outcome: FollowUpList) -> str:
    with use_locale(outcome.locale):
        if not outcome.items:
            return _("No open follow-ups in your scope.")
        lines = [
            "<b>"
            + _("Open follow-ups, the longest waiting first ({count}):").format(
                count=number(outcome.total, 0)
            )
            + "</b>"
        ]
        for item in outcome.items:
            state = _(STATES[item.status])
            lines.append(
                _("#{id} · {branch} · {state} · waiting {age}").format(
                    id=item.id,
                    branch=html.escape(item.branch_code),
                    state=state,
                    age=duration(outcome.at - item.created_at),
                )
            )
        if outcome.total > len(outcome.items):
            lines.append(
                _("… and {count} more.").format(count=number(outcome.total - len(outcome.items), 0))
            )
        return "\n".join(lines)


STATES = {"open": N_("open"), "taken": N_("taken"), "resolved": N_("resolved")}


def taken(locale: str, follow_up_id: int) -> str:
    with use_locale(locale):
        return _("You took follow-up #{id}. Resolve it with a note when it is done.").format(
            id=follow_up_id
        )


def note_asked(locale: str, follow_up_id: int) -> str:
    with use_locale(locale):
        return _(
            "Follow-up #{id}: send a short note on how it was resolved; it resolves the follow-up."
        ).format(id=follow_up_id)


def resolved(locale: str, follow_up_id: int) -> str:
    with use_locale(locale):
        return _("Follow-up #{id} is resolved; your note is kept.").format(id=follow_up_id)
