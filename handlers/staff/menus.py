"""Command menus by role: a logged-in staff member's chat shows the commands their role
allows; logging out (or expiry) removes the chat's own menu, so the customer menu shows again."""

from __future__ import annotations

from telegram import BotCommand, BotCommandScopeChat
from telegram.ext import ExtBot

from bot.services.access import Role
from bot.services.i18n import LOCALES, gettext, use_locale
from handlers.render import COMMAND_HELP
from handlers.staff.commands import allowed


def _language(locale: str) -> str | None:
    return None if locale == LOCALES[0] else locale


async def show_staff_menu(bot: ExtBot[None], chat_id: int, role: Role) -> None:
    for locale in LOCALES:
        with use_locale(locale):
            commands = [BotCommand(c.name, gettext(c.description)) for c in allowed(role)]
            commands += [BotCommand(n, gettext(text)) for n, text in COMMAND_HELP.items()]
        await bot.set_my_commands(
            commands, scope=BotCommandScopeChat(chat_id), language_code=_language(locale)
        )


async def show_customer_menu(bot: ExtBot[None], chat_id: int) -> None:
    for locale in LOCALES:
        await bot.delete_my_commands(
            scope=BotCommandScopeChat(chat_id), language_code=_language(locale)
        )
