"""The last line: log the fault for operators, tell the user one sentence, never a traceback."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Forbidden, NetworkError, RetryAfter, TelegramError

from bot.services.i18n import gettext as _
from bot.services.i18n import resolve_locale, use_locale
from bot.transport import webhook_reply
from handlers.context import Context
from storage.db import describe, is_outage

log = logging.getLogger(__name__)


async def on_error(update: object, context: Context) -> None:
    """Logs the error (no message text, no personal data) and apologises in the user's language."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    if isinstance(error, Forbidden):
        log.info("update %s: the user blocked the bot", update_id)
        return
    outage = is_outage(error)
    if outage:  # one log line per interval, not a traceback per update
        context.services.outages.record(describe(error))
    else:
        log.error("update %s failed", update_id, exc_info=error)
    if not isinstance(error, TelegramError) and webhook_reply.fail(outage=outage):
        return  # Telegram delivers it again; a unit that did commit then counts as a duplicate
    if (
        not isinstance(update, Update)
        or update.effective_chat is None
        or isinstance(error, NetworkError | RetryAfter)
    ):
        return
    user = update.effective_user
    with use_locale(resolve_locale(user.language_code if user else None)):
        message = _("Sorry, something went wrong on our side. Please try again in a moment.")
    try:
        await context.bot.send_message(update.effective_chat.id, message)
    except Exception:  # the apology is best effort; the fault is already logged
        log.warning("update %s: could not send the apology", update_id)
