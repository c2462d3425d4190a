"""Customer conversation handlers: parse the update, call the conversation service, render.

Private chats only. Surveys do not use `ConversationHandler`: the state is in the database, so
these few handlers turn any update into the right engine call whichever process receives it.
"""

from __future__ import annotations

from telegram import KeyboardButton, ReplyKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.services.conversation import (
    Completed,
    Info,
    LanguageSet,
    Outcome,
    Person,
    Question,
    Rejected,
    ShowNotice,
)
from bot.services.i18n import gettext as _
from bot.services.i18n import resolve_locale, use_locale
from bot.services.personal_data import export_json
from bot.transport.retry import with_retry
from handlers import callbacks, render
from handlers.context import ALERTS_JOB, Context
from handlers.render import Reply
from handlers.replies import answer, answer_and_edit, edit, send, strip_keyboard

PRIVATE = filters.ChatType.PRIVATE


def _person(update: Update) -> Person:
    user = update.effective_user
    assert user is not None
    return Person(user.id, user.language_code, user.full_name)


def _reply(outcome: Outcome) -> Reply | None:
    """The message an outcome shows, or None when there is nothing to show."""
    match outcome:
        case Question():
            return render.question(outcome)
        case Completed():
            return render.completed(outcome)
        case Info():
            return render.info(outcome)
        case Rejected():
            return render.rejected(outcome)
        case ShowNotice():
            return render.notice(outcome)
        case LanguageSet():
            return render.language_set(outcome.locale)
    return None


async def _say(update: Update, context: Context, reply: Reply) -> None:
    assert update.effective_chat is not None
    await send(context.bot, context.services.pacer, update.effective_chat.id, reply)


async def _send_outcome(update: Update, context: Context, outcome: Outcome) -> None:
    """Show the outcome in a new message; a question sent anew becomes the live one."""
    reply = _reply(outcome)
    if reply is not None:
        assert update.effective_chat is not None
        chat_id = update.effective_chat.id
        if isinstance(outcome, Question | Completed) and outcome.live_message_id is not None:
            # First off the old copy: a customer never sees two live copies, even for a moment.
            await _strip(context, chat_id, outcome.live_message_id)
        message_id = await send(context.bot, context.services.pacer, chat_id, reply)
        if isinstance(outcome, Question):
            await _note_live(context, chat_id, outcome, message_id, newer_only=True)
    if isinstance(outcome, Info) and outcome.kind == "greeting":
        await _offer_contact(update, context, outcome.locale)
    if isinstance(outcome, Completed) and outcome.alert:
        wake_alerts(context)
    if isinstance(outcome, LanguageSet) and outcome.question is not None:
        await _send_outcome(update, context, outcome.question)


def wake_alerts(context: Context) -> None:
    """A completion opened a follow-up: its alert goes out now, from the alerts job, so the
    customer's reply never waits for staff messages."""
    queue = context.job_queue
    if queue is None:
        return
    for job in queue.get_jobs_by_name(ALERTS_JOB):
        queue.run_once(job.callback, 0)


async def _strip(context: Context, chat_id: int, message_id: int) -> None:
    await strip_keyboard(context.bot, context.services.pacer, chat_id, message_id)


async def _note_live(
    context: Context, chat_id: int, question: Question, message_id: int, *, newer_only: bool
) -> None:
    """Remember that `message_id` shows the question now. When another update of this customer
    sent a copy meanwhile, the one that is not live loses its keys."""
    live, previous = await context.services.conversations.shown(
        question.session_id, message_id, newer_only=newer_only
    )
    if not live:
        await _strip(context, chat_id, message_id)
    elif previous not in (None, message_id, question.live_message_id):
        await _strip(context, chat_id, previous)


async def start(update: Update, context: Context) -> None:
    """Opens what the deep link names, after the privacy notice when consent is missing."""
    payload = context.args[0] if context.args else None
    outcome = await context.services.conversations.start(update.update_id, _person(update), payload)
    await _send_outcome(update, context, outcome)


async def text(update: Update, context: Context) -> None:
    """Takes a typed answer to the current text or number question."""
    assert update.message is not None and update.message.text is not None
    outcome = await context.services.conversations.reply_text(
        update.update_id, _person(update), update.message.text
    )
    await _send_outcome(update, context, outcome)


async def language(update: Update, context: Context) -> None:
    """Offers the languages, marking the current one."""
    locale = await context.services.conversations.locale_of(_person(update))
    await _say(update, context, render.language_menu(locale))


async def stop(update: Update, context: Context) -> None:
    """Opts the customer out of every future invitation."""
    outcome = await context.services.conversations.stop(update.update_id, _person(update))
    await _send_outcome(update, context, outcome)


async def privacy(update: Update, context: Context) -> None:
    """Shows the privacy notice in the reader's language."""
    conversations = context.services.conversations
    locale = await conversations.locale_of(_person(update))
    await _say(update, context, render.privacy(conversations.notice.text(locale)))


async def help_command(update: Update, context: Context) -> None:
    """Lists what the customer can do."""
    locale = await context.services.conversations.locale_of(_person(update))
    await _say(update, context, render.help_text(locale))


async def my_data(update: Update, context: Context) -> None:
    """Sends everything stored about the customer: a readable summary and a JSON file."""
    person = _person(update)
    services = context.services
    locale = await services.conversations.locale_of(person)
    data = await services.personal_data.export(person.telegram_id)
    await _say(update, context, render.my_data(data, locale, services.settings.zone))
    if data is not None:
        assert update.effective_chat is not None
        await context.bot.send_document(
            update.effective_chat.id, export_json(data), filename="suara-my-data.json"
        )


async def delete_me(update: Update, context: Context) -> None:
    """Asks for confirmation before erasing the customer's data."""
    locale = await context.services.conversations.locale_of(_person(update))
    await _say(update, context, render.erase_confirm(locale))


async def unknown_command(update: Update, context: Context) -> None:
    """Answers a command the bot does not know with one sentence."""
    locale = await context.services.conversations.locale_of(_person(update))
    with use_locale(locale):
        message = _("Sorry, I do not know that command. Send /help to see what I can do.")
    await _say(update, context, Reply(message))


async def unsupported(update: Update, context: Context) -> None:
    """Answers stickers, photos and the like, which no question accepts."""
    locale = await context.services.conversations.locale_of(_person(update))
    with use_locale(locale):
        message = _("Please answer with the buttons, or type your answer as text.")
    await _say(update, context, Reply(message))


async def _offer_contact(update: Update, context: Context, locale: str) -> None:
    """Telegram's contact button, for customers on the bank's list who came without their
    personal link: their own number finds them."""
    assert update.effective_chat is not None
    chat_id = update.effective_chat.id
    with use_locale(locale):
        text = _("Invited by the bank? Share your phone number and I will find your survey.")
        button = KeyboardButton(_("Share my phone number"), request_contact=True)
    keyboard = ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
    await with_retry(
        lambda: context.bot.send_message(chat_id, text, reply_markup=keyboard),
        context.services.pacer,
        chat_id,
    )


async def contact(update: Update, context: Context) -> None:
    """A phone number shared with the contact button: the customer's own finds them on the
    bank's list; anyone else's is answered like any other attachment."""
    assert update.message is not None and update.message.contact is not None
    person = _person(update)
    shared = update.message.contact
    if shared.user_id != person.telegram_id:
        await unsupported(update, context)
        return
    outcome = await context.services.conversations.shared_contact(
        update.update_id, person, shared.phone_number
    )
    await _send_outcome(update, context, outcome)


async def press(update: Update, context: Context) -> None:
    """Handles every button: survey answers, the privacy notice, language and erasure."""
    query = update.callback_query
    assert query is not None
    parsed = callbacks.parse(query.data)
    match parsed:
        case callbacks.SurveyPress():
            await _survey_press(update, context, parsed)
        case callbacks.NoticePress():
            await _notice_press(update, context, parsed)
        case callbacks.LanguagePress():
            await _language_press(update, context, parsed)
        case callbacks.ErasePress():
            await _erase_press(update, context, parsed)
        case _:
            stale = Info(resolve_locale(_person(update).language_code), "stale")
            await answer(query, render.info(stale).text, alert=True)


async def _survey_press(update: Update, context: Context, press: callbacks.SurveyPress) -> None:
    """Turns the question message into the next question; a press on an outdated question
    (or a second delivery of one) redraws the current question in its place."""
    query = update.callback_query
    assert query is not None
    outcome = await context.services.conversations.press(
        update.update_id,
        _person(update),
        press.session_id,
        press.version,
        press.action,
        press.value,
    )
    if isinstance(outcome, Info):
        await answer(query, render.info(outcome).text, alert=True)
        return
    reply = _reply(outcome)
    if reply is None:
        await answer(query)
        return
    message = query.message
    if isinstance(outcome, Question | Completed) and message is not None:
        # The pressed message shows the survey now; one that showed it before loses its keys.
        before, here = outcome.live_message_id, message.message_id
        if before is not None and before != here:
            await _strip(context, message.chat.id, before)
        if isinstance(outcome, Question) and before != here:
            await _note_live(context, message.chat.id, outcome, here, newer_only=False)
    await answer_and_edit(query, reply)
    if isinstance(outcome, Completed) and outcome.alert:
        wake_alerts(context)


async def _notice_press(update: Update, context: Context, press: callbacks.NoticePress) -> None:
    """Agree or Decline records the decision; the language button only redraws the notice."""
    query = update.callback_query
    assert query is not None
    conversations = context.services.conversations
    await answer(query)
    if press.choice == "language":
        text = conversations.notice.text(press.locale)
        await edit(query, render.notice(ShowNotice(press.locale, text, press.payload)))
        return
    agreed = press.choice == "agree"
    outcome = await conversations.consent(
        update.update_id, _person(update), agreed, press.locale, press.payload
    )
    await edit(query, render.consent_recorded(press.locale, agreed))
    await _send_outcome(update, context, outcome)


async def _language_press(update: Update, context: Context, press: callbacks.LanguagePress) -> None:
    """Confirms the new language and asks an open survey's question again in it."""
    query = update.callback_query
    assert query is not None
    outcome = await context.services.conversations.set_language(
        update.update_id, _person(update), press.locale
    )
    await answer(query)
    if isinstance(outcome, LanguageSet):
        await edit(query, render.language_set(outcome.locale))
        if outcome.question is not None:
            await _send_outcome(update, context, outcome.question)
    else:
        await _send_outcome(update, context, outcome)


async def _erase_press(update: Update, context: Context, press: callbacks.ErasePress) -> None:
    """Erases the customer's data once they confirmed it."""
    query = update.callback_query
    assert query is not None
    person = _person(update)
    locale = await context.services.conversations.locale_of(person)
    await answer(query)
    if press.confirmed:
        done = await context.services.personal_data.erase(person.telegram_id)
        await edit(query, render.erased(locale, done))
    else:
        await edit(query, render.erase_cancelled(locale))


def register(app: Application) -> None:  # type: ignore[type-arg]
    """Adds the customer handlers; staff handlers register before these."""
    app.add_handler(CallbackQueryHandler(press))  # the most frequent update: checked first
    app.add_handler(CommandHandler("start", start, filters=PRIVATE))
    app.add_handler(CommandHandler("language", language, filters=PRIVATE))
    app.add_handler(CommandHandler("stop", stop, filters=PRIVATE))
    app.add_handler(CommandHandler("privacy", privacy, filters=PRIVATE))
    app.add_handler(CommandHandler("help", help_command, filters=PRIVATE))
    app.add_handler(CommandHandler("mydata", my_data, filters=PRIVATE))
    app.add_handler(CommandHandler("delete_me", delete_me, filters=PRIVATE))
    app.add_handler(MessageHandler(PRIVATE & filters.COMMAND, unknown_command))
    app.add_handler(MessageHandler(PRIVATE & filters.TEXT, text))
    app.add_handler(MessageHandler(PRIVATE & filters.CONTACT, contact))
    app.add_handler(MessageHandler(PRIVATE & ~filters.TEXT, unsupported))
