"""Staff outcomes as text, in the staff member's language; times in Asia/Jakarta."""

from __future__ import annotations

import html
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.services.access import Role, Scope
from bot.services.i18n import N_, datetime_text, gettext, use_locale
from bot.services.library import SurveyListing, SurveyRejected, SurveyStored, SurveyUsed
from bot.services.staff import (
    AuditRows,
    CodeNeeded,
    Invited,
    Locked,
    LoggedIn,
    LoggedOut,
    Refused,
    StaffChanged,
    StaffList,
    WhoAmI,
)
from flows import Problem, conditions, schema
from handlers.staff.commands import BY_NAME

_ = gettext
MAX_REPORT = 3900  # a message holds 4096 characters; the rest is for "… and N more."

REFUSED: dict[str, str] = {
    "no_session": N_("Please log in first: send /login followed by the code from your app."),
    "role": N_("Your role does not allow this."),
    "scope": N_("That is outside your scope."),
    "self": N_("You cannot change your own role, scope or access."),
    "rank": N_("You can only manage roles below your own."),
    "unknown_staff": N_("There is no staff member number {number}. /staff lists them."),
    "unknown_scope": N_(
        "Unknown scope {scope}: use all, region:<code> or branch:<code> of an existing one."
    ),
    "unknown_role": N_("Unknown role {role}: use super_admin, admin, editor or viewer."),
    "invitation_invalid": N_(
        "This invitation is not valid: it has expired or been used. Ask for a new one."
    ),
    "invitation_taken": N_("This invitation is being used by someone else."),
    "already_staff": N_("You are already registered as staff. Send /login to log in."),
    "not_enrolled": N_(
        "Your authenticator has been reset. Open the new invitation link you were given."
    ),
    "inactive": N_("Your staff access is switched off. Ask an administrator."),
    "locked": N_("Too many wrong codes: try again after {until}."),
    "code_wrong": N_(
        "That code is not right. Check that your phone's clock is correct and try again."
    ),
    "code_used": N_("That code was used already. Wait for the next one and send it."),
    "too_large": N_("That file is too large for a survey: at most {limit} KB."),
    "unknown_campaign": N_("There is no campaign number {number}. /campaigns lists them."),
    "unknown_survey": N_("There is no survey {survey}. /surveys lists them."),
    "campaign_state": N_(
        "Campaign {number} cannot do that in its current state. /campaign {number} shows it."
    ),
    "bad_start": N_("The start must be now or a future time written as YYYY-MM-DDTHH:MM."),
    "bad_reminders": N_("Reminders are at most two times such as 24h,72h, rising, or none."),
    "bad_expiry": N_("The expiry is a time such as 7d or 48h, later than the last reminder."),
    "unknown_follow_up": N_("There is no follow-up number {number}. /followups lists them."),
    "follow_up_taken": N_("Follow-up #{number} has been taken already."),
    "follow_up_resolved": N_("Follow-up #{number} is resolved already."),
    "follow_up_bad": N_("That button is not one of this bot's follow-up buttons."),
}

ROLE_NAMES = {
    Role.SUPER_ADMIN: N_("super admin"),
    Role.ADMIN: N_("admin"),
    Role.EDITOR: N_("editor"),
    Role.VIEWER: N_("viewer"),
}


def when(moment: datetime, zone: ZoneInfo) -> str:
    return datetime_text(moment, zone, "medium")


def role_name(role: Role) -> str:
    return _(ROLE_NAMES[role])


def scope_name(scope: Scope | str) -> str:
    if isinstance(scope, str):
        scope = Scope.parse(scope) or Scope("all")
    if scope.kind == "all":
        return _("all branches")
    if scope.kind == "region":
        return _("region {code}").format(code=scope.code)
    return _("branch {code}").format(code=scope.code)


def refused(outcome: Refused, zone: ZoneInfo, usage: str | None = None) -> str:
    with use_locale(outcome.locale):
        usage = html.escape(usage or "")
        if outcome.reason == "usage":
            return _("Usage: {usage}").format(usage=usage)
        params = {
            key: when(value, zone) if isinstance(value, datetime) else html.escape(str(value))
            for key, value in outcome.params.items()
        }
        text = html.escape(_(REFUSED[outcome.reason]), quote=False).format(**params)
        if usage and outcome.reason in ("unknown_role", "unknown_scope", "unknown_staff"):
            text += "\n" + _("Usage: {usage}").format(usage=usage)
        if outcome.reason == "code_wrong" and "left" in outcome.params:
            text += " " + _("{left} tries left before the account is locked.").format(
                left=outcome.params["left"]
            )
        return text


def usage(command: str, locale: str) -> str:
    with use_locale(locale):
        return _("Usage: {usage}").format(usage=html.escape(BY_NAME[command].usage))


def invited(outcome: Invited, link: str, zone: ZoneInfo) -> str:
    with use_locale(outcome.locale):
        return _(
            "Invitation for a new {role} ({scope}), valid once until {until}:\n{link}\n"
            "Send it only to that person, through a channel you trust."
        ).format(
            role=role_name(outcome.role),
            scope=scope_name(outcome.scope),
            until=when(outcome.expires_at, zone),
            link=html.escape(link),
        )


def reset_done(outcome: Invited, link: str, zone: ZoneInfo) -> str:
    with use_locale(outcome.locale):
        return _(
            "Staff member {number}'s authenticator is disabled and their sessions are closed. "
            "They enrol again with this link, valid once until {until}:\n{link}"
        ).format(
            number=outcome.reset_of, until=when(outcome.expires_at, zone), link=html.escape(link)
        )


def enrol_caption(locale: str, role: Role, scope: Scope) -> str:
    with use_locale(locale):
        return _(
            "Welcome! You are invited as {role} ({scope}). Scan this QR code with an "
            "authenticator app (Google Authenticator, Microsoft Authenticator, FreeOTP)."
        ).format(role=role_name(role), scope=scope_name(scope))


def enrol_secret(locale: str, secret: str) -> str:
    with use_locale(locale):
        return _(
            "Or type this key into the app: <code>{secret}</code>\n\n"
            "Then send me the 6-digit code the app shows. These messages will be deleted."
        ).format(secret=secret)


def logged_in(outcome: LoggedIn, zone: ZoneInfo) -> str:
    with use_locale(outcome.locale):
        first = _("Enrolment complete. ") if outcome.enrolled else ""
        return first + _(
            "You are logged in as {role} until {until}. Your commands are in the menu; "
            "/whoami shows your session."
        ).format(role=role_name(outcome.role), until=when(outcome.expires_at, zone))


def code_needed(outcome: CodeNeeded) -> str:
    with use_locale(outcome.locale):
        if outcome.action == "staff.login":
            return _("Send the 6-digit code from your authenticator app.")
        return _(
            "This action needs a fresh code: send the 6-digit code from your authenticator app "
            "and I will carry it out."
        )


def locked(outcome: Locked, zone: ZoneInfo) -> str:
    with use_locale(outcome.locale):
        return _("Too many wrong codes: your account is locked until {until}.").format(
            until=when(outcome.until, zone)
        )


def locked_alert(outcome: Locked, locale: str, zone: ZoneInfo) -> str:
    with use_locale(locale):
        return _(
            "Security: staff member {number} entered 5 wrong codes in a row and is locked "
            "until {until}."
        ).format(number=outcome.member.id, until=when(outcome.until, zone))


def logged_out(outcome: LoggedOut) -> str:
    with use_locale(outcome.locale):
        return _("You are logged out.")


def whoami(outcome: WhoAmI, zone: ZoneInfo) -> str:
    with use_locale(outcome.locale):
        return _("Staff member {number}: {role}, {scope}. Session until {until}.").format(
            number=outcome.member.id,
            role=role_name(outcome.role),
            scope=scope_name(outcome.scope),
            until=when(outcome.expires_at, zone),
        )


def staff_list(outcome: StaffList, zone: ZoneInfo) -> str:
    with use_locale(outcome.locale):
        lines = [_("Staff in your scope:")]
        for member in outcome.members:
            role = Role.parse(member.role) or Role.VIEWER
            if not member.active:
                status = _("off")
            elif member.totp_secret is None:
                status = _("not enrolled")
            elif member.id in outcome.live:
                status = _("logged in")
            else:
                status = _("active")
            last = when(member.last_login_at, zone) if member.last_login_at else _("never")
            lines.append(
                _("{number}. {name} — {role}, {scope} — last login {last} — {status}").format(
                    number=member.id,
                    name=html.escape(member.name or "?"),
                    role=role_name(role),
                    scope=scope_name(member.scope),
                    last=last,
                    status=status,
                )
            )
        if not outcome.members:
            lines.append(_("(none)"))
        return "\n".join(lines)


CHANGED = {
    "staff.role": N_("Staff member {number} is now {role}."),
    "staff.scope": N_("Staff member {number} now works in {scope}."),
    "staff.off": N_("Staff member {number} is switched off; their sessions are closed."),
    "staff.on": N_("Staff member {number} is switched on again."),
}


def changed(outcome: StaffChanged) -> str:
    with use_locale(outcome.locale):
        member = outcome.member
        return _(CHANGED[outcome.action]).format(
            number=member.id,
            role=role_name(Role.parse(member.role) or Role.VIEWER),
            scope=scope_name(member.scope),
        )


def audit_rows(outcome: AuditRows, zone: ZoneInfo) -> str:
    with use_locale(outcome.locale):
        if not outcome.rows:
            return _("The audit log is empty.")
        lines = [_("Latest audit log entries (newest first):")]
        for row in outcome.rows:
            target = f" → {row.target}" if row.target else ""
            at = when(row.at, zone)
            line = f"#{row.id} {at} {row.actor} {row.action}{target}: {row.outcome}"
            lines.append(html.escape(line))
        return "\n".join(lines)


# Values the survey engine words itself (kinds such as "a mapping") are translated too.
_WORDED_PARAMS = ("expected", "got", "detail")
_PROBLEM_TEMPLATES = {**schema.MESSAGES, **conditions.MESSAGES}


def problem_line(problem: Problem) -> str:
    """One survey problem in the current reader's language, after the path it is at."""
    template = _PROBLEM_TEMPLATES.get(problem.code)
    if template is None:
        message = problem.message
    else:
        params = {
            key: _(value) if key in _WORDED_PARAMS and isinstance(value, str) and value else value
            for key, value in problem.params.items()
        }
        message = _(template).format(**params)
    return f"{problem.path}: {message}" if problem.path else message


def survey_rejected(outcome: SurveyRejected) -> str:
    with use_locale(outcome.locale):
        head = _("{file} is not a valid survey; nothing was stored. Problems: {count}").format(
            file=html.escape(outcome.file_name), count=len(outcome.problems)
        )
        lines = [head]
        for shown, problem in enumerate(outcome.problems):
            line = f"• {html.escape(problem_line(problem))}"
            if sum(len(x) + 1 for x in lines) + len(line) > MAX_REPORT:
                left = len(outcome.problems) - shown
                lines.append(_("… and {count} more.").format(count=left))
                break
            lines.append(line)
        return "\n".join(lines)


def survey_stored(outcome: SurveyStored) -> str:
    with use_locale(outcome.locale):
        if not outcome.is_new:
            return _("Survey {key} is unchanged: it is the same as version {version}.").format(
                key=outcome.key, version=outcome.version
            )
        return _(
            "Survey {key} stored as version {version}. New sessions use it; surveys already "
            "under way keep the version they started with."
        ).format(key=outcome.key, version=outcome.version)


def survey_listing(outcome: SurveyListing) -> str:
    with use_locale(outcome.locale):
        if not outcome.surveys:
            return _("No surveys are stored yet.")
        lines = [f"<b>{_('Surveys')}</b>"]
        for entry in outcome.surveys:
            branches = ", ".join(entry.branches) if entry.branches else _("(none)")
            lines.append(
                _("{key}, version {version}; branches: {branches}").format(
                    key=entry.key, version=entry.version, branches=branches
                )
            )
        return "\n".join(lines)


def survey_used(outcome: SurveyUsed) -> str:
    with use_locale(outcome.locale):
        return _("Survey {key} now opens from the QR codes of {scope}: {branches}.").format(
            key=outcome.key, scope=scope_name(outcome.scope), branches=", ".join(outcome.branches)
        )


def preview_note(locale: str) -> str:
    with use_locale(locale):
        return _("Preview: your answers are not recorded.")


def preview_done(locale: str) -> str:
    with use_locale(locale):
        return _("End of the preview. Nothing was recorded.")


def preview_stale(locale: str) -> str:
    with use_locale(locale):
        return _("This preview has ended. Send /survey_preview to start again.")
