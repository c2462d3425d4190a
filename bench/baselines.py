"""The two bots Suara's answer path is judged against, on the same survey and the same client.

Both ask the branch survey's questions in file order (no conditions) with keyboards shaped like
Suara's and callback data in its format, so the simulated customers cannot tell them apart:

- the echo bot: python-telegram-bot with Suara's aiohttp request class, no state, one API call
  per update (a press edits the message into the next question, `/start` sends the first one;
  the press is not even answered) — the ceiling for a PTB bot doing the minimum;
- the naive bot: PTB out of the box (default httpx request, sequential updates, polling), state
  in a dict, three calls per press (answerCallbackQuery, editMessageText to drop the keyboard,
  sendMessage with the next question) — how such a bot is usually first written.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import itertools
import json
from pathlib import Path

from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from bot.transport.request import AiohttpRequest
from flows import Question, Survey, load_survey_file, localized

ROOT = Path(__file__).resolve().parent.parent
SURVEY_FILE = ROOT / "surveys" / "branch_service.yaml"
LOCALE = "id"
WEBHOOK_PATH = "/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]

Ctx = ContextTypes.DEFAULT_TYPE


class SurveyShape:
    """The branch survey rendered plainly: question text and a Suara-like keyboard."""

    def __init__(self, survey: Survey) -> None:
        self.survey = survey
        self.total = len(survey.questions)
        self.intro = html.escape(localized(survey.intro, LOCALE, survey.default_locale))
        self.outro = html.escape(localized(survey.outro, LOCALE, survey.default_locale))

    def question_text(self, index: int, *, intro: bool = False) -> str:
        q = self.survey.questions[index]
        head = f"<b>Pertanyaan {index + 1} dari {self.total}</b>"
        body = html.escape(localized(q.text, LOCALE, self.survey.default_locale))
        return f"{self.intro}\n\n{head}\n{body}" if intro else f"{head}\n{body}"

    def keyboard(self, session: int, index: int) -> InlineKeyboardMarkup:
        q = self.survey.questions[index]
        prefix = f"q:{session}:{index}"
        rows = _answer_rows(prefix, q, self.survey.default_locale)
        nav = []
        if index > 0:
            nav.append(InlineKeyboardButton("« Kembali", callback_data=f"{prefix}:b"))
        if q.optional:
            nav.append(InlineKeyboardButton("Lewati »", callback_data=f"{prefix}:s"))
        if nav:
            rows.append(nav)
        return InlineKeyboardMarkup(rows)


def _answer_rows(prefix: str, q: Question, default: str) -> list[list[InlineKeyboardButton]]:
    def button(label: str, data: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(label, callback_data=f"{prefix}:{data}")

    if q.type == "rating":
        return [[button(f"{v}⭐", f"a:{v}") for v in range(1, (q.scale or 5) + 1)]]
    if q.type == "nps":
        return [
            [button(str(v), f"a:{v}") for v in range(0, 6)],
            [button(str(v), f"a:{v}") for v in range(6, 11)],
        ]
    if q.type == "yesno":
        return [[button("Ya", "a:yes"), button("Tidak", "a:no")]]
    if q.type == "choice":
        return [[button(localized(o.text, LOCALE, default), f"a:{o.id}")] for o in q.options]
    if q.type == "multi":
        rows = [
            [button("⬜ " + localized(o.text, LOCALE, default), f"t:{o.id}")] for o in q.options
        ]
        rows.append([button("Selesai ✔", "d")])
        return rows
    return []


def load_shape() -> SurveyShape:
    return SurveyShape(load_survey_file(SURVEY_FILE))


def _parse(data: str | None) -> tuple[int, int, str] | None:
    """(session, step, action) from `q:<session>:<step>:<action>[:<value>]`."""
    parts = (data or "").split(":")
    if len(parts) < 4 or parts[0] != "q":
        return None
    try:
        return int(parts[1]), int(parts[2]), parts[3]
    except ValueError:
        return None


# -- the echo bot ---------------------------------------------------------------------------


def build_echo(api_root: str, token: str, *, concurrent_updates: int, webhook: bool) -> Application:  # type: ignore[type-arg]
    """Stateless: the next question is the pressed one's index plus one; one call per update."""
    shape = load_shape()
    sessions = itertools.count(1)

    async def start(update: Update, context: Ctx) -> None:
        assert update.effective_chat is not None
        session = next(sessions)
        await context.bot.send_message(
            update.effective_chat.id,
            shape.question_text(0, intro=True),
            parse_mode=ParseMode.HTML,
            reply_markup=shape.keyboard(session, 0),
        )

    async def press(update: Update, context: Ctx) -> None:
        query = update.callback_query
        assert query is not None
        parsed = _parse(query.data)
        if parsed is None:
            return
        session, index, _action = parsed
        following = index + 1
        if following >= shape.total:
            await query.edit_message_text(shape.outro, parse_mode=ParseMode.HTML)
        else:
            await query.edit_message_text(
                shape.question_text(following),
                parse_mode=ParseMode.HTML,
                reply_markup=shape.keyboard(session, following),
            )

    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_root}/bot")
        .request(AiohttpRequest(connection_pool_size=max(8, concurrent_updates * 2)))
        .get_updates_request(AiohttpRequest(connection_pool_size=2, read_timeout=40))
        .concurrent_updates(concurrent_updates)
    )
    if webhook:
        builder = builder.updater(None)
    app = builder.build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(press))
    return app


def echo_web_app(app: Application, secret: str, concurrency: int) -> web.Application:  # type: ignore[type-arg]
    """The webhook server of bot/transport/web.py, minus the answer riding in the 200 body."""
    slots = asyncio.Semaphore(concurrency)

    async def webhook(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=403)
        update = Update.de_json(await request.json(loads=json.loads), app.bot)
        async with slots:
            await app.process_update(update)
        return web.Response(status=200)

    server = web.Application()
    server.router.add_post(WEBHOOK_PATH, webhook)
    return server


# -- the naive bot --------------------------------------------------------------------------


def build_naive(api_root: str, token: str) -> Application:  # type: ignore[type-arg]
    """PTB's defaults throughout: HTTPXRequest, one update at a time, state in memory."""
    shape = load_shape()
    current: dict[int, tuple[int, int]] = {}  # user -> (session, question index)
    answers: dict[tuple[int, int], str] = {}  # (session, index) -> the button's value
    sessions = itertools.count(1)

    async def start(update: Update, context: Ctx) -> None:
        assert update.effective_chat is not None and update.effective_user is not None
        session = next(sessions)
        current[update.effective_user.id] = (session, 0)
        await context.bot.send_message(
            update.effective_chat.id,
            shape.question_text(0, intro=True),
            parse_mode=ParseMode.HTML,
            reply_markup=shape.keyboard(session, 0),
        )

    async def press(update: Update, context: Ctx) -> None:
        query = update.callback_query
        assert query is not None and update.effective_user is not None
        parsed = _parse(query.data)
        if parsed is None or current.get(update.effective_user.id) != parsed[:2]:
            await query.answer("Tombol ini sudah tidak aktif.", show_alert=True)
            return
        session, index, _action = parsed
        value = (query.data or "").split(":", 4)[-1]
        answers[(session, index)] = value
        await query.answer()
        await query.edit_message_text(
            f"{shape.question_text(index)}\n\n✓ {html.escape(value)}", parse_mode=ParseMode.HTML
        )
        following = index + 1
        assert query.message is not None
        if following >= shape.total:
            current.pop(update.effective_user.id, None)
            await context.bot.send_message(
                query.message.chat.id, shape.outro, parse_mode=ParseMode.HTML
            )
            return
        current[update.effective_user.id] = (session, following)
        await context.bot.send_message(
            query.message.chat.id,
            shape.question_text(following),
            parse_mode=ParseMode.HTML,
            reply_markup=shape.keyboard(session, following),
        )

    app = ApplicationBuilder().token(token).base_url(f"{api_root}/bot").build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(press))
    return app
