"""Staff access: invitations, TOTP enrolment and login, sessions, step-up, staff management.

Every call is one unit of work that decides, acts and appends to the audit log together, so a
refusal is recorded as surely as an action. Outcomes are plain data; handlers render them and
never decide who may do what. Time comes from the clock the service is given.

A code is accepted once: the last accepted TOTP time step is stored, and a code whose step is
not newer is refused, atomically across processes. One step of clock drift either way is
allowed; five failures in a row lock the account for fifteen minutes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import pyotp
from pyotp.exceptions import OTPVerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services.access import PERMISSIONS, Org, Role, Scope
from bot.services.clock import Clock, system_clock
from bot.services.i18n import resolve_locale
from storage import audit
from storage import staff as store
from storage.audit import AuditEntry
from storage.crypto import get_keyring
from storage.db import Database
from storage.staff import Invitation, StaffMember, StaffSession

log = logging.getLogger(__name__)

INVITATION_TTL = timedelta(hours=24)
STEP_UP_WINDOW = timedelta(minutes=5)
PENDING_TTL = timedelta(minutes=5)
LOCK_FOR = timedelta(minutes=15)
MAX_FAILURES = 5
DRIFT_STEPS = 1
SYSTEM = "system"
T = TypeVar("T")

Reason = Literal[
    "not_staff",
    "group",
    "no_session",
    "role",
    "scope",
    "self",
    "rank",
    "usage",
    "unknown_staff",
    "unknown_scope",
    "unknown_role",
    "invitation_invalid",
    "invitation_taken",
    "already_staff",
    "not_enrolled",
    "inactive",
    "locked",
    "code_wrong",
    "code_used",
    "too_large",
    "unknown_campaign",
    "unknown_survey",
    "campaign_state",
    "bad_start",
    "bad_reminders",
    "bad_expiry",
    "unknown_follow_up",
    "follow_up_taken",
    "follow_up_resolved",
    "follow_up_bad",
]


@dataclass(frozen=True)
class Who:
    """The Telegram user behind an update, and whether it came from a private chat."""

    telegram_id: int
    private: bool = True
    language_code: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Actor:
    """A staff member with a live session, as the permission checks see them."""

    member: StaffMember
    role: Role
    scope: Scope
    session: StaffSession

    @property
    def ref(self) -> str:
        return f"staff:{self.member.id}"


@dataclass(frozen=True)
class Refused:
    locale: str
    reason: Reason
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Invited:
    locale: str
    token: str
    role: Role
    scope: Scope
    expires_at: datetime
    reset_of: int | None = None


@dataclass(frozen=True)
class EnrolmentStarted:
    locale: str
    invitation_id: int
    uri: str
    secret: str
    role: Role
    scope: Scope


@dataclass(frozen=True)
class LoggedIn:
    locale: str
    member: StaffMember
    role: Role
    expires_at: datetime
    enrolled: bool = False
    delete_messages: tuple[int, ...] = ()


@dataclass(frozen=True)
class CodeNeeded:
    locale: str
    action: str  # staff.login or the risky action waiting for its step-up


@dataclass(frozen=True)
class Locked:
    locale: str
    until: datetime
    member: StaffMember
    notify: tuple[tuple[int, str], ...]  # (telegram id, locale) of the super admins


@dataclass(frozen=True)
class LoggedOut:
    locale: str
    telegram_id: int


@dataclass(frozen=True)
class WhoAmI:
    locale: str
    member: StaffMember
    role: Role
    scope: Scope
    expires_at: datetime


@dataclass(frozen=True)
class StaffList:
    locale: str
    members: tuple[StaffMember, ...]
    live: frozenset[int]


@dataclass(frozen=True)
class StaffChanged:
    locale: str
    action: str
    member: StaffMember
    menu_reset: int | None = None  # a Telegram id whose command menu goes back to a customer's


@dataclass(frozen=True)
class AuditRows:
    locale: str
    rows: tuple[AuditEntry, ...]


@dataclass(frozen=True)
class NotPending:
    """The text was no code anyone waited for: it belongs to the customer conversation."""


Outcome = (
    Refused
    | Invited
    | EnrolmentStarted
    | LoggedIn
    | CodeNeeded
    | Locked
    | LoggedOut
    | WhoAmI
    | StaffList
    | StaffChanged
    | AuditRows
    | NotPending
)
Body = Callable[[AsyncConnection, Actor, datetime], Awaitable[Outcome]]


def token_hash(token: str) -> str:
    """Invitation tokens are stored only as a keyed hash."""
    return get_keyring().blind_index(f"staff-invitation:{token}")


class StaffAccess:
    """Staff access over the database; every method is one audited unit of work."""

    def __init__(
        self, db: Database, *, issuer: str, session_hours: float, clock: Clock = system_clock
    ) -> None:
        self._db = db
        self._issuer = issuer
        self._session = timedelta(hours=session_hours)
        self.clock = clock
        self._more_risky: dict[str, Callable[..., Awaitable[Any]]] = {}

    def add_risky(self, action: str, runner: Callable[..., Awaitable[Any]]) -> None:
        """Another service's action that may wait for a step-up code: `runner(connection,
        actor, at, **args)` carries it out once the code is accepted."""
        self._more_risky[action] = runner

    # -- invitations and enrolment ----------------------------------------------------------

    async def invite_as_system(
        self, role: Role, scope: Scope, name: str | None = None
    ) -> Invited | Refused:
        """An invitation made on the command line: how the first super admin is made."""

        async def work(connection: AsyncConnection) -> Invited | Refused:
            at = self.clock()
            org = await Org.load(connection)
            if not org.exists(scope):
                return Refused("en", "unknown_scope", {"scope": str(scope)})
            invited = await self._new_invitation(
                connection, role, scope, name, None, None, at, "en"
            )
            await audit.append(
                connection,
                SYSTEM,
                "staff.invite",
                target=f"role:{role.label}",
                details={"scope": str(scope), "invitation": invited_id(invited)},
                at=at,
            )
            return invited

        return await self._db.run(work)

    async def invite(self, who: Who, role_text: str, scope_text: str) -> Outcome:
        """`/staff_invite <role> <scope>`: roles below the inviter's, inside their scope."""

        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            locale = actor.member.locale
            role = Role.parse(role_text)
            if role is None:
                return Refused(locale, "unknown_role", {"role": role_text})
            scope = Scope.parse(scope_text)
            org = await Org.load(connection)
            if scope is None or not org.exists(scope):
                return Refused(locale, "unknown_scope", {"scope": scope_text})
            if role >= actor.role:
                return Refused(locale, "rank")
            if not org.covers(actor.scope, scope):
                return Refused(locale, "scope")
            return await self._new_invitation(
                connection, role, scope, None, None, actor.member.id, at, locale
            )

        return await self.run_command(who, "staff.invite", body, target=f"role:{role_text}"[:80])

    async def _new_invitation(
        self,
        connection: AsyncConnection,
        role: Role,
        scope: Scope,
        name: str | None,
        staff_id: int | None,
        created_by: int | None,
        at: datetime,
        locale: str,
    ) -> Invited:
        token = secrets.token_urlsafe(24)
        await store.create_invitation(
            connection,
            token_hash=token_hash(token),
            role=role.label,
            scope=str(scope),
            name=name,
            staff_id=staff_id,
            created_by=created_by,
            created_at=at,
            expires_at=at + INVITATION_TTL,
        )
        return Invited(locale, token, role, scope, at + INVITATION_TTL, staff_id)

    async def open_invitation(self, who: Who, token: str) -> Outcome:
        """`/start s_<token>`: a fresh secret to enrol, shown as a QR and as text."""

        async def work(connection: AsyncConnection) -> Outcome:
            at = self.clock()
            locale = resolve_locale(who.language_code)
            invitation = await store.invitation_by_hash(connection, token_hash(token))
            refusal = _invitation_refusal(invitation, who, at, locale)
            if refusal is None and invitation is not None and invitation.staff_id is None:
                member = await store.by_telegram_id(connection, who.telegram_id)
                if member is not None and member.active:
                    refusal = Refused(member.locale, "already_staff")
            if refusal is not None:
                await audit.append(
                    connection,
                    _ref(who),
                    "staff.enrol",
                    outcome="refused",
                    target=None if invitation is None else f"invitation:{invitation.id}",
                    details={"reason": refusal.reason},
                    at=at,
                )
                return refusal
            assert invitation is not None
            secret = invitation.pending_secret or pyotp.random_base32()
            if invitation.pending_secret is None:
                await store.update_invitation(
                    connection, invitation.id, opened_by=who.telegram_id, pending_secret=secret
                )
            await audit.append(
                connection,
                _ref(who),
                "staff.enrol",
                outcome="started",
                target=f"invitation:{invitation.id}",
                at=at,
            )
            label = who.name or f"{invitation.role}"
            uri = pyotp.TOTP(secret).provisioning_uri(name=label, issuer_name=self._issuer)
            return EnrolmentStarted(
                locale,
                invitation.id,
                uri,
                secret,
                Role.parse(invitation.role) or Role.VIEWER,
                Scope.parse(invitation.scope) or Scope("all"),
            )

        return await self._db.run(work)

    async def note_secret_messages(
        self, who: Who, invitation_id: int, message_ids: list[int]
    ) -> bool:
        """Remember the messages that show the secret, to delete them once enrolment is done.
        False when the enrolment was confirmed meanwhile (a quick code): delete them now."""

        async def work(connection: AsyncConnection) -> bool:
            invitation = await store.invitation_by_id(connection, invitation_id)
            if invitation is None or invitation.opened_by != who.telegram_id:
                return True
            if invitation.used_at is not None:
                return False
            known = list(dict.fromkeys([*invitation.secret_messages, *message_ids]))
            await store.update_invitation(connection, invitation_id, secret_messages=known)
            return True

        return await self._db.run(work)

    # -- codes: enrolment, login, step-up -----------------------------------------------------

    async def login(self, who: Who, code: str | None) -> Outcome:
        """`/login <code>` opens a session; `/login` alone waits for the code."""

        async def work(connection: AsyncConnection) -> Outcome:
            at = self.clock()
            member = await store.by_telegram_id(connection, who.telegram_id)
            refusal = _login_refusal(member, who, at)
            if refusal is not None:
                await audit.append(
                    connection,
                    _member_ref(member, who),
                    "staff.login",
                    outcome="refused",
                    details={"reason": refusal.reason},
                    at=at,
                )
                return refusal
            assert member is not None
            if code is None:
                await store.update(
                    connection, member.id, pending={"action": "staff.login"}, pending_at=at
                )
                return CodeNeeded(member.locale, "staff.login")
            return await self._code_for_member(
                connection, member, {"action": "staff.login"}, code, at
            )

        return await self._db.run(work)

    async def submit_code(self, who: Who, code: str) -> Outcome:
        """A code typed on its own: it confirms an enrolment, a login or a waiting action."""

        async def work(connection: AsyncConnection) -> Outcome:
            at = self.clock()
            invitation = await store.open_invitation_of(connection, who.telegram_id)
            if invitation is not None and invitation.pending_secret and invitation.expires_at > at:
                return await self._confirm_enrolment(connection, who, invitation, code, at)
            member = await store.by_telegram_id(connection, who.telegram_id)
            if (
                member is None
                or member.pending is None
                or member.pending_at is None
                or at - member.pending_at > PENDING_TTL
            ):
                return NotPending()
            refusal = _login_refusal(member, who, at)
            if refusal is not None:
                await store.update(connection, member.id, pending=None, pending_at=None)
                return refusal
            return await self._code_for_member(connection, member, member.pending, code, at)

        return await self._db.run(work)

    async def _confirm_enrolment(
        self, connection: AsyncConnection, who: Who, invitation: Invitation, code: str, at: datetime
    ) -> Outcome:
        locale = resolve_locale(who.language_code)
        assert invitation.pending_secret is not None
        step = _verify(invitation.pending_secret, code, at)
        if step is None:
            failures = invitation.failures + 1
            spent = failures >= MAX_FAILURES
            await store.update_invitation(
                connection,
                invitation.id,
                failures=failures,
                **({"used_at": at, "pending_secret": None} if spent else {}),
            )
            await audit.append(
                connection,
                _ref(who),
                "staff.enrol",
                outcome="refused",
                target=f"invitation:{invitation.id}",
                details={"reason": "code_wrong", "failures": failures},
                at=at,
            )
            return Refused(locale, "invitation_invalid" if spent else "code_wrong")
        role = Role.parse(invitation.role) or Role.VIEWER
        values = {
            "telegram_id": who.telegram_id,
            "totp_secret": invitation.pending_secret,
            "totp_last_step": step,
            "totp_last_at": at,
            "failures": 0,
            "locked_until": None,
            "pending": None,
            "pending_at": None,
            "last_login_at": at,
        }
        if invitation.staff_id is not None:
            staff_id = invitation.staff_id
            await store.update(connection, staff_id, **values)
        else:
            staff_id = await store.create(
                connection,
                name=invitation.name or who.name,
                role=invitation.role,
                scope=invitation.scope,
                created_by=invitation.created_by,
                locale=locale,
                created_at=at,
                **values,
            )
        await store.update_invitation(connection, invitation.id, used_at=at, pending_secret=None)
        await store.close_sessions(connection, staff_id, at, "revoked")
        session = await store.open_session(connection, staff_id, at, at + self._session)
        await audit.append(
            connection,
            f"staff:{staff_id}",
            "staff.enrol",
            outcome="done",
            target=f"invitation:{invitation.id}",
            details={"role": role.label, "scope": invitation.scope},
            at=at,
        )
        member = await store.by_id(connection, staff_id)
        assert member is not None
        log.info("staff %d enrolled", staff_id)
        return LoggedIn(
            member.locale,
            member,
            role,
            session.expires_at,
            enrolled=True,
            delete_messages=tuple(invitation.secret_messages),
        )

    async def _code_for_member(
        self,
        connection: AsyncConnection,
        member: StaffMember,
        pending: dict[str, Any],
        code: str,
        at: datetime,
    ) -> Outcome:
        """Check a member's code; on success carry out what it was for."""
        assert member.totp_secret is not None
        action = str(pending.get("action", "staff.login"))
        step = _verify(member.totp_secret, code, at)
        used = (
            step is not None and member.totp_last_step is not None and step <= member.totp_last_step
        )
        accepted = (
            step is not None
            and not used
            and await store.accept_step(connection, member.id, step, at)
        )
        if not accepted:
            return await self._failure(
                connection, member, action, at, "code_used" if used else "code_wrong"
            )
        await store.update(connection, member.id, pending=None, pending_at=None)
        fresh = await store.by_id(connection, member.id)
        assert fresh is not None
        if action == "staff.login":
            await store.close_sessions(connection, member.id, at, "revoked")
            session = await store.open_session(connection, member.id, at, at + self._session)
            await store.update(connection, member.id, last_login_at=at)
            await audit.append(
                connection, f"staff:{member.id}", "staff.login", outcome="done", at=at
            )
            log.info("staff %d logged in", member.id)
            return LoggedIn(member.locale, fresh, _role(member), session.expires_at)
        await audit.append(
            connection,
            f"staff:{member.id}",
            "staff.step_up",
            outcome="done",
            details={"for": action},
            at=at,
        )
        actor = await self.authorize(connection, Who(member.telegram_id or 0), action, at)
        if isinstance(actor, Refused):
            return actor
        runner = self._risky_bodies().get(action)
        if runner is None:
            return NotPending()
        args = dict(pending.get("args", {}))
        return await self._run_body(
            connection,
            actor,
            action,
            lambda c, a, t: runner(c, a, t, **args),
            at,
            pending.get("target"),
        )

    async def _failure(
        self,
        connection: AsyncConnection,
        member: StaffMember,
        action: str,
        at: datetime,
        reason: Reason,
    ) -> Outcome:
        failures = member.failures + 1
        details = {"reason": reason, "failures": failures, "for": action}
        if failures < MAX_FAILURES:
            await store.update(connection, member.id, failures=failures)
            await audit.append(
                connection,
                f"staff:{member.id}",
                "staff.code",
                outcome="refused",
                details=details,
                at=at,
            )
            return Refused(member.locale, reason, {"left": MAX_FAILURES - failures})
        until = at + LOCK_FOR
        await store.update(
            connection, member.id, failures=0, locked_until=until, pending=None, pending_at=None
        )
        await audit.append(
            connection,
            f"staff:{member.id}",
            "staff.lock",
            outcome="done",
            details=details,
            at=at,
        )
        admins = await store.active_super_admins(connection)
        notify = tuple(
            (a.telegram_id, a.locale)
            for a in admins
            if a.telegram_id is not None and a.id != member.id
        )
        return Locked(member.locale, until, member, notify)

    # -- sessions ----------------------------------------------------------------------------

    async def logout(self, who: Who) -> Outcome:
        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            await store.close_sessions(connection, actor.member.id, at, "logout")
            return LoggedOut(actor.member.locale, who.telegram_id)

        return await self.run_command(who, "staff.logout", body)

    async def whoami(self, who: Who) -> Outcome:
        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            return WhoAmI(
                actor.member.locale, actor.member, actor.role, actor.scope, actor.session.expires_at
            )

        return await self.run_command(who, "staff.whoami", body)

    async def close_expired_sessions(self) -> list[int]:
        """End sessions that ran out; the Telegram ids whose menus go back to a customer's."""

        async def work(connection: AsyncConnection) -> list[int]:
            at = self.clock()
            ids = await store.close_expired(connection, at)
            for telegram_id in ids:
                await audit.append(
                    connection,
                    SYSTEM,
                    "staff.session_expired",
                    target=f"telegram:{telegram_id}",
                    at=at,
                )
            return ids

        return await self._db.run(work)

    # -- staff management --------------------------------------------------------------------

    async def list_staff(self, who: Who) -> Outcome:
        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            org = await Org.load(connection)
            members = await store.in_scopes(connection, org.scopes_within(actor.scope))
            live = frozenset(await store.with_live_session(connection, [m.id for m in members], at))
            return StaffList(actor.member.locale, tuple(members), live)

        return await self.run_command(who, "staff.list", body)

    async def change_role(self, who: Who, number: str, role_text: str) -> Outcome:
        return await self._risky(who, "staff.role", number, {"role": role_text})

    async def change_scope(self, who: Who, number: str, scope_text: str) -> Outcome:
        return await self._risky(who, "staff.scope", number, {"scope": scope_text})

    async def deactivate(self, who: Who, number: str) -> Outcome:
        return await self._risky(who, "staff.off", number, {})

    async def reset(self, who: Who, number: str) -> Outcome:
        return await self._risky(who, "staff.reset", number, {})

    async def reactivate(self, who: Who, number: str) -> Outcome:
        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            return await self._do_on(connection, actor, at, number=number)

        return await self.run_command(who, "staff.on", body, target=f"staff:{number}"[:80])

    async def _risky(self, who: Who, action: str, number: str, args: dict[str, str]) -> Outcome:
        """Validate now; carry out now if the last code is fresh, else wait for a step-up code."""
        runner = self._risky_bodies()[action]

        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            check = await runner(connection, actor, at, number=number, dry_run=True, **args)
            if check is not None:
                return check
            last = actor.member.totp_last_at
            if last is not None and at - last <= STEP_UP_WINDOW:
                result = await runner(connection, actor, at, number=number, **args)
                assert result is not None
                return result
            pending = {
                "action": action,
                "args": {"number": number, **args},
                "target": f"staff:{number}",
            }
            await store.update(connection, actor.member.id, pending=pending, pending_at=at)
            return CodeNeeded(actor.member.locale, action)

        return await self.run_command(who, action, body, target=f"staff:{number}"[:80])

    def _risky_bodies(self) -> dict[str, Callable[..., Awaitable[Outcome | None]]]:
        return {
            "staff.role": self._do_role,
            "staff.scope": self._do_scope,
            "staff.off": self._do_off,
            "staff.reset": self._do_reset,
            **self._more_risky,
        }

    async def _target(
        self, connection: AsyncConnection, actor: Actor, number: str
    ) -> tuple[StaffMember, Org] | Refused:
        """The staff member `number` names, if the actor may manage them at all."""
        locale = actor.member.locale
        member = await store.by_id(connection, int(number)) if number.isdigit() else None
        org = await Org.load(connection)
        if member is None:
            return Refused(locale, "unknown_staff", {"number": number})
        if member.id == actor.member.id:
            return Refused(locale, "self")
        target_scope = Scope.parse(member.scope) or Scope("all")
        if not org.covers(actor.scope, target_scope):
            # Staff outside the actor's scope are as good as unknown to them.
            return Refused(locale, "scope")
        if _role(member) >= actor.role:
            return Refused(locale, "rank")
        return member, org

    async def _do_role(
        self,
        connection: AsyncConnection,
        actor: Actor,
        at: datetime,
        *,
        number: str,
        role: str,
        dry_run: bool = False,
    ) -> Outcome | None:
        found = await self._target(connection, actor, number)
        if isinstance(found, Refused):
            return found
        member, _ = found
        new = Role.parse(role)
        if new is None:
            return Refused(actor.member.locale, "unknown_role", {"role": role})
        if new >= actor.role:
            return Refused(actor.member.locale, "rank")
        if dry_run:
            return None
        await store.update(connection, member.id, role=new.label)
        return await self._changed(connection, actor, "staff.role", member.id)

    async def _do_scope(
        self,
        connection: AsyncConnection,
        actor: Actor,
        at: datetime,
        *,
        number: str,
        scope: str,
        dry_run: bool = False,
    ) -> Outcome | None:
        found = await self._target(connection, actor, number)
        if isinstance(found, Refused):
            return found
        member, org = found
        new = Scope.parse(scope)
        if new is None or not org.exists(new):
            return Refused(actor.member.locale, "unknown_scope", {"scope": scope})
        if not org.covers(actor.scope, new):
            return Refused(actor.member.locale, "scope")
        if dry_run:
            return None
        await store.update(connection, member.id, scope=str(new))
        return await self._changed(connection, actor, "staff.scope", member.id)

    async def _do_off(
        self,
        connection: AsyncConnection,
        actor: Actor,
        at: datetime,
        *,
        number: str,
        dry_run: bool = False,
    ) -> Outcome | None:
        found = await self._target(connection, actor, number)
        if isinstance(found, Refused) or dry_run:
            return found if isinstance(found, Refused) else None
        member, _ = found
        await store.update(connection, member.id, active=False, pending=None, pending_at=None)
        closed = await store.close_sessions(connection, member.id, at, "revoked")
        return await self._changed(
            connection,
            actor,
            "staff.off",
            member.id,
            menu_reset=member.telegram_id if closed else None,
        )

    async def _do_on(
        self, connection: AsyncConnection, actor: Actor, at: datetime, *, number: str
    ) -> Outcome:
        found = await self._target(connection, actor, number)
        if isinstance(found, Refused):
            return found
        member, _ = found
        await store.update(connection, member.id, active=True)
        return await self._changed(connection, actor, "staff.on", member.id)

    async def _do_reset(
        self,
        connection: AsyncConnection,
        actor: Actor,
        at: datetime,
        *,
        number: str,
        dry_run: bool = False,
    ) -> Outcome | None:
        found = await self._target(connection, actor, number)
        if isinstance(found, Refused) or dry_run:
            return found if isinstance(found, Refused) else None
        member, _ = found
        await store.update(
            connection,
            member.id,
            totp_secret=None,
            totp_last_step=None,
            totp_last_at=None,
            pending=None,
            pending_at=None,
            failures=0,
            locked_until=None,
        )
        closed = await store.close_sessions(connection, member.id, at, "revoked")
        await store.revoke_invitations(connection, member.id, at)
        invited = await self._new_invitation(
            connection,
            _role(member),
            Scope.parse(member.scope) or Scope("all"),
            None,
            member.id,
            actor.member.id,
            at,
            actor.member.locale,
        )
        if closed and member.telegram_id is not None:
            log.info("staff %d reset; their sessions were closed", member.id)
        return invited

    async def _changed(
        self,
        connection: AsyncConnection,
        actor: Actor,
        action: str,
        staff_id: int,
        menu_reset: int | None = None,
    ) -> StaffChanged:
        member = await store.by_id(connection, staff_id)
        assert member is not None
        return StaffChanged(actor.member.locale, action, member, menu_reset)

    # -- audit ------------------------------------------------------------------------------

    async def audit_rows(self, who: Who, count_text: str | None) -> Outcome:
        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            count = 10
            if count_text is not None:
                if not count_text.isdigit() or not 1 <= int(count_text) <= 50:
                    return Refused(actor.member.locale, "usage")
                count = int(count_text)
            rows = await audit.entries(connection, limit=count)
            return AuditRows(actor.member.locale, tuple(rows))

        return await self.run_command(who, "audit.read", body)

    async def refuse_usage(self, who: Who, action: str) -> Outcome:
        """Wrong arguments: checked like the command itself, so only those who may run it
        learn its usage; audited as refused."""

        async def body(connection: AsyncConnection, actor: Actor, at: datetime) -> Outcome:
            return Refused(actor.member.locale, "usage")

        return await self.run_command(who, action, body)

    # -- the gate every staff command passes ---------------------------------------------------

    async def authorize(
        self, connection: AsyncConnection, who: Who, action: str, at: datetime
    ) -> Actor | Refused:
        """The actor behind `who` if they may do `action` now: staff, active, in a private chat,
        with a live session and a role at least the table's. Scope is the caller's to check
        against what the action touches."""
        member = await store.by_telegram_id(connection, who.telegram_id)
        if member is None:
            return Refused(resolve_locale(who.language_code), "not_staff")
        if not who.private:
            return Refused(member.locale, "group")
        if not member.active:
            return Refused(member.locale, "inactive")
        if member.totp_secret is None:
            return Refused(member.locale, "not_enrolled")
        actor = await self._actor(connection, member, at)
        if actor is None:
            return Refused(member.locale, "no_session")
        if actor.role < PERMISSIONS[action]:
            return Refused(member.locale, "role")
        return actor

    async def _actor(
        self, connection: AsyncConnection, member: StaffMember, at: datetime
    ) -> Actor | None:
        session = await store.live_session(connection, member.id, at)
        if session is None:
            return None
        return Actor(
            member, _role(member), Scope.parse(member.scope) or Scope("branch", "-"), session
        )

    async def run_command(
        self,
        who: Who,
        action: str,
        body: Callable[[AsyncConnection, Actor, datetime], Awaitable[T]],
        target: str | None = None,
    ) -> T | Refused:
        """Authorise, run and audit one staff command in one unit of work. Every staff service
        runs its commands through here; `body` checks the scope of what it touches."""

        async def work(connection: AsyncConnection) -> T | Refused:
            at = self.clock()
            actor = await self.authorize(connection, who, action, at)
            if isinstance(actor, Refused):
                await audit.append(
                    connection,
                    _ref(who) if actor.reason == "not_staff" else await _staff_ref(connection, who),
                    action,
                    target=target,
                    outcome="refused",
                    details={"reason": actor.reason},
                    at=at,
                )
                return actor
            return await self._run_body(connection, actor, action, body, at, target)

        return await self._db.run(work)

    async def _run_body(
        self,
        connection: AsyncConnection,
        actor: Actor,
        action: str,
        body: Callable[[AsyncConnection, Actor, datetime], Awaitable[T]],
        at: datetime,
        target: str | None,
    ) -> T:
        outcome = await body(connection, actor, at)
        if isinstance(outcome, Refused):
            result, details = "refused", {"reason": outcome.reason}
        elif isinstance(outcome, CodeNeeded):
            result, details = "step_up", {}
        else:  # an outcome may say more about what was done (an export: whom it named)
            result, details = "allowed", dict(getattr(outcome, "audit_details", {}))
        await audit.append(
            connection,
            actor.ref,
            action,
            target=target,
            outcome=result,
            details={**details, "scope": str(actor.scope)},
            at=at,
        )
        return outcome


def invited_id(invited: Invited) -> str:
    """A short, non-secret reference to an invitation for the audit log."""
    return token_hash(invited.token)[:12]


def _verify(secret: str, code: str, at: datetime) -> int | None:
    """The time step `code` belongs to, within one step of drift, or None."""
    code = code.strip()
    if not (len(code) == 6 and code.isdigit()):
        return None
    try:
        return int(
            pyotp.TOTP(secret).verify_and_get_timecode(code, for_time=at, valid_window=DRIFT_STEPS)
        )
    except OTPVerificationError:
        return None


def _role(member: StaffMember) -> Role:
    return Role.parse(member.role) or Role.VIEWER


def _invitation_refusal(
    invitation: Invitation | None, who: Who, at: datetime, locale: str
) -> Refused | None:
    if invitation is None or invitation.used_at is not None or invitation.expires_at <= at:
        return Refused(locale, "invitation_invalid")
    if invitation.opened_by is not None and invitation.opened_by != who.telegram_id:
        return Refused(locale, "invitation_taken")
    return None


def _login_refusal(member: StaffMember | None, who: Who, at: datetime) -> Refused | None:
    if member is None:
        return Refused(resolve_locale(who.language_code), "not_staff")
    if not member.active:
        return Refused(member.locale, "inactive")
    if member.totp_secret is None:
        return Refused(member.locale, "not_enrolled")
    if member.locked_until is not None and member.locked_until > at:
        return Refused(member.locale, "locked", {"until": member.locked_until})
    return None


def _ref(who: Who) -> str:
    return f"telegram:{who.telegram_id}"


def _member_ref(member: StaffMember | None, who: Who) -> str:
    return _ref(who) if member is None else f"staff:{member.id}"


async def _staff_ref(connection: AsyncConnection, who: Who) -> str:
    member = await store.by_telegram_id(connection, who.telegram_id)
    return _member_ref(member, who)
