"""The closed loop in chat: `/alerts`, `/followups`, the Take and Resolve buttons, the note that
resolves, and the job that sends alerts and escalations within the bot's rate budget."""

from __future__ import annotations

import logging

from telegram import ForceReply, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.services.follow_up import (
    Alert,
    AlertsState,
    FollowUpList,
    FollowUpResolved,
    FollowUpTaken,
    NotANote,
    NoteAsked,
)
from bot.services.i18n import use_locale
from handlers.context import Context
from handlers.replies import answer
from handlers.staff import follow_up_render as render
from handlers.staff.access import CODE
from handlers.staff.common import paced, say, show, who
from handlers.staff.manage import command_handler

log = logging.getLogger(__name__)
PRIVATE = filters.ChatType.PRIVATE

CALLS = {
    "alerts": (0, 1, lambda c, w, a: c.services.follow_ups.alerts(w, a[0] if a else None)),
    "followups": (0, 0, lambda c, w, a: c.services.follow_ups.listing(w)),
}


async def show_follow_up(update: Update, context: Context, outcome: object, name: str) -> None:
    """Follow-up outcomes here; refusals as every staff command shows them."""
    chat = update.effective_chat
    assert chat is not None
    match outcome:
        case AlertsState():
            await say(context, chat.id, render.alerts_state(outcome))
        case FollowUpList():
            await say(context, chat.id, render.listing(outcome))
        case FollowUpTaken():
            await say(context, chat.id, render.taken(outcome.locale, outcome.follow_up_id))
        case NoteAsked():  # the reply field opens, and the next text is the note
            text = render.note_asked(outcome.locale, outcome.follow_up_id)
            await paced(
                context,
                chat.id,
                lambda: context.bot.send_message(chat.id, text, reply_markup=ForceReply()),
            )
        case FollowUpResolved():
            await say(context, chat.id, render.resolved(outcome.locale, outcome.follow_up_id))
        case _:
            await show(update, context, outcome, name)  # type: ignore[arg-type]


async def press(update: Update, context: Context) -> None:
    """Take (`fu:t:<id>`) or Resolve (`fu:r:<id>`); anything else under `fu:` is forged."""
    query = update.callback_query
    assert query is not None
    await answer(query)
    parsed = render.PRESS.match(query.data or "")
    service = context.services.follow_ups
    if parsed is None:
        outcome = await service.bad_press(who(update))
    elif parsed[1] == "t":
        outcome = await service.take(who(update), parsed[2])
    else:
        outcome = await service.resolve(who(update), parsed[2])
    if isinstance(outcome, FollowUpTaken) and query.message is not None:
        await _keep_resolve_only(context, query.message.chat.id, query.message.message_id, outcome)
    await show_follow_up(update, context, outcome, "followups")


async def _keep_resolve_only(
    context: Context, chat_id: int, message_id: int, taken: FollowUpTaken
) -> None:
    """The alert just taken keeps only its Resolve button, so it shows what is left to do."""
    with use_locale(taken.locale):
        markup = render.buttons(taken.follow_up_id, taken=True)
    try:
        await paced(
            context,
            chat_id,
            lambda: context.bot.edit_message_reply_markup(chat_id, message_id, reply_markup=markup),
        )
    except BadRequest:  # the alert is too old to edit, or was deleted: the reply says enough
        log.info("a taken alert's buttons could not be changed")


async def note(update: Update, context: Context) -> None:
    """A staff member's text after Resolve is the note; any other text goes on."""
    assert update.message is not None and update.message.text is not None
    outcome = await context.services.follow_ups.note(who(update), update.message.text)
    if isinstance(outcome, NotANote):
        return
    await show_follow_up(update, context, outcome, "followups")
    raise ApplicationHandlerStop


async def deliver(context: Context) -> None:
    """The job: send due alerts to the staff who take them, and escalations to the admins."""
    services = context.services
    for shown in await services.follow_ups.due_alerts():
        await _send(context, shown)
    for shown in await services.follow_ups.escalations():
        await _send(context, shown)


async def _send(context: Context, shown: Alert) -> None:
    at = context.services.follow_ups.clock()
    for recipient in shown.recipients:
        text, markup = render.alert(shown, recipient.locale, at)
        chat_id = recipient.telegram_id
        try:
            await paced(
                context,
                chat_id,
                lambda c=chat_id, t=text, m=markup: context.bot.send_message(
                    c, t, parse_mode=ParseMode.HTML, reply_markup=m
                ),
            )
        except (Forbidden, BadRequest):
            log.info("an alert could not reach staff member %d", recipient.staff_id)


def register(app: Application, group: int) -> None:  # type: ignore[type-arg]
    for name in CALLS:
        app.add_handler(CommandHandler(name, command_handler(name, CALLS, show_follow_up)), group)
    app.add_handler(CallbackQueryHandler(press, pattern=r"^fu:"), group)
    # Before previews, codes and the customer conversation see the text; a 6-digit text is
    # left to the code handler, as it may be a login or step-up code.
    typed = PRIVATE & filters.TEXT & ~filters.COMMAND & ~filters.Regex(CODE)
    app.add_handler(MessageHandler(typed, note), group - 3)
