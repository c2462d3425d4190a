"""AiohttpRequest: python-telegram-bot's HTTP layer on aiohttp, against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from bot.devtools.emulator import BotApiEmulator, SimUser
from bot.transport.request import AiohttpRequest, UpdatesRequest

PNG_1x1 = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


pytestmark = pytest.mark.usefixtures("timedelta_retry_after")


def make_bot(emulator: BotApiEmulator, request: AiohttpRequest | None = None) -> Bot:
    return Bot(
        emulator.token,
        base_url=emulator.base_url,
        base_file_url=emulator.base_file_url,
        request=request or AiohttpRequest(),
        get_updates_request=AiohttpRequest(),
    )


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with make_bot(emu) as client:
        yield client


@pytest.fixture
async def ani(emu: BotApiEmulator) -> SimUser:
    user = emu.user(1001, "Ani")
    await user.start()
    return user


async def test_get_me(bot: Bot, emu: BotApiEmulator) -> None:
    me = await bot.get_me()
    assert me.username == "suara_demo_bot"
    assert emu.calls["getMe"] == 2  # once more when the bot initialised


async def test_send_and_edit_with_reply_markup(bot: Bot, ani: SimUser) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Ya", callback_data="k:y")]])
    sent = await bot.send_message(ani.id, "<b>Setuju?</b>", parse_mode="HTML", reply_markup=markup)
    assert sent.text == "Setuju?"
    assert sent.reply_markup == markup
    edited = await bot.edit_message_text("Terima kasih", ani.id, sent.message_id)
    assert isinstance(edited, Message) and edited.text == "Terima kasih"
    assert ani.last is not None and ani.last.buttons == []


async def test_uploads_go_as_multipart(bot: Bot, ani: SimUser, tmp_path: Path) -> None:
    photo = await bot.send_photo(ani.id, PNG_1x1, caption="Grafik NPS")
    assert photo.caption == "Grafik NPS"
    assert ani.messages[-1].content == PNG_1x1
    document = await bot.send_document(ani.id, b"cabang;nps\nJKT01;42\n", filename="nps.csv")
    assert document.document is not None and document.document.file_name == "nps.csv"
    assert ani.messages[-1].content == b"cabang;nps\nJKT01;42\n"
    path = tmp_path / "ringkasan.txt"
    path.write_bytes(b"dari berkas")
    with path.open("rb") as handle:
        await bot.send_document(ani.id, handle)
    assert ani.messages[-1].content == b"dari berkas"
    assert ani.messages[-1].document is not None
    assert ani.messages[-1].document["file_name"] == "ringkasan.txt"


async def test_file_download(bot: Bot, ani: SimUser) -> None:
    await ani.send_document(b"id: csat\n", "survey.yaml")
    [update] = await bot.get_updates(offset=2)
    assert update.message is not None and update.message.document is not None
    file = await update.message.document.get_file()
    assert bytes(await file.download_as_bytearray()) == b"id: csat\n"


async def test_api_errors_map_to_ptb_exceptions(
    bot: Bot, emu: BotApiEmulator, ani: SimUser
) -> None:
    with pytest.raises(BadRequest):
        await bot.send_message(ani.id, "")
    stranger = emu.user(2)
    with pytest.raises(Forbidden):
        await bot.send_message(stranger.id, "hi")
    emu.fail("sendMessage", error_code=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ani.id, "hi")
    assert caught.value.retry_after == timedelta(seconds=3)
    wrong = Bot("123456:WRONG", base_url=emu.base_url, request=AiohttpRequest())
    with pytest.raises(InvalidToken):
        async with wrong:
            pass


async def test_flood_limit_surfaces_as_retry_after(ani: SimUser) -> None:
    async with BotApiEmulator(global_rate=None, per_chat_rate=1, per_chat_burst=1) as emu:
        user = emu.user(ani.id, started=True)
        async with make_bot(emu) as bot:
            await bot.send_message(user.id, "1")
            with pytest.raises(RetryAfter):
                await bot.send_message(user.id, "2")
        assert emu.count_429 == 1


async def test_dropped_connection_is_a_network_error(
    bot: Bot, emu: BotApiEmulator, ani: SimUser
) -> None:
    emu.drop_connection("sendMessage")
    with pytest.raises(NetworkError) as caught:
        await bot.send_message(ani.id, "x")
    assert type(caught.value) is NetworkError
    assert "aiohttp.ServerDisconnectedError" in caught.value.message


async def test_refused_connection_is_a_network_error() -> None:
    emulator = BotApiEmulator()
    await emulator.start()
    bot = make_bot(emulator)
    await emulator.stop()  # nothing listens on the port any more
    with pytest.raises(NetworkError):
        async with bot:
            pass


async def test_slow_reply_times_out(emu: BotApiEmulator) -> None:
    async with make_bot(emu, AiohttpRequest(read_timeout=0.2)) as bot:
        emu.delay("getMe", 1.0, times=1)
        with pytest.raises(TimedOut):
            await bot.get_me()
        emu.delay("getMe", 0.5, times=1)
        assert await bot.get_me(read_timeout=2)  # a per-call timeout overrides the default


async def test_per_call_timeout_overrides_a_generous_default(emu: BotApiEmulator) -> None:
    async with make_bot(emu) as bot:
        emu.delay("getMe", 1.0, times=1)
        with pytest.raises(TimedOut):
            await bot.get_me(read_timeout=0.1)


async def test_long_poll_adds_its_timeout_to_the_read_timeout(emu: BotApiEmulator) -> None:
    request = AiohttpRequest(read_timeout=0.2)
    assert request.read_timeout == 0.2
    async with Bot(emu.token, base_url=emu.base_url, get_updates_request=request) as bot:
        assert await bot.get_updates(timeout=0.5) == ()


async def test_pool_exhaustion_is_a_timeout(emu: BotApiEmulator, ani: SimUser) -> None:
    async with make_bot(emu, AiohttpRequest(connection_pool_size=1, pool_timeout=0.1)) as bot:
        emu.delay("sendMessage", 0.5, times=1)
        slow = asyncio.create_task(bot.send_message(ani.id, "slow"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimedOut, match="Pool timeout"):
            await bot.send_message(ani.id, "queued")
        assert (await slow).text == "slow"


async def test_many_concurrent_calls_share_the_pool(bot: Bot, emu: BotApiEmulator) -> None:
    users = [emu.user(n, started=True) for n in range(1, 41)]
    sent = await asyncio.gather(*(bot.send_message(u.id, "halo") for u in users))
    assert len(sent) == 40
    assert emu.calls["sendMessage"] == 40


async def test_lifecycle(emu: BotApiEmulator) -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request(f"{emu.base_url}{emu.token}/getMe", "POST")
    await request.initialize()
    status, body = await request.do_request(f"{emu.base_url}{emu.token}/getMe", "POST")
    assert status == 200 and b"suara_demo_bot" in body
    await request.shutdown()
    await request.shutdown()  # idempotent
    await request.initialize()  # usable again, like HTTPXRequest
    status, _ = await request.do_request(f"{emu.base_url}{emu.token}/getMe", "POST")
    assert status == 200
    await request.shutdown()
    with pytest.raises(ValueError, match="connection_pool_size"):
        AiohttpRequest(connection_pool_size=0)


def polling_app(emu: BotApiEmulator, updates: AiohttpRequest) -> Application:  # type: ignore[type-arg]
    return (
        ApplicationBuilder()
        .token(emu.token)
        .base_url(emu.base_url)
        .base_file_url(emu.base_file_url)
        .request(AiohttpRequest())
        .get_updates_request(updates)
        .build()
    )


@asynccontextmanager
async def polling(app: Application) -> AsyncIterator[None]:  # type: ignore[type-arg]
    """The application up and long-polling the emulator for the duration of the block."""
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()


async def test_application_polls_and_replies(emu: BotApiEmulator) -> None:
    async def greet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.effective_user is not None
        payload = " ".join(context.args or [])
        await update.message.reply_text(f"Halo {update.effective_user.first_name} ({payload})")

    app = polling_app(emu, AiohttpRequest())
    app.add_handler(CommandHandler("start", greet))
    async with polling(app):
        user = emu.user(77, "Ani")
        await user.start("b_JKT01")
        reply = await user.next_reply()
        assert reply.text == "Halo Ani (b_JKT01)"
    assert emu.calls["sendMessage"] == 1


async def test_a_polled_press_names_its_message_and_nothing_more(emu: BotApiEmulator) -> None:
    seen: list[tuple[object, ...]] = []

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and isinstance(query.message, Message)
        message = query.message
        seen.append((message.text, message.entities, message.from_user, message.reply_markup))
        await query.answer()
        await context.bot.edit_message_text("Terima kasih", message.chat.id, message.message_id)

    app = polling_app(emu, UpdatesRequest())
    app.add_handler(CallbackQueryHandler(pressed))
    user = emu.user(78, "Ani")
    await user.start()
    async with polling(app):
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Ya", callback_data="k:y")]])
        sent = await app.bot.send_message(
            user.id, "<b>Setuju?</b>", parse_mode="HTML", reply_markup=markup
        )
        await user.press(sent.message_id, "k:y")
        edited = await user.next_reply()
    assert edited.message_id == sent.message_id and edited.text == "Terima kasih"
    assert seen == [(None, (), None, None)]  # its text, entities, sender and keyboard: unparsed


async def test_calls_without_files_go_as_one_json_body() -> None:
    """Nested objects (a keyboard) travel as JSON, not as form-encoded JSON strings."""
    from aiohttp import web

    seen: list[tuple[str, object]] = []

    async def method(request: web.Request) -> web.Response:
        seen.append((request.content_type, await request.json()))
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", method)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    request = AiohttpRequest()
    await request.initialize()
    try:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Ya ✓", callback_data="k:y")]])
        bot = Bot("1:T", base_url=f"http://127.0.0.1:{port}/bot", request=request)
        await bot.do_api_request(
            "sendPoll2", api_kwargs={"chat_id": 7, "title": "x", "reply_markup": markup}
        )
    finally:
        await request.shutdown()
        await runner.cleanup()
    assert seen == [
        (
            "application/json",
            {
                "chat_id": 7,
                "title": "x",
                "reply_markup": {"inline_keyboard": [[{"text": "Ya ✓", "callback_data": "k:y"}]]},
            },
        )
    ]
