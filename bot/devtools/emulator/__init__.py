"""A local Telegram Bot API emulator with simulated users, for the demo, tests and benchmarks.

Usage::

    async with BotApiEmulator() as emu:
        app = ApplicationBuilder().token(emu.token).base_url(emu.base_url)...
        ani = emu.user(1001, "Ani")
        await ani.start("b_jkt01")
        reply = await ani.next_reply()
"""

from bot.devtools.emulator.errors import ApiError
from bot.devtools.emulator.files import StoredFile
from bot.devtools.emulator.messages import SimMessage
from bot.devtools.emulator.server import FLOOD_LIMITED, BotApiEmulator, CallbackQuery
from bot.devtools.emulator.users import CallbackAnswer, NoReply, SimUser
from bot.devtools.emulator.webhook import SECRET_HEADER, WebhookAttempt

__all__ = [
    "FLOOD_LIMITED",
    "SECRET_HEADER",
    "ApiError",
    "BotApiEmulator",
    "CallbackAnswer",
    "CallbackQuery",
    "NoReply",
    "SimMessage",
    "SimUser",
    "StoredFile",
    "WebhookAttempt",
]
