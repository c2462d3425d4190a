"""What every staff handler shares: who is asking, and how a refusal or an outcome is shown.

Anyone who is not staff gets exactly the customer's unknown-command answer, so staff commands
reveal nothing; in a group chat the bot stays silent (the service has audited the refusal).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden

from bot.services.staff import (
    AuditRows,
    CodeNeeded,
    Invited,
    Locked,
    LoggedIn,
    LoggedOut,
    Outcome,
    Refused,
    StaffChanged,
    StaffList,
    Who,
    WhoAmI,
)
from bot.transport.retry import with_retry
from handlers import customer
from handlers.context import Context
from handlers.staff import render
from handlers.staff.commands import BY_NAME
from handlers.staff.menus import show_customer_menu, show_staff_menu

log = logging.getLogger(__name__)
T = TypeVar("T")


def who(update: Update) -> Who:
    user = update.effective_user
    chat = update.effective_chat
    assert user is not None
    return Who(
        user.id,
        private=chat is not None and chat.type == ChatType.PRIVATE,
        language_code=user.language_code,
        name=user.full_name,
    )


def invitation_link(context: Context, token: str) -> str:
    return f"https://t.me/{context.bot.username}?start=s_{token}"


async def paced(context: Context, chat_id: int, call: Callable[[], Awaitable[T]]) -> T:
    """A Bot API call within the bot's rate budget, waiting out a flood wait."""
    return await with_retry(call, context.services.pacer, chat_id)


async def say(context: Context, chat_id: int, text: str) -> int | None:
    """Send HTML text; the new message's id, or None if the chat cannot be reached."""
    try:
        message = await paced(
            context,
            chat_id,
            lambda: context.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML),
        )
    except Forbidden:
        log.info("a staff chat could not be reached")
        return None
    return message.message_id


async def delete(context: Context, chat_id: int, message_ids: list[int]) -> None:
    """Delete messages that held a code or a secret; one already gone is no error."""
    for message_id in message_ids:
        with contextlib.suppress(BadRequest, Forbidden):
            await context.bot.delete_message(chat_id, message_id)


async def show(
    update: Update, context: Context, outcome: Outcome, command: str | None = None
) -> None:
    """Render any staff outcome into the chat it came from."""
    chat = update.effective_chat
    assert chat is not None
    zone = context.services.settings.zone
    usage = BY_NAME[command].usage if command in BY_NAME else None
    match outcome:
        case Refused(reason="not_staff"):
            if chat.type == ChatType.PRIVATE:
                await customer.unknown_command(update, context)
        case Refused(reason="group"):
            return
        case Refused():
            await say(context, chat.id, render.refused(outcome, zone, usage))
        case CodeNeeded():
            await say(context, chat.id, render.code_needed(outcome))
        case LoggedIn():
            await delete(context, chat.id, list(outcome.delete_messages))
            await show_staff_menu(context.bot, chat.id, outcome.role)
            await say(context, chat.id, render.logged_in(outcome, zone))
        case Locked():
            await say(context, chat.id, render.locked(outcome, zone))
            for telegram_id, locale in outcome.notify:
                await say(context, telegram_id, render.locked_alert(outcome, locale, zone))
        case LoggedOut():
            await show_customer_menu(context.bot, chat.id)
            await say(context, chat.id, render.logged_out(outcome))
        case WhoAmI():
            await say(context, chat.id, render.whoami(outcome, zone))
        case StaffList():
            await say(context, chat.id, render.staff_list(outcome, zone))
        case StaffChanged():
            if outcome.menu_reset is not None:
                await show_customer_menu(context.bot, outcome.menu_reset)
            await say(context, chat.id, render.changed(outcome))
        case Invited():
            link = invitation_link(context, outcome.token)
            text = (
                render.reset_done(outcome, link, zone)
                if outcome.reset_of is not None
                else render.invited(outcome, link, zone)
            )
            await say(context, chat.id, text)
        case AuditRows():
            await say(context, chat.id, render.audit_rows(outcome, zone))
