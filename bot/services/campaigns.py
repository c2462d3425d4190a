"""Campaigns: invite the customers of a scope to a pinned survey, on a schedule, with reminders.

Every command is one audited unit of work, from chat (through `StaffAccess.run_command`, which
checks staff, session and role; the scope of the campaign is checked here) or from the command
line as the `system` actor, with the same rules. A campaign's deliveries are made when it
starts: one invitation per targeted customer and one row per reminder, each due at its time.
The sender sends what is due; `tick` starts scheduled campaigns and ends expired ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services.access import Org, Scope
from bot.services.clock import Clock, system_clock
from bot.services.customer_csv import TOO_LARGE, BadList, RefList, RowError, parse_refs
from bot.services.customer_lists import ListUnreadable, ref_index
from bot.services.staff import STEP_UP_WINDOW, Actor, CodeNeeded, Refused, StaffAccess, Who
from bot.services.surveys import SurveyCatalog
from storage import audit, orgs
from storage import campaigns as store
from storage import customer_lists as list_store
from storage import staff as staff_store
from storage.campaigns import Campaign
from storage.db import Database

DEFAULT_ZONE = "Asia/Jakarta"
DEFAULT_REMINDERS = (24, 72)
DEFAULT_EXPIRY_HOURS = 7 * 24
MAX_REMINDERS = 2
STEP_UP_ABOVE = 1000  # launching to more customers than this needs a fresh code
BUSY_FOR = timedelta(hours=1)  # a session touched this recently is a survey in progress
LIST_WAIT = timedelta(hours=1)  # how long a `/campaign_new` waits for its list's file
SYSTEM = "system"
_START = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$")
_SPAN = re.compile(r"^(\d{1,4})([hd])$")


@dataclass(frozen=True)
class Launcher:
    """Who runs a campaign command: a staff actor, or the system (the command line)."""

    ref: str
    scope: Scope
    locale: str
    chat_id: int | None = None
    actor: Actor | None = None


SYSTEM_LAUNCHER = Launcher(SYSTEM, Scope("all"), "en")


@dataclass(frozen=True)
class Report:
    """What a campaign did so far, or (before it starts) what it would do now."""

    targeted: int
    excluded: dict[str, int]
    pending: int = 0
    sent: int = 0
    failed: int = 0
    blocked: int = 0
    reminded: int = 0
    responses: int = 0
    dry_run: bool = False
    branches: tuple[BranchCount, ...] = ()


@dataclass(frozen=True)
class BranchCount:
    """One branch's share of a started campaign: invitations sent and surveys completed."""

    code: str
    invited: int
    responses: int


@dataclass(frozen=True)
class ListMatch:
    """How an imported list met the customers: every ref is reported, none silently dropped."""

    refs: int  # distinct valid refs in the files
    found: int  # of them, customers inside the campaign's scope
    unknown_rows: tuple[int, ...]  # rows whose ref no customer has
    outside_rows: tuple[int, ...]  # rows of customers outside the campaign's scope
    rejected: tuple[RowError, ...] = ()  # rows that hold no valid ref


@dataclass(frozen=True)
class CampaignView:
    locale: str
    campaign: Campaign
    survey_key: str | None
    report: Report
    zone: ZoneInfo
    action: str = "campaign.show"  # or the change just made
    list_match: ListMatch | None = None


@dataclass(frozen=True)
class CampaignList:
    locale: str
    campaigns: tuple[Campaign, ...]
    zone: ZoneInfo


@dataclass(frozen=True)
class SetupStep:
    """The guided `/campaign_new`: the next question and its choices (value, label)."""

    locale: str
    campaign_id: int
    step: str  # survey | scope | list | start | confirm
    choices: tuple[tuple[str, str], ...]
    view: CampaignView | None = None
    list_match: ListMatch | None = None


Outcome = CampaignView | CampaignList | SetupStep | Refused | CodeNeeded | ListUnreadable
Body = Callable[[AsyncConnection, Launcher, datetime], Awaitable[Outcome]]


@dataclass
class Plan:
    """A campaign's settings as entered, checked by `plan`."""

    name: str
    survey_key: str
    scope: str
    start: str = "now"
    reminders: str = "24h,72h"
    expires: str = "7d"
    lists: tuple[RefList, ...] = ()  # imported lists: only their customers are targeted
    fields: dict[str, Any] = field(default_factory=dict)


class Campaigns:
    """Campaign commands over the database; the sender and the scheduler read what they store."""

    def __init__(
        self,
        db: Database,
        catalog: SurveyCatalog,
        staff: StaffAccess,
        *,
        notice_version: str,
        cooldown_days: int,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._staff = staff
        self._notice_version = notice_version
        self._cooldown = timedelta(days=cooldown_days) if cooldown_days else None
        self.clock = clock
        staff.add_risky("campaign.launch", self._launch_after_step_up)

    # -- commands ------------------------------------------------------------------------------

    async def create(self, who: Who | None, plan: Plan) -> Outcome:
        async def body(connection: AsyncConnection, launcher: Launcher, at: datetime) -> Outcome:
            org = await _org(connection)
            scope = Scope.parse(plan.scope)
            if scope is None or not org.exists(scope):
                return Refused(launcher.locale, "unknown_scope", {"scope": plan.scope})
            if not org.covers(launcher.scope, scope):
                return Refused(launcher.locale, "scope")
            pinned = await self._catalog.latest(connection, plan.survey_key)
            if pinned is None:
                return Refused(launcher.locale, "unknown_survey", {"survey": plan.survey_key})
            zone = zone_of(org, launcher.scope)
            start_at = parse_start(plan.start, zone, at)
            reminders = parse_reminders(plan.reminders)
            expires = parse_span(plan.expires)
            if start_at is False:
                return Refused(launcher.locale, "bad_start")
            if reminders is None:
                return Refused(launcher.locale, "bad_reminders")
            if expires is None or (reminders and expires <= max(reminders)):
                return Refused(launcher.locale, "bad_expiry")
            campaign_id = await store.create(
                connection,
                name=plan.name.strip()[:100] or "-",
                survey_id=pinned.id,
                scope=str(scope),
                status=store.DRAFT,
                start_at=start_at,
                reminders=",".join(str(h) for h in reminders),
                expires_hours=expires,
                created_by=launcher.ref,
                created_at=at,
            )
            matched = None
            if plan.lists:
                matched = await self._target_lists(
                    connection, launcher, org, campaign_id, scope, plan.lists, at
                )
            view = await self._view(connection, launcher, campaign_id, at, "campaign.create")
            return replace(view, list_match=matched)

        return await self._command(who, "campaign.create", body)

    async def list(self, who: Who | None) -> Outcome:
        async def body(connection: AsyncConnection, launcher: Launcher, at: datetime) -> Outcome:
            org = await _org(connection)
            found = [
                c
                for c in await store.listed(connection)
                if org.covers(launcher.scope, Scope.parse(c.scope) or Scope("all"))
            ]
            return CampaignList(launcher.locale, tuple(found), zone_of(org, launcher.scope))

        return await self._command(who, "campaign.list", body)

    async def show(self, who: Who | None, number: str) -> Outcome:
        async def body(connection: AsyncConnection, launcher: Launcher, at: datetime) -> Outcome:
            found = await self._find(connection, launcher, number)
            if isinstance(found, Refused):
                return found
            return await self._view(connection, launcher, found.id, at)

        return await self._command(who, "campaign.show", body, _target(number))

    async def launch(self, who: Who | None, number: str) -> Outcome:
        async def body(connection: AsyncConnection, launcher: Launcher, at: datetime) -> Outcome:
            return await self._launch(connection, launcher, at, number, stepped_up=False)

        return await self._command(who, "campaign.launch", body, _target(number))

    async def pause(self, who: Who | None, number: str) -> Outcome:
        return await self._change(
            who, "campaign.pause", number, (store.SCHEDULED, store.RUNNING), _paused
        )

    async def resume(self, who: Who | None, number: str) -> Outcome:
        return await self._change(who, "campaign.resume", number, (store.PAUSED,), _resumed)

    async def cancel(self, who: Who | None, number: str) -> Outcome:
        return await self._change(
            who,
            "campaign.cancel",
            number,
            (store.DRAFT, store.SCHEDULED, store.RUNNING, store.PAUSED),
            lambda c: store.CANCELLED,
        )

    # -- the guided conversation in chat -------------------------------------------------------

    async def setup(self, who: Who, number: str | None, choice: str | None) -> Outcome:
        """`/campaign_new` and its buttons. The draft campaign row holds the answers so far and
        `setup` the next question, so the conversation survives a restart."""

        async def body(connection: AsyncConnection, launcher: Launcher, at: datetime) -> Outcome:
            org = await _org(connection)
            if number is None:
                local = at.astimezone(zone_of(org, launcher.scope))  # as the launcher reads it
                campaign_id = await store.create(
                    connection,
                    name=f"{launcher.ref} {local:%Y-%m-%d %H:%M}",
                    scope=str(launcher.scope),
                    status=store.DRAFT,
                    setup="survey",
                    created_by=launcher.ref,
                    created_at=at,
                )
                return await self._ask(connection, launcher, org, campaign_id, "survey", at)
            campaign = await self._find(connection, launcher, number, drafts=True)
            if isinstance(campaign, Refused):
                return campaign
            if campaign.setup is None or choice is None:
                return Refused(launcher.locale, "campaign_state", {"number": campaign.id})
            step = campaign.setup
            if step == "survey":
                pinned = await self._catalog.latest(connection, choice)
                if pinned is None:
                    return Refused(launcher.locale, "unknown_survey", {"survey": choice})
                await store.update(connection, campaign.id, survey_id=pinned.id, setup="scope")
                return await self._ask(connection, launcher, org, campaign.id, "scope", at)
            if step == "scope" and choice == "list":
                await store.update(connection, campaign.id, setup="list")
                return await self._ask(connection, launcher, org, campaign.id, "list", at)
            if step == "scope":
                scope = Scope.parse(choice)
                if scope is None or not org.exists(scope):
                    return Refused(launcher.locale, "unknown_scope", {"scope": choice})
                if not org.covers(launcher.scope, scope):
                    return Refused(launcher.locale, "scope")
                await store.update(connection, campaign.id, scope=str(scope), setup="start")
                return await self._ask(connection, launcher, org, campaign.id, "start", at)
            if step == "start":
                hours = int(choice) if choice.isdigit() else 0
                start_at = at + timedelta(hours=hours) if hours else None
                await store.update(connection, campaign.id, start_at=start_at, setup="confirm")
                return await self._ask(connection, launcher, org, campaign.id, "confirm", at)
            if step == "confirm" and choice == "launch":
                await store.update(connection, campaign.id, setup=None)
                return await self._launch(
                    connection, launcher, at, str(campaign.id), stepped_up=False
                )
            await store.update(connection, campaign.id, setup=None, status=store.CANCELLED)
            return await self._view(connection, launcher, campaign.id, at, "campaign.cancel")

        target = None if number is None else _target(number)
        action = "campaign.launch" if choice == "launch" else "campaign.create"
        return await self._command(who, action, body, target)

    async def _ask(
        self,
        connection: AsyncConnection,
        launcher: Launcher,
        org: Org,
        campaign_id: int,
        step: str,
        at: datetime,
    ) -> SetupStep:
        choices: tuple[tuple[str, str], ...] = ()
        view = None
        if step == "survey":
            keys = await store.survey_keys(connection)
            choices = tuple((key, key) for key in keys)
        elif step == "scope":
            inside = [str(launcher.scope)]
            if launcher.scope.kind == "all":
                inside += [f"region:{code}" for code in sorted(org.regions)]
            inside += [f"branch:{code}" for code in org.branch_codes_within(launcher.scope)]
            choices = tuple((scope, scope) for scope in dict.fromkeys(inside))
            choices += (("list", "list"),)
        elif step == "list":
            choices = (("cancel", "cancel"),)
        elif step == "start":
            choices = (("0", "now"), ("1", "1h"), ("24", "24h"))
        else:
            view = await self._view(connection, launcher, campaign_id, at)
            choices = (("launch", "launch"), ("cancel", "cancel"))
        return SetupStep(launcher.locale, campaign_id, step, choices, view)

    async def awaiting_list(self, who: Who) -> int | None:
        """The `/campaign_new` of this staff member that waits for its list's file, if any: a
        CSV they send now is that list rather than an import."""

        async def work(connection: AsyncConnection) -> int | None:
            member = await staff_store.by_telegram_id(connection, who.telegram_id)
            if member is None:
                return None
            return await store.awaiting_list(
                connection, f"staff:{member.id}", self.clock() - LIST_WAIT
            )

        return await self._db.run(work)

    async def take_list(self, who: Who, number: int, data: bytes | None) -> Outcome:
        """The file a `/campaign_new` asked for (None: too large to fetch): its customers,
        within the campaign's scope, are whom the campaign targets; then the next question."""

        async def body(connection: AsyncConnection, launcher: Launcher, at: datetime) -> Outcome:
            campaign = await self._find(connection, launcher, str(number), drafts=True)
            if isinstance(campaign, Refused):
                return campaign
            if campaign.setup != "list":
                return Refused(launcher.locale, "campaign_state", {"number": campaign.id})
            try:
                if data is None:
                    raise BadList(TOO_LARGE)
                listed = parse_refs(data)
            except BadList as error:
                return ListUnreadable(launcher.locale, error.reason)
            org = await _org(connection)
            scope = Scope.parse(campaign.scope) or Scope("all")
            matched = await self._target_lists(
                connection, launcher, org, campaign.id, scope, (listed,), at
            )
            await store.update(connection, campaign.id, setup="start")
            step = await self._ask(connection, launcher, org, campaign.id, "start", at)
            return replace(step, list_match=matched)

        return await self._command(who, "campaign.create", body, _target(number))

    async def _target_lists(
        self,
        connection: AsyncConnection,
        launcher: Launcher,
        org: Org,
        campaign_id: int,
        scope: Scope,
        lists: tuple[RefList, ...],
        at: datetime,
    ) -> ListMatch:
        """Keep the lists' refs (as keyed hashes) as the campaign's targets and say how they
        met the customers; audited with the counts, never the refs."""
        rows: dict[str, int] = {}  # ref hash -> its first row; a ref on two lists counts once
        for listed in lists:
            for row, ref in listed.refs:
                rows.setdefault(ref_index(ref), row)
        known = await list_store.by_ref_hashes(connection, rows)
        inside = {org.branches[code].id for code in org.branch_codes_within(scope)}
        unknown = sorted(row for ref_hash, row in rows.items() if ref_hash not in known)
        outside = sorted(
            row
            for ref_hash, row in rows.items()
            if ref_hash in known and scope.kind != "all" and known[ref_hash].branch_id not in inside
        )
        await store.add_targets(connection, campaign_id, list(rows))
        matched = ListMatch(
            refs=len(rows),
            found=len(rows) - len(unknown) - len(outside),
            unknown_rows=tuple(unknown),
            outside_rows=tuple(outside),
            rejected=tuple(error for listed in lists for error in listed.errors),
        )
        await audit.append(
            connection,
            launcher.ref,
            "campaign.list",
            target=_target(campaign_id),
            details={
                "refs": matched.refs,
                "found": matched.found,
                "unknown_ref": len(unknown),
                "not_in_scope": len(outside),
                "rejected_rows": len({error.number for error in matched.rejected}),
            },
            at=at,
        )
        return matched

    # -- what the commands share ---------------------------------------------------------------

    async def _command(
        self, who: Who | None, action: str, body: Body, target: str | None = None
    ) -> Outcome:
        """Run `body` for a staff member in chat (authorised and audited by StaffAccess), or
        for the command line as the system actor, audited the same way."""
        if who is not None:

            async def staff_body(connection: AsyncConnection, actor: Actor, at: datetime) -> Any:
                return await body(connection, _launcher(actor), at)

            return await self._staff.run_command(who, action, staff_body, target)

        async def work(connection: AsyncConnection) -> Outcome:
            at = self.clock()
            outcome = await body(connection, SYSTEM_LAUNCHER, at)
            refused = isinstance(outcome, Refused)
            await audit.append(
                connection,
                SYSTEM,
                action,
                target=target,
                outcome="refused" if refused else "allowed",
                details={"reason": outcome.reason} if isinstance(outcome, Refused) else {},
                at=at,
            )
            return outcome

        return await self._db.run(work)

    async def _find(
        self, connection: AsyncConnection, launcher: Launcher, number: str, *, drafts: bool = False
    ) -> Campaign | Refused:
        campaign = None
        if number.isdigit() and len(number) < 10:
            campaign = await store.get(connection, int(number), lock=True)
        if campaign is None or (campaign.setup is not None and not drafts):
            return Refused(launcher.locale, "unknown_campaign", {"number": number[:12]})
        org = await _org(connection)
        if not org.covers(launcher.scope, Scope.parse(campaign.scope) or Scope("all")):
            return Refused(launcher.locale, "scope")
        return campaign

    async def _change(
        self,
        who: Who | None,
        action: str,
        number: str,
        allowed: tuple[str, ...],
        new_status: Callable[[Campaign], str],
    ) -> Outcome:
        async def body(connection: AsyncConnection, launcher: Launcher, at: datetime) -> Outcome:
            campaign = await self._find(connection, launcher, number)
            if isinstance(campaign, Refused):
                return campaign
            if campaign.status not in allowed:
                return Refused(launcher.locale, "campaign_state", {"number": campaign.id})
            status = new_status(campaign)
            changes: dict[str, Any] = {"status": status}
            if status == store.CANCELLED:
                changes["ended_at"] = at
                await store.skip_pending(connection, campaign.id, "cancelled")
            await store.update(connection, campaign.id, **changes)
            return await self._view(connection, launcher, campaign.id, at, action)

        return await self._command(who, action, body, _target(number))

    async def _launch(
        self,
        connection: AsyncConnection,
        launcher: Launcher,
        at: datetime,
        number: str,
        *,
        stepped_up: bool,
    ) -> Outcome:
        campaign = await self._find(connection, launcher, number)
        if isinstance(campaign, Refused):
            return campaign
        if campaign.status != store.DRAFT:
            return Refused(launcher.locale, "campaign_state", {"number": campaign.id})
        actor = launcher.actor
        if actor is not None and not stepped_up:
            audience = await self._audience(connection, campaign, at)
            fresh = actor.member.totp_last_at is not None and (
                at - actor.member.totp_last_at <= STEP_UP_WINDOW
            )
            if len(audience.targeted) > STEP_UP_ABOVE and not fresh:
                pending = {
                    "action": "campaign.launch",
                    "args": {"number": str(campaign.id)},
                    "target": _target(str(campaign.id)),
                }
                await staff_store.update(
                    connection, actor.member.id, pending=pending, pending_at=at
                )
                return CodeNeeded(launcher.locale, "campaign.launch")
        scheduled = campaign.start_at is not None and campaign.start_at > at
        await store.update(
            connection,
            campaign.id,
            status=store.SCHEDULED if scheduled else store.RUNNING,
            report_chat=launcher.chat_id,
        )
        if not scheduled:
            await self._begin(connection, campaign, at)
        return await self._view(connection, launcher, campaign.id, at, "campaign.launch")

    async def _launch_after_step_up(
        self, connection: AsyncConnection, actor: Actor, at: datetime, number: str, **_: Any
    ) -> Outcome:
        """The launch a fresh code was asked for, carried out once the code is accepted."""
        return await self._launch(connection, _launcher(actor), at, number, stepped_up=True)

    async def _begin(self, connection: AsyncConnection, campaign: Campaign, at: datetime) -> None:
        """Start a campaign: its audience now, an invitation each, its reminders and expiry."""
        audience = await self._audience(connection, campaign, at)
        await store.add_deliveries(connection, campaign.id, audience.targeted, store.INVITE, at)
        for kind, hours in zip(store.REMINDERS, campaign.reminders, strict=False):
            await store.add_deliveries(
                connection, campaign.id, audience.targeted, kind, at + timedelta(hours=hours)
            )
        await store.update(
            connection,
            campaign.id,
            status=store.RUNNING,
            started_at=at,
            expires_at=at + timedelta(hours=campaign.expires_hours),
            session_mark=await store.last_session_id(connection),
            excluded=json.dumps(audience.excluded, sort_keys=True),
        )

    async def _audience(
        self, connection: AsyncConnection, campaign: Campaign, at: datetime
    ) -> store.Audience:
        org = await _org(connection)
        scope = Scope.parse(campaign.scope) or Scope("all")
        branch_ids = (
            None
            if scope.kind == "all"
            else [org.branches[code].id for code in org.branch_codes_within(scope)]
        )
        since = None if self._cooldown is None else at - self._cooldown
        return await store.audience(
            connection,
            branch_ids,
            self._notice_version,
            since,
            campaign.id,
            by_list=campaign.by_list,
        )

    async def _view(
        self,
        connection: AsyncConnection,
        launcher: Launcher,
        campaign_id: int,
        at: datetime,
        action: str = "campaign.show",
    ) -> CampaignView:
        campaign = await store.get(connection, campaign_id)
        assert campaign is not None
        org = await _org(connection)
        key = None
        if campaign.survey_id is not None:
            key = (await self._catalog.pinned(connection, campaign.survey_id)).survey.id
        return CampaignView(
            launcher.locale,
            campaign,
            key,
            await self.report(connection, campaign, at),
            zone_of(org, launcher.scope),
            action,
        )

    async def report(self, connection: AsyncConnection, campaign: Campaign, at: datetime) -> Report:
        """Counts so far; before the start, a dry run of who would be invited."""
        if campaign.started_at is None:
            if campaign.survey_id is None:
                return Report(0, {}, dry_run=True)
            audience = await self._audience(connection, campaign, at)
            return Report(len(audience.targeted), audience.excluded, dry_run=True)
        counts = await store.counts(connection, campaign.id)

        def invites(*statuses: str) -> int:
            return sum(counts.get((store.INVITE, status), 0) for status in statuses)

        return Report(
            targeted=sum(n for (kind, _), n in counts.items() if kind == store.INVITE),
            excluded=campaign.excluded or {},
            pending=invites(store.PENDING, store.SENDING),
            sent=invites(store.SENT),
            failed=invites(store.FAILED),
            blocked=invites(store.BLOCKED),
            reminded=sum(counts.get((kind, store.SENT), 0) for kind in store.REMINDERS),
            responses=await store.responses(connection, campaign),
            branches=await self._branches(connection, campaign),
        )

    async def _branches(
        self, connection: AsyncConnection, campaign: Campaign
    ) -> tuple[BranchCount, ...]:
        org = await _org(connection)
        codes = {branch.id: code for code, branch in org.branches.items()}
        found = [
            BranchCount(codes.get(branch_id, "-") if branch_id else "-", invited, responses)
            for branch_id, invited, responses in await store.by_branch(connection, campaign)
        ]
        return tuple(sorted(found, key=lambda count: count.code))

    async def member_changed(self, telegram_id: int, blocked: bool) -> None:
        """Telegram said the customer blocked (or unblocked) the bot: nothing more is sent to
        a blocked customer until they unblock it."""
        await self._db.run(lambda c: store.mark_blocked(c, telegram_id, blocked))

    # -- the scheduler's tick ------------------------------------------------------------------

    async def tick(self) -> int:
        """Start the scheduled campaigns that are due and end the expired ones; idempotent, so
        every process's scheduler may run it. How many campaigns changed."""

        async def work(connection: AsyncConnection) -> int:
            at = self.clock()
            changed = 0
            for campaign in await store.in_status(
                connection, (store.SCHEDULED, store.RUNNING, store.PAUSED), lock=True
            ):
                if campaign.status == store.SCHEDULED and (campaign.start_at or at) <= at:
                    await self._begin(connection, campaign, at)
                    await audit.append(
                        connection,
                        SYSTEM,
                        "campaign.start",
                        target=_target(campaign.id),
                        at=at,
                    )
                    changed += 1
                elif campaign.expires_at is not None and campaign.expires_at <= at:
                    await store.skip_pending(connection, campaign.id, "expired")
                    await store.end_open_sessions(connection, campaign)
                    await store.update(connection, campaign.id, status=store.FINISHED, ended_at=at)
                    await audit.append(
                        connection,
                        SYSTEM,
                        "campaign.expire",
                        target=_target(campaign.id),
                        at=at,
                    )
                    changed += 1
            return changed

        return await self._db.run(work)


# -- parsing and time zones --------------------------------------------------------------------


def parse_start(text: str, zone: ZoneInfo, at: datetime) -> datetime | bool | None:
    """`now` (None: when launched) or a local `YYYY-MM-DDTHH:MM` in the future; False if bad."""
    text = text.strip()
    if text == "now":
        return None
    match = _START.match(text)
    if match is None:
        return False
    try:
        year, month, day, hour, minute = (int(part) for part in match.groups())
        local = datetime(year, month, day, hour, minute, tzinfo=zone)
    except ValueError:
        return False
    return local if local > at else False


def parse_span(text: str) -> int | None:
    """`48h` or `7d` as hours, or None."""
    match = _SPAN.match(text.strip())
    if match is None:
        return None
    hours = int(match[1]) * (24 if match[2] == "d" else 1)
    return hours if 0 < hours <= 24 * 90 else None


def parse_reminders(text: str) -> tuple[int, ...] | None:
    """`24h,72h` (at most two, rising), `none`, or None if bad."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    spans = [parse_span(part) for part in text.split(",")]
    if len(spans) > MAX_REMINDERS or any(s is None for s in spans):
        return None
    hours = tuple(s for s in spans if s is not None)
    return hours if list(hours) == sorted(set(hours)) else None


def zone_of(org: Org, scope: Scope) -> ZoneInfo:
    """The time zone a scope's staff enter and read times in: its branch's (the first branch of
    a region's), Asia/Jakarta for `all`."""
    codes = [] if scope.kind == "all" else org.branch_codes_within(scope)
    return ZoneInfo(org.branches[codes[0]].timezone if codes else DEFAULT_ZONE)


def in_quiet_hours(moment: datetime, zone: ZoneInfo, start: str, end: str) -> bool:
    local = moment.astimezone(zone).time()
    begin, finish = _clock_time(start), _clock_time(end)
    if begin <= finish:
        return begin <= local < finish
    return local >= begin or local < finish


def _clock_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _launcher(actor: Actor) -> Launcher:
    return Launcher(actor.ref, actor.scope, actor.member.locale, actor.member.telegram_id, actor)


def _paused(campaign: Campaign) -> str:
    return store.PAUSED


def _resumed(campaign: Campaign) -> str:
    return store.RUNNING if campaign.started_at is not None else store.SCHEDULED


def _target(number: str | int) -> str:
    return f"campaign:{number}"[:80]


async def _org(connection: AsyncConnection) -> Org:
    return Org.of(await orgs.all_regions(connection), await orgs.all_branches(connection))
