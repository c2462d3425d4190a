"""`my_chat_member` updates: a customer blocked or unblocked the bot."""

from __future__ import annotations

from telegram import ChatMember, Update
from telegram.constants import ChatType
from telegram.ext import Application, ChatMemberHandler

from handlers.context import Context

GONE = (ChatMember.BANNED, ChatMember.LEFT)


async def member_changed(update: Update, context: Context) -> None:
    change = update.my_chat_member
    if change is None or change.chat.type != ChatType.PRIVATE:
        return
    blocked = change.new_chat_member.status in GONE
    await context.services.campaigns.member_changed(change.chat.id, blocked)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(ChatMemberHandler(member_changed, ChatMemberHandler.MY_CHAT_MEMBER))
