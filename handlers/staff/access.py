"""Enrolment, login, codes and the staff commands: parse, call the staff service, show.

A message holding a code is deleted as soon as it is read, whatever the code was for.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re

import segno
from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.services.exports import ExportFile
from bot.services.staff import EnrolmentStarted, NotPending, Who
from handlers.context import Context
from handlers.staff import render
from handlers.staff.campaigns import show_campaign
from handlers.staff.common import delete, paced, show, who
from handlers.staff.results import send_export

PRIVATE = filters.ChatType.PRIVATE
NOTING = "noting_secret_messages"  # chat_data: set once the enrolment messages are noted
NOTE_WAIT = 5.0  # seconds
CODE = re.compile(r"^\s*(\d{6})\s*$")
INVITATION = r"^/start s_([A-Za-z0-9_-]{16,60})$"


async def open_invitation(update: Update, context: Context) -> None:
    """Starts enrolment: a fresh TOTP secret as a QR code and as text."""
    assert update.message is not None and update.effective_chat is not None
    token = (context.args or [""])[0].removeprefix("s_")
    outcome = await context.services.staff.open_invitation(who(update), token)
    if not isinstance(outcome, EnrolmentStarted):
        await show(update, context, outcome)
        return
    chat_id = update.effective_chat.id
    noted = context.chat_data[NOTING] = asyncio.Event()  # type: ignore[index]
    try:
        await _show_secret(context, chat_id, outcome, who(update))
    finally:
        noted.set()


async def _show_secret(
    context: Context, chat_id: int, outcome: EnrolmentStarted, person: Who
) -> None:
    """The secret as a QR code and as text; both messages are noted, to delete them once the
    enrolment is confirmed (now, if a fast code confirmed it already)."""
    image = io.BytesIO()
    segno.make(outcome.uri, error="m").save(image, kind="png", scale=8, border=4)
    caption = render.enrol_caption(outcome.locale, outcome.role, outcome.scope)
    photo = await paced(
        context, chat_id, lambda: context.bot.send_photo(chat_id, image.getvalue(), caption=caption)
    )
    text = render.enrol_secret(outcome.locale, outcome.secret)
    secret = await paced(
        context,
        chat_id,
        lambda: context.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML),
    )
    shown = [photo.message_id, secret.message_id]
    if not await context.services.staff.note_secret_messages(person, outcome.invitation_id, shown):
        await delete(context, chat_id, shown)


async def login(update: Update, context: Context) -> None:
    """`/login <code>` opens a session; `/login` alone asks for the code."""
    assert update.message is not None and update.effective_chat is not None
    code = context.args[0] if context.args else None
    if code is not None:
        await delete(context, update.effective_chat.id, [update.message.message_id])
    outcome = await context.services.staff.login(who(update), code)
    await show(update, context, outcome, "login")


async def code(update: Update, context: Context) -> None:
    """A 6-digit message: the code an enrolment, a login or a risky action waits for.
    Anything else goes on to the customer conversation."""
    assert update.message is not None and update.message.text is not None
    assert update.effective_chat is not None
    noting = (context.chat_data or {}).get(NOTING)
    if noting is not None:  # a code typed fast: let the secret's messages be noted first
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(noting.wait(), NOTE_WAIT)
    outcome = await context.services.staff.submit_code(who(update), update.message.text.strip())
    if isinstance(outcome, NotPending):
        return
    await delete(context, update.effective_chat.id, [update.message.message_id])
    if isinstance(outcome, ExportFile):  # a step-up may have let an export name customers
        await send_export(update, context, outcome)
    else:
        await show_campaign(update, context, outcome, "")  # or launched a campaign
    raise ApplicationHandlerStop


async def logout(update: Update, context: Context) -> None:
    """Ends the staff session and puts the customer menu back."""
    await show(update, context, await context.services.staff.logout(who(update)), "logout")


async def whoami(update: Update, context: Context) -> None:
    """Shows role, scope and session expiry."""
    await show(update, context, await context.services.staff.whoami(who(update)), "whoami")


def register(app: Application, group: int) -> None:  # type: ignore[type-arg]
    """Staff entry points; codes are looked at before the customer conversation sees text."""
    app.add_handler(
        CommandHandler("start", open_invitation, filters=PRIVATE & filters.Regex(INVITATION)),
        group,
    )
    app.add_handler(CommandHandler("login", login, filters=PRIVATE), group)
    app.add_handler(MessageHandler(PRIVATE & filters.Regex(CODE), code), group - 1)
    for name, callback in (("logout", logout), ("whoami", whoami)):
        app.add_handler(CommandHandler(name, callback), group)
