"""Campaigns in chat: the commands, and the guided `/campaign_new` with its buttons.

Arguments are parsed here; who may do what, and in which scope, is the service's decision.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.services.campaigns import CampaignList, CampaignView, Outcome, SetupStep
from bot.services.customer_lists import ListUnreadable
from bot.services.i18n import gettext as _
from bot.services.i18n import use_locale
from bot.services.staff import Who
from bot.transport.retry import with_retry
from handlers.context import Context
from handlers.staff import campaign_render
from handlers.staff.common import say, show, who
from handlers.staff.manage import command_handler

Call = Callable[[Context, Who, list[str]], Awaitable[Outcome]]
CALLS: dict[str, tuple[int, int, Call]] = {
    "campaigns": (0, 0, lambda c, w, a: c.services.campaigns.list(w)),
    "campaign": (1, 1, lambda c, w, a: c.services.campaigns.show(w, a[0])),
    "campaign_launch": (1, 1, lambda c, w, a: c.services.campaigns.launch(w, a[0])),
    "campaign_pause": (1, 1, lambda c, w, a: c.services.campaigns.pause(w, a[0])),
    "campaign_resume": (1, 1, lambda c, w, a: c.services.campaigns.resume(w, a[0])),
    "campaign_cancel": (1, 1, lambda c, w, a: c.services.campaigns.cancel(w, a[0])),
    "campaign_new": (0, 0, lambda c, w, a: c.services.campaigns.setup(w, None, None)),
}


async def show_campaign(update: Update, context: Context, outcome: object, name: str) -> None:
    """Campaign outcomes here; refusals and step-up requests as every staff command shows them."""
    chat = update.effective_chat
    assert chat is not None
    if isinstance(outcome, CampaignView):
        await say(context, chat.id, campaign_render.view(outcome))
    elif isinstance(outcome, CampaignList):
        await say(context, chat.id, campaign_render.listing(outcome))
    elif isinstance(outcome, ListUnreadable):
        with use_locale(outcome.locale):
            await say(context, chat.id, html.escape(_(outcome.reason)))
    elif isinstance(outcome, SetupStep):
        text, markup = campaign_render.setup_step(outcome)
        await with_retry(
            lambda: context.bot.send_message(
                chat.id, text, parse_mode=ParseMode.HTML, reply_markup=markup
            ),
            context.services.pacer,
            chat.id,
        )
    else:
        await show(update, context, outcome, name)  # type: ignore[arg-type]


async def setup_press(update: Update, context: Context) -> None:
    """A button of `/campaign_new`: `cn:<campaign>:<choice>`."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, number, choice = query.data.split(":", 2)
    await query.answer()
    outcome = await context.services.campaigns.setup(who(update), number, choice)
    await show_campaign(update, context, outcome, "campaign_new")


def register(app: Application, group: int) -> None:  # type: ignore[type-arg]
    for name in CALLS:
        app.add_handler(CommandHandler(name, command_handler(name, CALLS, show_campaign)), group)
    app.add_handler(CallbackQueryHandler(setup_press, pattern=r"^cn:\d{1,9}:"), group)
