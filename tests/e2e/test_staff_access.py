"""Staff access end to end: invitation → enrolment → login with real pyotp codes, replay,
drift, lockout, expiry and step-up under a clock the tests move; the real bot over HTTP."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from bot.devtools.emulator import BotApiEmulator
from bot.services.access import Role, Scope
from bot.services.staff import EnrolmentStarted, Invited, LoggedIn, Who
from bot.wiring.logs import configure_logging
from bot.wiring.services import Services
from storage import audit
from storage.models import audit_log, staff, staff_invitations
from tests.e2e.staffing import SECRET, FakeClock, StaffUser, add_staff, code, log_in

pytestmark = pytest.mark.usefixtures("bot")


@pytest.fixture
def clock(services: Services) -> FakeClock:
    fake = FakeClock()
    services.staff.clock = fake
    return fake


async def _invite(services: Services, role: Role = Role.SUPER_ADMIN, scope: str = "all") -> str:
    invited = await services.staff.invite_as_system(role, Scope.parse(scope), "Dewi")  # type: ignore[arg-type]
    assert isinstance(invited, Invited)
    return invited.token


async def _enrol(
    emulator: BotApiEmulator,
    services: Services,
    clock: FakeClock,
    user_id: int,
    role: Role = Role.ADMIN,
) -> StaffUser:
    token = await _invite(services, role)
    user = emulator.user(user_id, "Dewi", language_code="en")
    await user.start(f"s_{token}")
    qr = await user.wait_for(lambda m: m.photo is not None)
    key = await user.wait_for(lambda m: SECRET.search(m.body) is not None)
    secret = SECRET.search(key.body).group()  # type: ignore[union-attr]
    await user.send_text(code(secret, clock))
    await user.wait_for(lambda m: "Enrolment complete" in m.body)
    assert qr.deleted and key.deleted
    async with services.db.transaction() as connection:
        staff_id = await connection.scalar(
            sa.select(staff.c.id).where(staff.c.telegram_id == user_id)
        )
    return StaffUser(staff_id, user, secret)


async def _actions(services: Services) -> list[tuple[str, str, str]]:
    async with services.db.transaction() as connection:
        rows = await connection.execute(
            sa.select(audit_log.c.actor, audit_log.c.action, audit_log.c.outcome).order_by(
                audit_log.c.id
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_invitation_enrolment_and_login(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    token = await _invite(services, Role.ADMIN, "region:BAR")
    user = emulator.user(501, "Dewi", language_code="en")
    await user.start(f"s_{token}")
    qr = await user.wait_for(lambda m: m.photo is not None)
    assert "admin" in qr.body and "region BAR" in qr.body
    key = await user.wait_for(lambda m: SECRET.search(m.body) is not None)
    secret = SECRET.search(key.body).group()  # type: ignore[union-attr]

    # Before the code the invitation is not spent, and nobody else may take it over.
    intruder = emulator.user(502, "Eko", language_code="en")
    await intruder.start(f"s_{token}")
    assert "someone else" in (await intruder.next_reply()).body

    await user.send_text("000000" if code(secret, clock) != "000000" else "111111")
    assert "not right" in (await user.next_reply()).body
    typed = await user.send_text(code(secret, clock))
    done = await user.wait_for(lambda m: "Enrolment complete" in m.body)
    assert "admin" in done.body
    assert qr.deleted and key.deleted
    assert user.message(typed["message"]["message_id"]).deleted  # the code is deleted too

    # The staff member's chat now has the admin's menu; customers keep theirs.
    menu = await emulator.call("getMyCommands", scope={"type": "chat", "chat_id": 501})
    assert {"staff", "staff_invite", "whoami"} <= {c["command"] for c in menu}
    assert "audit" not in {c["command"] for c in menu}  # super admins only

    # The invitation is spent.
    again = emulator.user(503, "Fajar", language_code="en")
    await again.start(f"s_{token}")
    assert "not valid" in (await again.next_reply()).body

    await user.send_text("/whoami")
    who = await user.next_reply()
    assert "admin" in who.body and "region BAR" in who.body

    await user.send_text("/logout")
    assert "logged out" in (await user.next_reply()).body
    assert await emulator.call("getMyCommands", scope={"type": "chat", "chat_id": 501}) == []
    await user.send_text("/whoami")
    assert "/login" in (await user.next_reply()).body

    async with services.db.transaction() as connection:
        invitation = (await connection.execute(sa.select(staff_invitations))).one()
        stored = (await connection.execute(sa.select(staff))).one()
    assert invitation.used_at is not None and invitation.pending_secret is None
    assert invitation.token_hash != token and token not in invitation.token_hash
    assert stored.role == "admin" and stored.scope == "region:BAR" and stored.name == "Dewi"


async def test_a_code_is_accepted_once_with_one_step_of_drift(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    member = await _enrol(emulator, services, clock, 511)
    user = member.user
    # The enrolment code's step is spent: the same code cannot log in.
    await user.send_text(f"/login {code(member.secret, clock)}")
    assert "used already" in (await user.next_reply()).body

    clock.advance(seconds=90)  # three steps later; a code one step old is still accepted
    await user.send_text(f"/login {code(member.secret, clock, -1)}")
    assert (
        "logged in as"
        in (await user.wait_for(lambda m: "logged" in m.body or "code" in m.body)).body
    )
    await user.send_text(f"/login {code(member.secret, clock, -1)}")
    assert "used already" in (await user.next_reply()).body

    clock.advance(seconds=90)
    await user.send_text(f"/login {code(member.secret, clock, -2)}")  # two steps old: too old
    assert "not right" in (await user.next_reply()).body
    await user.send_text(f"/login {code(member.secret, clock, 2)}")  # two steps ahead: too
    assert "not right" in (await user.next_reply()).body

    await user.send_text("/login")  # then the code on its own
    assert "6-digit" in (await user.next_reply()).body
    typed = await user.send_text(code(member.secret, clock))
    assert "logged in as" in (await user.next_reply()).body
    assert user.message(typed["message"]["message_id"]).deleted


async def test_five_failures_lock_the_account_and_tell_the_super_admins(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    boss = await add_staff(
        services, emulator.user(520, "Bos", language_code="en"), Role.SUPER_ADMIN, "all"
    )
    member = await _enrol(emulator, services, clock, 521)
    clock.advance(seconds=60)
    wrong = "123456" if code(member.secret, clock) != "123456" else "654321"
    for attempt in range(4):
        await member.user.send_text(f"/login {wrong}")
        reply = await member.user.next_reply()
        assert "not right" in reply.body and f"{4 - attempt} tries left" in reply.body
    await member.user.send_text(f"/login {wrong}")
    assert "locked until" in (await member.user.next_reply()).body
    alert = await boss.user.wait_for(lambda m: "Security" in m.body)
    assert str(member.id) in alert.body

    # Locked: even the right code is refused, until fifteen minutes have passed.
    await member.user.send_text(f"/login {code(member.secret, clock)}")
    assert "try again after" in (await member.user.next_reply()).body
    clock.advance(minutes=15)
    await log_in(member, clock)
    actions = await _actions(services)
    assert (f"staff:{member.id}", "staff.lock", "done") in actions


async def test_sessions_expire_and_risky_actions_ask_for_a_fresh_code(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    admin = await add_staff(
        services, emulator.user(530, "Adi", language_code="en"), Role.ADMIN, "region:BAR"
    )
    viewer = await add_staff(services, emulator.user(531, "Vina"), Role.VIEWER, "branch:JKT01")
    await log_in(admin, clock)

    clock.advance(minutes=6)  # the login code is now too old for a risky action
    await admin.user.send_text(f"/staff_role {viewer.id} editor")
    assert "fresh code" in (await admin.user.next_reply()).body
    async with services.db.transaction() as connection:
        assert (
            await connection.scalar(sa.select(staff.c.role).where(staff.c.id == viewer.id))
            == "viewer"
        )
    await admin.user.send_text(code(admin.secret, clock))  # no retyping the command
    assert "is now editor" in (await admin.user.next_reply()).body
    # Within five minutes of a code, the next risky action goes straight through.
    await admin.user.send_text(f"/staff_scope {viewer.id} branch:BDG01")
    assert "now works in branch BDG01" in (await admin.user.next_reply()).body

    clock.advance(hours=8, minutes=1)
    await admin.user.send_text("/staff")
    assert "/login" in (await admin.user.next_reply()).body
    assert await services.staff.close_expired_sessions() == [530]
    actions = await _actions(services)
    assert (f"staff:{admin.id}", "staff.role", "step_up") in actions
    assert (f"staff:{admin.id}", "staff.step_up", "done") in actions
    assert (f"staff:{admin.id}", "staff.role", "allowed") in actions
    assert ("system", "staff.session_expired", "done") in actions


async def test_staff_reset_gives_a_fresh_invitation_and_disables_the_old_secret(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    boss = await add_staff(
        services, emulator.user(540, "Bos", language_code="en"), Role.SUPER_ADMIN, "all"
    )
    member = await _enrol(emulator, services, clock, 541)
    await log_in(boss, clock)
    await boss.user.send_text(f"/staff_reset {member.id}")
    reply = await boss.user.next_reply()
    link = reply.body.split("start=s_")[1].split()[0]
    clock.advance(seconds=60)
    await member.user.send_text(f"/login {code(member.secret, clock)}")
    assert "reset" in (await member.user.next_reply()).body
    await member.user.send_text("/whoami")
    assert "reset" in (await member.user.next_reply()).body  # the session was closed too
    await member.user.start(f"s_{link}")
    key = await member.user.wait_for(lambda m: SECRET.search(m.body) is not None)
    secret = SECRET.search(key.body).group()  # type: ignore[union-attr]
    assert secret != member.secret
    await member.user.send_text(code(secret, clock))
    assert (
        "Enrolment complete" in (await member.user.wait_for(lambda m: "Enrolment" in m.body)).body
    )


async def test_a_customer_gets_the_unknown_command_answer_and_groups_get_silence(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    customer = emulator.user(550, "Budi")
    await customer.send_text("/nonsense")
    unknown = (await customer.next_reply()).body
    for command in (
        "/staff",
        "/staff_invite admin all",
        "/audit",
        "/whoami",
        "/logout",
        "/login 123456",
    ):
        await customer.send_text(command)
        assert (await customer.next_reply()).body == unknown

    member = await add_staff(
        services, emulator.user(551, "Sari", language_code="en"), Role.SUPER_ADMIN, "all"
    )
    await log_in(member, clock)
    await member.user.send_in_group(-100123, "/staff")
    await member.user.send_in_group(-100123, "/whoami")
    await member.user.expect_silence(0.5)
    actions = await _actions(services)
    assert actions.count((f"staff:{member.id}", "staff.list", "refused")) == 1
    assert ("telegram:550", "staff.list", "refused") in actions
    async with services.db.transaction() as connection:
        assert await audit.verify(connection) is None


async def test_a_whole_staff_session_logs_no_secret_code_or_token(
    emulator: BotApiEmulator, services: Services, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    token = await _invite(services)
    user = emulator.user(560, "Dewi", language_code="en")
    await user.start(f"s_{token}")
    key = await user.wait_for(lambda m: SECRET.search(m.body) is not None)
    secret = SECRET.search(key.body).group()  # type: ignore[union-attr]
    codes = [code(secret, clock)]
    await user.send_text(codes[-1])
    await user.wait_for(lambda m: "Enrolment complete" in m.body)
    clock.advance(seconds=60)
    codes.append(code(secret, clock))
    await user.send_text(f"/login {codes[-1]}")
    await user.wait_for(lambda m: "logged in" in m.body)
    await user.send_text("/staff_invite viewer branch:JKT01")
    invitation = await user.next_reply()
    new_token = invitation.body.split("start=s_")[1].split()[0]
    await user.send_text("/logout")
    await user.next_reply()
    await emulator.drained()
    logged = caplog.text
    assert "enrolled" in logged and "logged in" in logged  # the capture works
    for secret_text in (secret, token, new_token, *codes):
        assert secret_text not in logged


async def test_bad_arguments_unknown_staff_and_expired_invitations_get_one_sentence(
    emulator: BotApiEmulator, services: Services, clock: FakeClock
) -> None:
    admin = await add_staff(
        services, emulator.user(570, "Adi", language_code="en"), Role.ADMIN, "region:BAR"
    )
    await log_in(admin, clock)
    cases = {
        "/staff_role": "Usage: /staff_role <n> <role>",
        "/staff_role 1 2 3": "Usage: /staff_role <n> <role>",
        "/staff_role 999 editor": "There is no staff member number 999",
        "/staff_invite chief branch:JKT01": "Unknown role chief",
        "/staff_invite viewer branch:NOPE": "Unknown scope branch:NOPE",
        "/staff_invite admin branch:JKT01": "only manage roles below your own",
        "/audit": "Your role does not allow this.",
        f"/staff_off {admin.id}": "cannot change your own",
    }
    for command, expected in cases.items():
        await admin.user.send_text(command)
        reply = (await admin.user.next_reply()).body
        assert expected in reply, (command, reply)
        assert "Traceback" not in reply

    # The same refusals in Bahasa Indonesia for a staff member who reads it.
    async with services.db.transaction() as connection:
        await connection.execute(sa.update(staff).where(staff.c.id == admin.id).values(locale="id"))
    await admin.user.send_text("/staff_role")
    assert "Cara pakai: /staff_role <n> <role>" in (await admin.user.next_reply()).body

    token = await _invite(services, Role.VIEWER, "branch:JKT01")
    clock.advance(hours=24, seconds=1)
    late = emulator.user(571, "Lia", language_code="en")
    await late.start(f"s_{token}")
    assert "expired" in (await late.next_reply()).body
    await late.start("s_" + "x" * 32)  # a token that never existed
    assert "expired" in (await late.next_reply()).body


async def test_secret_messages_noted_after_a_quick_code_are_deleted_at_once(
    services: Services, clock: FakeClock
) -> None:
    """The code may overtake the bookkeeping of the messages that showed the secret; the
    handler then deletes them itself."""
    token = await _invite(services)
    who = Who(580, language_code="en")
    started = await services.staff.open_invitation(who, token)
    assert isinstance(started, EnrolmentStarted)
    assert await services.staff.note_secret_messages(who, started.invitation_id, [1])
    done = await services.staff.submit_code(who, code(started.secret, clock))
    assert isinstance(done, LoggedIn) and done.delete_messages == (1,)
    assert not await services.staff.note_secret_messages(who, started.invitation_id, [2, 3])
