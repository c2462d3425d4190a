"""The staff commands: each names the action of the permission table it runs, its usage and
its line in the command menu. Menus, help and the permission tests all read this one table."""

from __future__ import annotations

from dataclasses import dataclass

from bot.services.access import PERMISSIONS, Role
from bot.services.i18n import N_


@dataclass(frozen=True)
class StaffCommand:
    name: str
    action: str
    usage: str
    description: str


COMMANDS: tuple[StaffCommand, ...] = (
    StaffCommand("whoami", "staff.whoami", "/whoami", N_("Your role, scope and session")),
    StaffCommand("logout", "staff.logout", "/logout", N_("End your staff session")),
    StaffCommand("staff", "staff.list", "/staff", N_("Staff in your scope")),
    StaffCommand(
        "staff_invite",
        "staff.invite",
        "/staff_invite <role> <scope>",
        N_("Invite a staff member"),
    ),
    StaffCommand("staff_role", "staff.role", "/staff_role <n> <role>", N_("Change a role")),
    StaffCommand("staff_scope", "staff.scope", "/staff_scope <n> <scope>", N_("Change a scope")),
    StaffCommand("staff_off", "staff.off", "/staff_off <n>", N_("Deactivate a staff member")),
    StaffCommand("staff_on", "staff.on", "/staff_on <n>", N_("Reactivate a staff member")),
    StaffCommand(
        "staff_reset", "staff.reset", "/staff_reset <n>", N_("Reset a staff member's TOTP")
    ),
    StaffCommand("audit", "audit.read", "/audit [n]", N_("The latest audit log entries")),
    StaffCommand(
        "results",
        "results.read",
        "/results [branch|region|all] [7d|30d|2026-10|2026-10-01..2026-10-31|campaign <id>]",
        N_("Results for your branches"),
    ),
    StaffCommand(
        "export",
        "export.read",
        "/export [branch|region|all] [7d|30d|2026-10|2026-10-01..2026-10-31] [csv|xlsx] [contacts]",
        N_("Responses as a CSV or XLSX file"),
    ),
    StaffCommand("surveys", "survey.list", "/surveys", N_("Surveys, versions and their branches")),
    StaffCommand(
        "survey_preview",
        "survey.preview",
        "/survey_preview <survey>",
        N_("Try a survey; nothing is recorded"),
    ),
    StaffCommand(
        "survey_use",
        "survey.use",
        "/survey_use <survey> <scope>",
        N_("Choose the survey a branch's QR code opens"),
    ),
    StaffCommand("qr", "qr.poster", "/qr <branch> [survey]", N_("A printable QR poster")),
    StaffCommand("campaigns", "campaign.list", "/campaigns", N_("Campaigns in your scope")),
    StaffCommand(
        "campaign", "campaign.show", "/campaign <id>", N_("A campaign's status and counts")
    ),
    StaffCommand("campaign_new", "campaign.create", "/campaign_new", N_("Set up a new campaign")),
    StaffCommand(
        "campaign_launch", "campaign.launch", "/campaign_launch <id>", N_("Launch a campaign")
    ),
    StaffCommand(
        "campaign_pause", "campaign.pause", "/campaign_pause <id>", N_("Pause a campaign")
    ),
    StaffCommand(
        "campaign_resume", "campaign.resume", "/campaign_resume <id>", N_("Resume a campaign")
    ),
    StaffCommand(
        "campaign_cancel", "campaign.cancel", "/campaign_cancel <id>", N_("Cancel a campaign")
    ),
    StaffCommand(
        "alerts", "alerts.set", "/alerts [on|off]", N_("Detractor alerts for your branches")
    ),
    StaffCommand("followups", "followups.list", "/followups", N_("Open follow-ups and their age")),
)

BY_NAME = {command.name: command for command in COMMANDS}


def allowed(role: Role) -> list[StaffCommand]:
    """The commands a role may run, in menu order."""
    return [command for command in COMMANDS if PERMISSIONS[command.action] <= role]
