"""Customer lists uploaded as CSV documents, and branch QR posters: parse, call, show.

Only `.csv` documents come here (survey files have their own handler). A customer who sends a
CSV gets the answer any customer's file gets.
"""

from __future__ import annotations

import asyncio
import html

from telegram import Update
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.services import customer_lists, posters
from bot.services.customer_csv import MAX_BYTES
from bot.services.customer_lists import (
    ImportReport,
    ListUnreadable,
    PosterLink,
    UnknownName,
)
from bot.services.i18n import gettext as _
from bot.services.i18n import use_locale
from bot.services.staff import Refused
from handlers import customer
from handlers.context import Context
from handlers.staff.campaigns import show_campaign
from handlers.staff.common import say, show, who

PRIVATE = filters.ChatType.PRIVATE
SHOWN_ERRORS = 30
RENEW = "renew"


async def upload(update: Update, context: Context) -> None:
    """An admin's customer list: imported within their scope; the report and the new links. Or,
    while their `/campaign_new` waits for one, the list that campaign targets."""
    message = update.message
    assert message is not None and message.document is not None
    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
    document = message.document
    person = who(update)
    renew = (message.caption or "").strip().lower() == RENEW
    data = None  # too large to fetch
    if document.file_size is None or document.file_size <= MAX_BYTES:
        file = await context.bot.get_file(document.file_id)
        data = bytes(await file.download_as_bytearray())
    waiting = await context.services.campaigns.awaiting_list(person)
    if waiting is not None:  # the list a `/campaign_new` asked for, not an import
        chosen = await context.services.campaigns.take_list(person, waiting, data)
        await show_campaign(update, context, chosen, "campaign_new")
        return
    outcome = await context.services.customer_lists.import_file(
        person, document.file_name or "list.csv", data, renew=renew
    )
    match outcome:
        case Refused(reason="not_staff"):
            await customer.unsupported(update, context)
        case Refused():
            await show(update, context, outcome)
        case ListUnreadable():
            with use_locale(outcome.locale):
                await say(context, chat_id, html.escape(_(outcome.reason)))
        case ImportReport():
            text = customer_lists.describe(outcome, limit=SHOWN_ERRORS)
            with use_locale(outcome.locale):
                if outcome.links:
                    text += "\n" + _(
                        "The attached file holds {count} new personal links for your SMS or "
                        "e-mail gateway. Customers imported before keep their links; send the "
                        "file with the caption renew to give everyone in it a new one."
                    ).format(count=len(outcome.links))
            await say(context, chat_id, html.escape(text))
            if outcome.links:
                username = context.bot.username
                await context.bot.send_document(
                    chat_id,
                    customer_lists.links_csv(outcome.links, username),
                    filename="customer-links.csv",
                )


async def qr(update: Update, context: Context) -> None:
    """`/qr <branch> [survey]`: a printable poster with the branch's QR code."""
    assert update.effective_chat is not None
    args = list(context.args or [])
    person = who(update)
    staff = context.services.staff
    if not 1 <= len(args) <= 2:
        await show(update, context, await staff.refuse_usage(person, "qr.poster"), "qr")
        return
    outcome = await context.services.customer_lists.poster(
        person, args[0], args[1] if len(args) > 1 else None
    )
    match outcome:
        case Refused():
            await show(update, context, outcome, "qr")
        case UnknownName():
            with use_locale(outcome.locale):
                text = (
                    _("There is no branch {name}.")
                    if outcome.what == "branch"
                    else _("There is no survey {name}.")
                ).format(name=html.escape(outcome.name))
            await say(context, update.effective_chat.id, text)
        case PosterLink():
            link = f"https://t.me/{context.bot.username}?start={outcome.payload}"
            image = await asyncio.to_thread(posters.render_poster, outcome.branch_name, link)
            with use_locale(outcome.locale):
                caption = _("Poster for {branch}: {link}").format(
                    branch=outcome.branch_name, link=link
                )
            await context.bot.send_document(
                update.effective_chat.id,
                image,
                filename=f"poster-{outcome.branch_code}.png",
                caption=caption,
            )


def register(app: Application, group: int) -> None:  # type: ignore[type-arg]
    app.add_handler(MessageHandler(PRIVATE & filters.Document.FileExtension("csv"), upload), group)
    app.add_handler(CommandHandler("qr", qr), group)
