"""Sending replies: HTML text, retried through flood waits and passing faults, quiet no-op
edits, and keyboards taken off questions that are no longer live."""

from __future__ import annotations

import asyncio
import logging
import warnings
from functools import partial

from telegram import CallbackQuery
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import ExtBot
from telegram.warnings import PTBUserWarning

from bot.transport import webhook_reply
from bot.transport.pacing import Pacer
from bot.transport.retry import with_retry
from handlers.render import Keyboard, Reply

log = logging.getLogger(__name__)


# The Message a send or an edit returns is never read, and parsing it costs more than building
# the request (bench/RESULTS.md), so both go out as raw API calls.
warnings.filterwarnings(
    "ignore",
    message=r"Please use 'Bot\.(sendMessage|editMessageText|editMessageReplyMarkup)'",
    category=PTBUserWarning,
)


_NO_KEYBOARD: Keyboard = {"inline_keyboard": []}


def _fields(reply: Reply) -> dict[str, object]:
    return {"text": reply.text, "parse_mode": ParseMode.HTML, "reply_markup": reply.markup}


async def send(bot: ExtBot[None], pacer: Pacer, chat_id: int, reply: Reply) -> int:
    """Send `reply` as a new message; returns its message id."""
    fields = {"chat_id": chat_id, **_fields(reply)}
    sent = await with_retry(
        partial(bot.do_api_request, "sendMessage", api_kwargs=fields), pacer, chat_id
    )
    return int(sent["message_id"])


async def strip_keyboard(bot: ExtBot[None], pacer: Pacer, chat_id: int, message_id: int) -> None:
    """Take the buttons off a message whose question is no longer the live one. A message
    that has none already, or is gone, needs nothing."""
    fields = {"chat_id": chat_id, "message_id": message_id, "reply_markup": _NO_KEYBOARD}
    call = partial(bot.do_api_request, "editMessageReplyMarkup", api_kwargs=fields)
    try:
        await with_retry(call, pacer, chat_id)
    except BadRequest as error:
        log.info("keyboard not removed: %s", error.message)


async def edit(query: CallbackQuery, reply: Reply) -> None:
    """Turn the pressed message into `reply`; an identical edit is not an error to the user."""
    message = query.message
    if message is None:  # a message sent through inline mode: only the query can name it
        target: dict[str, object] = {"inline_message_id": query.inline_message_id}
    else:
        target = {"chat_id": message.chat.id, "message_id": message.message_id}
    fields = target | _fields(reply)
    call = partial(query.get_bot().do_api_request, "editMessageText", api_kwargs=fields)
    try:
        await with_retry(call)
    except BadRequest as error:
        if "not modified" not in error.message:
            raise


def _offer_answer(query: CallbackQuery, text: str | None = None, alert: bool = False) -> bool:
    return webhook_reply.offer(
        "answerCallbackQuery", callback_query_id=query.id, text=text, show_alert=alert or None
    )


async def answer(query: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    """Stop the button's spinner, in the webhook answer when there is one."""
    if _offer_answer(query, text, alert):
        return
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest as error:  # the query expired: the press is handled all the same
        log.info("callback answer refused: %s", error.message)


async def answer_and_edit(query: CallbackQuery, reply: Reply) -> None:
    """Both at once, so the customer waits for one round trip, not two; in a webhook answer
    the callback answer costs no request, and the edit goes alone."""
    if _offer_answer(query):
        await edit(query, reply)
    else:
        await asyncio.gather(answer(query), edit(query, reply))
