"""Turn conversation outcomes into message text and inline keyboards, in the reader's language."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.services.conversation import (
    Action,
    Completed,
    Info,
    InfoKind,
    Question,
    Rejected,
    ShowNotice,
)
from bot.services.i18n import LOCALES, N_, datetime_text, gettext, number, use_locale
from flows.engine import Reject
from flows.schema import Question as SurveyQuestion
from flows.schema import localized
from handlers import callbacks

_ = gettext

LANGUAGE_NAMES = {"id": "Bahasa Indonesia", "en": "English"}

INFO: dict[InfoKind, str] = {
    "greeting": N_(
        "Hello! I am Suara, the bank's survey assistant. Scan the QR code at a branch or open "
        "a survey link from us to share your experience. /help shows what I can do."
    ),
    "link_unknown": N_(
        "Sorry, this survey link is not valid or has expired. Please scan the QR code at the "
        "branch again or ask our staff for a new link."
    ),
    "already_answered": N_(
        "Thank you, you have already answered this survey recently. We appreciate your time!"
    ),
    "stale": N_("This button is no longer active. Please use the latest question."),
    "no_session": N_(
        "You have no survey in progress. Scan a branch QR code or open a survey link to start."
    ),
    "opted_out": N_(
        "Done: you will not receive survey invitations any more. Send /start at any time to "
        "receive them again."
    ),
    "opted_in": N_("Welcome back: you will receive survey invitations again."),
    "needs_consent": N_("Please send /start and read the privacy notice first."),
    "declined": N_(
        "Understood. Nothing has been stored apart from your decision. If you change your "
        "mind, send /start again."
    ),
    "contact_unknown": N_(
        "Thank you. Your number is not on our customer list: scan the QR code at a branch or "
        "open the link we sent you to answer a survey."
    ),
}

REJECT: dict[str, str] = {
    "not_a_number": N_("Please type a number, for example 12."),
    "not_an_integer": N_("Please type a whole number, without decimals."),
    "too_small": N_("The number must be at least {min}."),
    "too_large": N_("The number must be at most {max}."),
    "out_of_range": N_("Please give a value from {min} to {max}."),
    "unknown_option": N_("Please choose one of the options."),
    "too_few": N_("Please choose at least {min} options."),
    "too_many": N_("Please choose at most {max} options."),
    "empty": N_("Please type your answer."),
    "too_long": N_("Your answer is too long: at most {max_length} characters, please."),
    "not_yes_no": N_("Please answer yes or no."),
    "thousands_separator": N_("Please type the number without separators, for example 1500."),
}

COMMAND_HELP = {
    "start": N_("Start or continue a survey"),
    "language": N_("Choose your language"),
    "privacy": N_("Read the privacy notice"),
    "stop": N_("Stop survey invitations"),
    "mydata": N_("See the data stored about you"),
    "delete_me": N_("Erase your data"),
    "help": N_("What I can do"),
}

HELP = N_(
    "I am Suara, the bank's survey assistant.\n\n"
    "/start - start or continue a survey\n"
    "/language - choose Bahasa Indonesia or English\n"
    "/privacy - read the privacy notice\n"
    "/stop - stop receiving survey invitations\n"
    "/mydata - see the data stored about you\n"
    "/delete_me - erase your data\n"
    "/help - show this message\n\n"
    "Answer with the buttons, or type your answer when asked."
)


# An inline keyboard as the Bot API's JSON: a question is drawn on every press, and building
# python-telegram-bot's objects only to serialise them again cost more than the rest of
# rendering (bench/RESULTS.md).
Button = dict[str, str]
Keyboard = dict[str, list[list[Button]]]


def button(text: str, data: str) -> Button:
    return {"text": text, "callback_data": data}


def keyboard(rows: list[list[Button]]) -> Keyboard:
    return {"inline_keyboard": rows}


@dataclass(frozen=True)
class Reply:
    text: str
    markup: Keyboard | None = None


def info(outcome: Info) -> Reply:
    with use_locale(outcome.locale):
        return Reply(_(INFO[outcome.kind]))


def rejected(outcome: Rejected) -> Reply:
    with use_locale(outcome.locale):
        return Reply(reject_text(outcome.reject))


def reject_text(reject: Reject) -> str:
    template = _(REJECT.get(reject.reason, N_("Please check your answer and try again.")))
    params = {
        key: number(value, 2) if isinstance(value, int | float) else value
        for key, value in reject.params.items()
    }
    return template.format(**params)


def help_text(locale: str) -> Reply:
    with use_locale(locale):
        return Reply(_(HELP))


def notice(outcome: ShowNotice) -> Reply:
    """The privacy notice with Agree / Decline and a switch to the other language."""
    locale = outcome.locale
    other = next(code for code in LOCALES if code != locale)
    with use_locale(locale):
        rows = [
            [
                button(_("✅ I agree"), callbacks.notice("y", locale, outcome.payload)),
                button(_("Decline"), callbacks.notice("n", locale, outcome.payload)),
            ],
            [button(LANGUAGE_NAMES[other], callbacks.notice("l", other, outcome.payload))],
        ]
        return Reply(html.escape(outcome.text), keyboard(rows))


def consent_recorded(locale: str, agreed: bool) -> Reply:
    """What the notice message turns into once the customer decided."""
    with use_locale(locale):
        if agreed:
            return Reply(_("✅ You agreed to the privacy notice."))
        return Reply(_("You declined the privacy notice."))


def privacy(text: str) -> Reply:
    return Reply(html.escape(text))


def language_menu(locale: str) -> Reply:
    with use_locale(locale):
        buttons = [
            button(
                ("✓ " if code == locale else "") + LANGUAGE_NAMES[code], callbacks.language(code)
            )
            for code in LOCALES
        ]
        return Reply(_("Choose your language:"), keyboard([buttons]))


def language_set(locale: str) -> Reply:
    with use_locale(locale):
        return Reply(
            _("Language set to English.")
            if locale == "en"
            else _("Language set to Bahasa Indonesia.")
        )


def completed(outcome: Completed) -> Reply:
    survey = outcome.survey
    text = html.escape(localized(survey.outro, outcome.locale, survey.default_locale))
    if outcome.follow_up:  # staff see who answered only when the customer agreed
        with use_locale(outcome.locale):
            text += "\n\n" + (
                gettext("Our team will review your answers and contact you.")
                if outcome.may_contact
                else gettext("Our team will review your answers and follow them up.")
            )
    return Reply(text)


def question(outcome: Question) -> Reply:
    """The question with its progress line, answer buttons and Back / Skip."""
    ask, survey, locale = outcome.ask, outcome.survey, outcome.locale
    q = ask.question
    session, version = outcome.session_id, outcome.version
    with use_locale(locale):
        lines = []
        if outcome.intro:
            lines += [html.escape(localized(survey.intro, locale, survey.default_locale)), ""]
        elif outcome.resumed:
            lines += [_("Let's continue where you left off."), ""]
        lines.append(
            "<b>"
            + _("Question {position} of {total}").format(
                position=number(ask.position, 0), total=number(ask.total, 0)
            )
            + "</b>"
        )
        lines.append(html.escape(localized(q.text, locale, survey.default_locale)))
        hint = _hint(q)
        if hint:
            lines += ["", f"<i>{hint}</i>"]
        rows = _answer_rows(session, version, q, ask.draft, locale, survey.default_locale)
        nav = []
        if ask.position > 1:
            nav.append(button(_("« Back"), callbacks.survey(session, version, "back")))
        if q.optional:
            nav.append(button(_("Skip »"), callbacks.survey(session, version, "skip")))
        if nav:
            rows.append(nav)
        return Reply("\n".join(lines), keyboard(rows) if rows else None)


def _hint(q: SurveyQuestion) -> str:
    """How to answer, where buttons alone do not say it (scale anchors are the survey's words)."""
    if q.type == "multi":
        return _("Choose all that apply, then press Done.")
    if q.type == "text":
        return _("Type your answer and send it.")
    if q.type == "number":
        return _("Type a number and send it.")
    return ""


def _answer_rows(
    session_id: int,
    version: int,
    q: SurveyQuestion,
    draft: tuple[str, ...],
    locale: str,
    default: str,
) -> list[list[Button]]:
    def choose(label: str, action: Action, value: object) -> Button:
        return button(label, callbacks.survey(session_id, version, action, value))

    if q.type == "rating":
        return [[choose(f"{value}⭐", "answer", value) for value in range(1, q.scale + 1)]]
    if q.type == "nps":
        return [
            [choose(str(v), "answer", v) for v in range(0, 6)],
            [choose(str(v), "answer", v) for v in range(6, 11)],
        ]
    if q.type == "ces":
        return [[choose(str(v), "answer", v) for v in range(1, 8)]]
    if q.type == "yesno":
        return [[choose(_("Yes"), "answer", "yes"), choose(_("No"), "answer", "no")]]
    if q.type == "choice":
        return [[choose(localized(o.text, locale, default), "answer", o.id)] for o in q.options]
    if q.type == "multi":
        rows = [
            [
                choose(
                    ("☑️ " if o.id in draft else "⬜ ") + localized(o.text, locale, default),
                    "toggle",
                    o.id,
                )
            ]
            for o in q.options
        ]
        rows.append([choose(_("Done ✔"), "done", None)])
        return rows
    return []


def my_data(data: dict[str, Any] | None, locale: str, zone: ZoneInfo) -> Reply:
    """A readable account of what is stored; the full JSON document goes with it."""
    with use_locale(locale):
        if data is None:
            return Reply(_("We store no data about you."))
        profile = data["profile"]
        agreed = [c for c in data["consents"] if c["decision"] == "agree"]
        done = sum(1 for s in data["surveys"] if s["status"] == "completed")
        lines = [
            "<b>" + _("Your data at Suara") + "</b>",
            _("Telegram ID: {value}").format(value=profile["telegram_id"]),
            _("Name: {value}").format(value=html.escape(profile["name"] or "-")),
            _("Phone: {value}").format(value=html.escape(profile["phone"] or "-")),
            _("Language: {value}").format(value=LANGUAGE_NAMES.get(profile["language"], "-")),
            _("Survey invitations: {value}").format(
                value=_("stopped") if profile["opted_out"] else _("allowed")
            ),
        ]
        if agreed:
            moment = datetime.fromisoformat(agreed[-1]["at"])
            lines.append(
                _("Privacy notice agreed: version {version}, {when}").format(
                    version=html.escape(agreed[-1]["version"]), when=datetime_text(moment, zone)
                )
            )
        lines += [
            _("Surveys: {started} started, {done} completed").format(
                started=number(len(data["surveys"]), 0), done=number(done, 0)
            ),
            "",
            _(
                "The attached file holds all of it, including every answer. "
                "/delete_me erases your data."
            ),
        ]
        return Reply("\n".join(lines))


def erase_confirm(locale: str) -> Reply:
    with use_locale(locale):
        rows = [
            [
                button(_("Yes, erase my data"), callbacks.erase(True)),
                button(_("Cancel"), callbacks.erase(False)),
            ]
        ]
        return Reply(
            _(
                "Erase your data? Your name, phone, Telegram ID and written comments will be "
                "deleted and any survey in progress ends. Your ratings stay, without anything "
                "that links them to you. This cannot be undone."
            ),
            keyboard(rows),
        )


def erased(locale: str, done: bool) -> Reply:
    with use_locale(locale):
        if not done:
            return Reply(_("We store no data about you."))
        return Reply(
            _(
                "Your data has been erased. Thank you for having shared your opinion "
                "with us; send /start if you ever want to take part again."
            )
        )


def erase_cancelled(locale: str) -> Reply:
    with use_locale(locale):
        return Reply(_("Nothing was erased."))
