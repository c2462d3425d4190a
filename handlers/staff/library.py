"""The survey library in chat: survey uploads, /surveys, /survey_preview and /survey_use.

A document from anyone who is not staff goes on to the customer conversation untouched; a
preview's buttons (session 0) and typed answers reach the preview before the customer's.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.services.conversation import Completed, Info, Question, Rejected
from bot.services.library import (
    MAX_SURVEY_BYTES,
    PREVIEW_SESSION,
    Preview,
    PreviewStale,
    SurveyListing,
    SurveyRejected,
    SurveyStored,
    SurveyUsed,
)
from bot.services.staff import Refused
from handlers import callbacks
from handlers import render as customer_render
from handlers.context import Context
from handlers.replies import answer, answer_and_edit, send
from handlers.staff import render
from handlers.staff.access import CODE
from handlers.staff.common import say, show, who

PRIVATE = filters.ChatType.PRIVATE
PREVIEW_PRESS = rf"^q:{PREVIEW_SESSION}:"

LibraryOutcome = SurveyRejected | SurveyStored | SurveyListing | SurveyUsed | Refused


async def _show(update: Update, context: Context, outcome: LibraryOutcome, command: str) -> None:
    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
    match outcome:
        case SurveyRejected():
            await say(context, chat_id, render.survey_rejected(outcome))
        case SurveyStored():
            await say(context, chat_id, render.survey_stored(outcome))
        case SurveyListing():
            await say(context, chat_id, render.survey_listing(outcome))
        case SurveyUsed():
            await say(context, chat_id, render.survey_used(outcome))
        case _:
            await show(update, context, outcome, command)


async def upload(update: Update, context: Context) -> None:
    """A document from staff is a survey upload; from anyone else it is not ours."""
    message = update.message
    assert message is not None and message.document is not None
    person = who(update)
    if not await context.services.library.is_staff(person):
        return
    document = message.document
    size = document.file_size or 0
    content = None
    if size <= MAX_SURVEY_BYTES:
        file = await context.bot.get_file(document.file_id)
        content = bytes(await file.download_as_bytearray())
    name = document.file_name or "survey.yaml"
    outcome = await context.services.library.upload(person, name, size, content)
    await _show(update, context, outcome, "surveys")
    raise ApplicationHandlerStop


async def surveys(update: Update, context: Context) -> None:
    """`/surveys`: surveys, their latest versions and the branches in scope that use them."""
    person = who(update)
    if context.args:
        outcome: LibraryOutcome = await context.services.staff.refuse_usage(person, "survey.list")
    else:
        outcome = await context.services.library.list_surveys(person)
    await _show(update, context, outcome, "surveys")


async def survey_use(update: Update, context: Context) -> None:
    """`/survey_use <survey> <scope>`."""
    person, args = who(update), list(context.args or [])
    if len(args) != 2:
        outcome: LibraryOutcome = await context.services.staff.refuse_usage(person, "survey.use")
    else:
        outcome = await context.services.library.use(person, args[0], args[1])
    await _show(update, context, outcome, "survey_use")


async def survey_preview(update: Update, context: Context) -> None:
    """`/survey_preview <survey>`: the survey's first question, answered on a preview."""
    person, args = who(update), list(context.args or [])
    if len(args) != 1:
        await show(
            update,
            context,
            await context.services.staff.refuse_usage(person, "survey.preview"),
            "survey_preview",
        )
        return
    outcome = await context.services.library.preview(person, args[0])
    if isinstance(outcome, Refused):
        await show(update, context, outcome, "survey_preview")
        return
    assert update.effective_chat is not None
    await say(context, update.effective_chat.id, render.preview_note(outcome.shown.locale))
    await _send_preview(update, context, outcome)


async def _send_preview(update: Update, context: Context, outcome: Preview) -> None:
    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
    shown = outcome.shown
    match shown:
        case Question():
            reply = customer_render.question(shown)
        case Rejected():
            reply = customer_render.rejected(shown)
        case Completed():
            reply = customer_render.completed(shown)
    await send(context.bot, context.services.pacer, chat_id, reply)
    if isinstance(shown, Completed):
        await say(context, chat_id, render.preview_done(shown.locale))


async def preview_press(update: Update, context: Context) -> None:
    """A button on a preview question: the next question in place, nothing recorded."""
    query = update.callback_query
    assert query is not None
    press = callbacks.parse(query.data)
    if not isinstance(press, callbacks.SurveyPress):
        raise ApplicationHandlerStop
    outcome = await context.services.library.press(
        who(update), press.version, press.action, press.value
    )
    match outcome:
        case Preview(shown=Question() | Completed() as shown):
            reply = (
                customer_render.question(shown)
                if isinstance(shown, Question)
                else customer_render.completed(shown)
            )
            await answer_and_edit(query, reply)
            if isinstance(shown, Completed):
                await say(context, query.from_user.id, render.preview_done(shown.locale))
        case Preview(shown=Rejected() as shown):
            await answer(query, customer_render.rejected(shown).text, alert=True)
        case PreviewStale():
            await answer(query, render.preview_stale(outcome.locale), alert=True)
        case Refused(reason="not_staff"):  # a forged press: stale, as a customer's would be
            await answer(query, customer_render.info(Info(outcome.locale, "stale")).text)
        case Refused():
            await answer(query)
            await show(update, context, outcome)
    raise ApplicationHandlerStop


async def preview_text(update: Update, context: Context) -> None:
    """Typed text while a preview is open answers the preview; otherwise it is not ours."""
    message = update.message
    assert message is not None and message.text is not None
    outcome = await context.services.library.text(who(update), message.text)
    if outcome is None:
        return
    match outcome:
        case Preview():
            await _send_preview(update, context, outcome)
        case PreviewStale():
            assert update.effective_chat is not None
            await say(context, update.effective_chat.id, render.preview_stale(outcome.locale))
        case Refused(reason="not_staff"):  # no longer staff: the text is the customer's
            return
        case Refused():
            await show(update, context, outcome)
    raise ApplicationHandlerStop


def register(app: Application, group: int) -> None:  # type: ignore[type-arg]
    """Commands in the staff group; uploads and preview answers in earlier groups, so the
    customer conversation never sees them."""
    app.add_handler(CommandHandler("surveys", surveys), group)
    app.add_handler(CommandHandler("survey_use", survey_use), group)
    app.add_handler(CommandHandler("survey_preview", survey_preview), group)
    # Every document but a CSV (a customer list, handlers/staff/lists.py) is a survey upload.
    surveys_only = filters.Document.ALL & ~filters.Document.FileExtension("csv")
    app.add_handler(MessageHandler(PRIVATE & surveys_only, upload), group - 1)
    app.add_handler(CallbackQueryHandler(preview_press, pattern=PREVIEW_PRESS), group - 2)
    # A 6-digit text is left to the code handler: it may be a login or step-up code.
    typed = PRIVATE & filters.TEXT & ~filters.COMMAND & ~filters.Regex(CODE)
    app.add_handler(MessageHandler(typed, preview_text), group - 2)
