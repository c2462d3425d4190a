"""The Bot API emulator, driven over real HTTP by python-telegram-bot and a raw aiohttp client."""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.helpers import escape_markdown

from bot.devtools.emulator import SECRET_HEADER, ApiError, BotApiEmulator, NoReply, SimUser
from bot.devtools.emulator.text import parse_text

PNG_2x1 = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x02\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    b"\x00\x00\x00\x00IDAT"
)


def keyboard(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


pytestmark = pytest.mark.usefixtures("timedelta_retry_after")


async def make_bot(emulator: BotApiEmulator) -> Bot:
    return Bot(emulator.token, base_url=emulator.base_url, base_file_url=emulator.base_file_url)


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with await make_bot(emu) as client:
        yield client


@pytest.fixture
async def ani(emu: BotApiEmulator) -> SimUser:
    user = emu.user(1001, "Ani", username="ani_w")
    await user.start()
    return user


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def raw(
    http: aiohttp.ClientSession, emulator: BotApiEmulator, method: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    url = f"{emulator.api_root}/bot{emulator.token}/{method}"
    async with http.post(url, **kwargs) as response:
        return response.status, await response.json()


# -- basics ----------------------------------------------------------------------------------


async def test_get_me_returns_the_bot_user(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456
    assert me.is_bot
    assert me.username == "suara_demo_bot"


async def test_wrong_token_is_unauthorized_and_malformed_token_not_found(
    emu: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("123456:WRONG", base_url=emu.base_url):
            pass
    async with http.post(f"{emu.api_root}/bot999:OTHER/getMe") as response:
        assert response.status == 401
        assert await response.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }
    async with http.post(f"{emu.api_root}/botnot-a-token/getMe") as response:
        assert response.status == 404


async def test_unknown_method_is_not_found(
    emu: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    status, body = await raw(http, emu, "sendTelepathy")
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    assert emu.calls["sendTelepathy"] == 1


async def test_method_names_are_case_insensitive(
    emu: BotApiEmulator, http: aiohttp.ClientSession
) -> None:
    status, body = await raw(http, emu, "GETME")
    assert status == 200
    assert body["result"]["username"] == "suara_demo_bot"
    assert emu.calls["getMe"] == 1


async def test_close_and_log_out_are_harmless(bot: Bot) -> None:
    assert await bot.close()
    assert await bot.log_out()


# -- sending, editing, deleting --------------------------------------------------------------


async def test_send_message_returns_a_real_message(bot: Bot, ani: SimUser) -> None:
    sent = await bot.send_message(ani.id, "Apa kabar?", reply_markup=keyboard([("Baik", "ok")]))
    assert isinstance(sent, Message)
    assert sent.message_id == 2  # the user's /start was message 1
    assert sent.from_user is not None and sent.from_user.is_bot
    assert sent.chat.id == ani.id and sent.chat.type == "private"
    assert sent.chat.first_name == "Ani"
    assert sent.text == "Apa kabar?"
    assert sent.reply_markup == keyboard([("Baik", "ok")])
    assert ani.last is not None
    assert ani.last.message_id == 2
    assert ani.last.buttons == [[("Baik", "ok")]]
    assert ani.last.button("Baik") == "ok"


async def test_message_ids_count_per_chat(bot: Bot, emu: BotApiEmulator) -> None:
    first, second = emu.user(1, started=True), emu.user(2, started=True)
    a1 = await bot.send_message(first.id, "a")
    b1 = await bot.send_message(second.id, "b")
    a2 = await bot.send_message(first.id, "c")
    assert (a1.message_id, b1.message_id, a2.message_id) == (1, 1, 2)
    assert emu.sent_per_chat == {1: 2, 2: 1}
    assert emu.calls["sendMessage"] == 3


async def test_html_becomes_text_and_entities(bot: Bot, ani: SimUser) -> None:
    sent = await bot.send_message(ani.id, "<b>Skor</b> 9 &lt; 10 🙂 <i>ok</i>", parse_mode="HTML")
    assert sent.text == "Skor 9 < 10 🙂 ok"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 4),
        ("italic", 15, 2),  # the emoji counts two UTF-16 units
    ]


async def test_bad_html_is_refused(bot: Bot, ani: SimUser) -> None:
    with pytest.raises(BadRequest, match=r'(?i)parse entities: unsupported start tag "br"'):
        await bot.send_message(ani.id, "a<br>b", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(ani.id, "<b>bold", parse_mode="HTML")


async def test_markdown_v2_requires_escaping(bot: Bot, ani: SimUser) -> None:
    with pytest.raises(BadRequest, match=r"(?i)character '.' is reserved"):
        await bot.send_message(ani.id, "Terima kasih.", parse_mode=ParseMode.MARKDOWN_V2)
    text = (
        escape_markdown("Skor (1-5): ", version=2)
        + "*"
        + escape_markdown("4.5 [ok]!", version=2)
        + "*"
    )
    sent = await bot.send_message(ani.id, text, parse_mode=ParseMode.MARKDOWN_V2)
    assert sent.text == "Skor (1-5): 4.5 [ok]!"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 12, 9)]


async def test_text_validation(bot: Bot, ani: SimUser) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(ani.id, "")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ani.id, "x" * 4097)
    assert (await bot.send_message(ani.id, "x" * 4096)).text == "x" * 4096


async def test_callback_data_must_be_1_to_64_bytes(bot: Bot, ani: SimUser) -> None:
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(ani.id, "q", reply_markup=keyboard([("A", "é" * 33)]))
    ok = await bot.send_message(ani.id, "q", reply_markup=keyboard([("A", "x" * 64)]))
    assert ok.reply_markup is not None


async def test_button_without_action_is_refused(
    emu: BotApiEmulator, ani: SimUser, http: aiohttp.ClientSession
) -> None:
    markup = json.dumps({"inline_keyboard": [[{"text": "A"}]]})
    status, body = await raw(
        http, emu, "sendMessage", data={"chat_id": ani.id, "text": "q", "reply_markup": markup}
    )
    assert status == 400
    assert "Text buttons are unallowed" in body["description"]


async def test_unknown_chat_unstarted_user_and_blocked_user(bot: Bot, emu: BotApiEmulator) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(999, "hi")
    stranger = emu.user(5, "Budi")
    with pytest.raises(Forbidden, match=r"(?i)bot can't initiate conversation with a user"):
        await bot.send_message(stranger.id, "hi")
    await stranger.start()
    stranger.block()
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user") as caught:
        await bot.send_message(stranger.id, "hi")
    assert caught.value.message == "Forbidden: bot was blocked by the user"
    stranger.unblock()
    assert (await bot.send_message(stranger.id, "hi")).text == "hi"


async def test_block_sends_my_chat_member_updates(bot: Bot, ani: SimUser) -> None:
    ani.block()
    with pytest.raises(AssertionError, match=r"(?i)blocked the bot"):
        await ani.send_text("hi")
    ani.unblock()
    updates = await bot.get_updates()
    kinds = [(u.my_chat_member.new_chat_member.status) for u in updates if u.my_chat_member]
    assert kinds == ["kicked", "member"]


async def test_edit_text_reflects_on_the_live_message(bot: Bot, ani: SimUser) -> None:
    sent = await bot.send_message(ani.id, "Q1", reply_markup=keyboard([("1", "a:1")]))
    view = ani.last
    assert view is not None
    edited = await bot.edit_message_text(
        "Q2", chat_id=ani.id, message_id=sent.message_id, reply_markup=keyboard([("2", "a:2")])
    )
    assert isinstance(edited, Message)
    assert edited.edit_date is not None
    assert view.text == "Q2" and view.button_data == ["a:2"] and view.edits == 1
    # editing the text without reply_markup removes the keyboard, as on Telegram
    await bot.edit_message_text("Q3", chat_id=ani.id, message_id=sent.message_id)
    assert view.buttons == []


async def test_edit_to_the_same_content_is_not_modified(bot: Bot, ani: SimUser) -> None:
    markup = keyboard([("Ya", "y"), ("Tidak", "n")])
    sent = await bot.send_message(ani.id, "Setuju?", reply_markup=markup)
    with pytest.raises(BadRequest) as caught:
        await bot.edit_message_text(
            "Setuju?", chat_id=ani.id, message_id=sent.message_id, reply_markup=markup
        )
    assert caught.value.message == (
        "Message is not modified: specified new message content and reply markup are exactly "
        "the same as a current content and reply markup of the message"
    )
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_reply_markup(ani.id, sent.message_id, reply_markup=markup)
    await bot.edit_message_reply_markup(ani.id, sent.message_id, reply_markup=None)
    assert ani.last is not None and ani.last.buttons == []


async def test_edit_and_delete_missing_messages(bot: Bot, ani: SimUser) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=ani.id, message_id=77)
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", chat_id=ani.id, message_id=1)  # the user's /start
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(ani.id, 77)
    sent = await bot.send_message(ani.id, "bye")
    assert await bot.delete_message(ani.id, sent.message_id)
    assert ani.messages[-1].deleted
    assert ani.last is None
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(ani.id, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=ani.id, message_id=sent.message_id)


async def test_the_bot_may_delete_the_users_message(bot: Bot, ani: SimUser) -> None:
    await ani.send_text("/login 123456")
    code_message = ani.history[-1]
    assert await bot.delete_message(ani.id, code_message.message_id)
    assert code_message.deleted and not code_message.from_bot


async def test_send_photo_and_document(bot: Bot, ani: SimUser) -> None:
    photo = await bot.send_photo(ani.id, PNG_2x1, caption="<b>Grafik</b>", parse_mode="HTML")
    assert photo.caption == "Grafik"
    assert (photo.photo[-1].width, photo.photo[-1].height) == (2, 1)
    document = await bot.send_document(ani.id, b"a;b\n1;2\n", filename="hasil.csv")
    assert document.document is not None
    assert document.document.file_name == "hasil.csv"
    assert document.document.mime_type == "text/csv"
    assert document.document.file_size == 8
    assert ani.messages[-2].photo is not None and ani.messages[-2].content == PNG_2x1
    assert ani.messages[-1].content == b"a;b\n1;2\n"
    file = await bot.get_file(document.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"a;b\n1;2\n"
    again = await bot.send_photo(ani.id, photo.photo[-1].file_id)
    assert again.photo[-1].width == 2
    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await bot.send_photo(ani.id, b"not an image")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_document(ani.id, "NO_SUCH_FILE")


async def test_user_documents_can_be_fetched(bot: Bot, ani: SimUser) -> None:
    await ani.send_document(b"id: nps\n", "survey.yaml", mime_type="application/x-yaml")
    [update] = [u for u in await bot.get_updates() if u.message and u.message.document]
    assert update.message is not None and update.message.document is not None
    file = await update.message.document.get_file()
    assert bytes(await file.download_as_bytearray()) == b"id: nps\n"


async def test_commands_and_chat_actions(bot: Bot, emu: BotApiEmulator, ani: SimUser) -> None:
    assert await bot.set_my_commands([("start", "Mulai"), ("results", "Hasil")])
    assert await bot.set_my_commands([("start", "Start")], language_code="en")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "results"]
    assert [c.description for c in await bot.get_my_commands(language_code="en")] == ["Start"]
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Start-Now", "x")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    assert await bot.send_chat_action(ani.id, "typing")
    assert ani.chat_actions == ["typing"]
    assert emu.calls["setMyCommands"] == 3


# -- body formats ----------------------------------------------------------------------------


async def test_body_formats(emu: BotApiEmulator, ani: SimUser, http: aiohttp.ClientSession) -> None:
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    _, form = await raw(
        http,
        emu,
        "sendMessage",
        data={"chat_id": str(ani.id), "text": "form", "reply_markup": json.dumps(markup)},
    )
    _, body = await raw(
        http, emu, "sendMessage", json={"chat_id": ani.id, "text": "json", "reply_markup": markup}
    )
    _, query = await raw(http, emu, "sendMessage", params={"chat_id": ani.id, "text": "query"})
    upload = aiohttp.FormData()
    upload.add_field("chat_id", str(ani.id))
    upload.add_field("photo", PNG_2x1, filename="chart.png", content_type="image/png")
    upload.add_field("reply_markup", json.dumps(markup))
    _, multipart = await raw(http, emu, "sendPhoto", data=upload)
    assert form["result"]["reply_markup"] == markup
    assert body["result"]["reply_markup"] == markup
    assert query["result"]["text"] == "query"
    assert multipart["result"]["photo"][-1]["width"] == 2
    assert multipart["result"]["reply_markup"] == markup
    status, bad = await raw(
        http, emu, "sendMessage", data={"chat_id": ani.id, "text": "x", "reply_markup": "{oops"}
    )
    assert status == 400 and "can't parse reply keyboard markup" in bad["description"]


# -- callback queries ------------------------------------------------------------------------


async def test_press_and_answer(bot: Bot, ani: SimUser) -> None:
    sent = await bot.send_message(ani.id, "Nilai?", reply_markup=keyboard([("5", "r:5")]))
    pressed = await ani.press(ani.last or sent.message_id, "r:5")
    [update] = [u for u in await bot.get_updates() if u.callback_query]
    query = update.callback_query
    assert query is not None and query.data == "r:5"
    assert query.id == pressed["callback_query"]["id"]
    assert isinstance(query.message, Message) and query.message.message_id == sent.message_id
    assert await query.answer("Terima kasih")
    answer = await ani.wait_for_answer(pressed)
    assert answer.text == "Terima kasih" and answer.data == "r:5"
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer("again")
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("12345")


async def test_press_by_label_and_missing_buttons(bot: Bot, ani: SimUser) -> None:
    await bot.send_message(ani.id, "Bahasa?", reply_markup=keyboard([("English", "l:en")]))
    assert ani.last is not None
    update = await ani.press(ani.last, label="English")
    assert update["callback_query"]["data"] == "l:en"
    with pytest.raises(AssertionError, match=r"(?i)no button with callback_data 'l:fr'"):
        await ani.press(ani.last, "l:fr")
    with pytest.raises(AssertionError, match=r"(?i)no callback button labelled"):
        await ani.press(ani.last, label="Français")


async def test_forged_press_on_a_missing_message(bot: Bot, ani: SimUser) -> None:
    await ani.press_raw(999, "q:1:a:5")
    [update] = [u for u in await bot.get_updates() if u.callback_query]
    assert update.callback_query is not None
    assert update.callback_query.data == "q:1:a:5"
    assert update.callback_query.message is not None
    assert update.callback_query.message.message_id == 999
    assert not update.callback_query.message.is_accessible


async def test_callback_answer_text_limit_and_expiry(emu: BotApiEmulator, bot: Bot) -> None:
    emu.callback_query_ttl = 0.05
    user = emu.user(7, started=True)
    await bot.send_message(user.id, "q", reply_markup=keyboard([("A", "a")]))
    first = await user.press(user.messages[-1], "a")
    with pytest.raises(BadRequest, match=r"(?i)MESSAGE_TOO_LONG"):
        await bot.answer_callback_query(first["callback_query"]["id"], "x" * 201)
    await asyncio.sleep(0.1)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(first["callback_query"]["id"], "late")


# -- waiting helpers -------------------------------------------------------------------------


async def test_next_reply_and_wait_for_walk_the_conversation(bot: Bot, ani: SimUser) -> None:
    async def bot_side() -> None:
        await asyncio.sleep(0.01)
        sent = await bot.send_message(ani.id, "Q1", reply_markup=keyboard([("1", "1")]))
        await bot.edit_message_text("Q1 ✓", chat_id=ani.id, message_id=sent.message_id)
        await bot.send_message(ani.id, "Q2")

    await ani.send_text("hi")
    task = asyncio.create_task(bot_side())
    first = await ani.next_reply()
    assert first.message_id == 3  # after the user's /start and "hi"
    edited = await ani.next_reply()
    assert edited is first and first.text == "Q1 ✓"
    second = await ani.wait_for(lambda m: m.text == "Q2")
    assert second.message_id == 4
    await task
    with pytest.raises(NoReply):
        await ani.next_reply(timeout=0.05)
    await ani.expect_silence(0.01)


async def test_expect_silence_fails_when_the_bot_speaks(bot: Bot, ani: SimUser) -> None:
    ani.mark()
    await bot.send_message(ani.id, "surprise")
    with pytest.raises(AssertionError, match=r"(?i)unexpected bot messages"):
        await ani.expect_silence(0.01)


async def test_start_payload_must_be_a_deep_link_payload(ani: SimUser) -> None:
    with pytest.raises(ValueError, match=r"(?i)deep-link payload"):
        await ani.start("b jkt")
    update = await ani.start("c_Ab-1")
    assert update["message"]["text"] == "/start c_Ab-1"
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]


# -- getUpdates ------------------------------------------------------------------------------


async def test_long_polling_waits_for_an_update(bot: Bot, emu: BotApiEmulator) -> None:
    user = emu.user(9)
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    assert not poll.done()
    sent = await user.send_text("halo")
    updates = await poll
    assert [u.update_id for u in updates] == [sent["update_id"]] == [1]
    assert updates[0].message is not None and updates[0].message.text == "halo"


async def test_long_polling_times_out_empty(bot: Bot) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=0.2) == ()
    assert loop.time() - started >= 0.2


async def test_offset_confirms_and_limit_caps(bot: Bot, emu: BotApiEmulator) -> None:
    user = emu.user(9)
    for text in ("a", "b", "c"):
        await user.send_text(text)
    assert [u.update_id for u in await bot.get_updates(limit=2)] == [1, 2]
    assert [u.update_id for u in await bot.get_updates()] == [1, 2, 3]  # nothing confirmed yet
    assert [u.update_id for u in await bot.get_updates(offset=3)] == [3]
    assert emu.updates.pending == 1
    assert await bot.get_updates(offset=4) == ()
    assert emu.updates.pending == 0
    await user.send_text("d")
    await user.send_text("e")
    assert [u.update_id for u in await bot.get_updates(offset=-1)] == [5]


async def test_allowed_updates_filters_new_updates(bot: Bot, emu: BotApiEmulator) -> None:
    user = emu.user(9, started=True)
    await bot.get_updates(allowed_updates=["callback_query"])
    await user.send_text("ignored")
    await bot.send_message(user.id, "q", reply_markup=keyboard([("A", "a")]))
    await user.press(user.messages[-1], "a")
    updates = await bot.get_updates()
    assert [u.callback_query is not None for u in updates] == [True]


async def test_a_newer_poll_terminates_the_older(emu: BotApiEmulator) -> None:
    async with await make_bot(emu) as first, await make_bot(emu) as second:
        older = asyncio.create_task(first.get_updates(timeout=5))
        await asyncio.sleep(0.05)
        newer = asyncio.create_task(second.get_updates(timeout=0.1))
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
            await older
        assert await newer == ()


async def test_redelivery_repeats_an_update(bot: Bot, emu: BotApiEmulator) -> None:
    user = emu.user(9)
    sent = await user.send_text("jawaban")
    first = await bot.get_updates()
    await bot.get_updates(offset=first[-1].update_id + 1)
    emu.redeliver(sent)
    again = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.update_id for u in again] == [sent["update_id"]]
    assert emu.updates.pending == 0
    raw_update = emu.inject_update({"message": sent["message"]})
    assert raw_update["update_id"] == 2


# -- flood limits ----------------------------------------------------------------------------


async def test_per_chat_limit_tolerates_a_burst_then_429() -> None:
    async with BotApiEmulator(global_rate=None, per_chat_rate=1.0, per_chat_burst=3) as emu:
        user = emu.user(1, started=True)
        other = emu.user(2, started=True)
        async with await make_bot(emu) as bot:
            sent = await bot.send_message(user.id, "q", reply_markup=keyboard([("A", "a")]))
            for n in range(2):
                await bot.send_message(user.id, f"m{n}")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(user.id, "one too many")
            assert caught.value.retry_after == timedelta(seconds=1)
            await bot.send_message(other.id, "another chat is fine")
            await bot.edit_message_text("edits are not limited", user.id, sent.message_id)
            with pytest.raises(RetryAfter):
                await bot.send_photo(user.id, PNG_2x1)
            await asyncio.sleep(1.0)
            await bot.send_message(user.id, "one per second again")
    assert emu.count_429 == 2
    assert emu.sent_per_chat == {1: 4, 2: 1}


async def test_global_limit_across_chats(http: aiohttp.ClientSession) -> None:
    async with BotApiEmulator(global_rate=5, per_chat_rate=None) as emu:
        users = [emu.user(n, started=True) for n in range(1, 8)]
        answers = [
            await raw(http, emu, "sendMessage", data={"chat_id": u.id, "text": "x"}) for u in users
        ]
        statuses = [status for status, _ in answers]
        assert statuses == [200] * 5 + [429] * 2
        _, body = answers[-1]
        assert body == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        }
        paid = await raw(
            http,
            emu,
            "sendMessage",
            data={"chat_id": 1, "text": "paid", "allow_paid_broadcast": "true"},
        )
        assert paid[0] == 200
        assert emu.count_429 == 2


async def test_flood_limits_can_cover_edits(http: aiohttp.ClientSession) -> None:
    async with BotApiEmulator(
        global_rate=None,
        per_chat_rate=1.0,
        per_chat_burst=1,
        flood_limited_methods=("sendMessage", "editMessageText"),
    ) as emu:
        user = emu.user(1, started=True)
        await emu.call("sendMessage", chat_id=user.id, text="a")
        with pytest.raises(ApiError) as caught:
            await emu.call("editMessageText", chat_id=user.id, message_id=1, text="b")
        assert caught.value.code == 429 and caught.value.retry_after == 1


# -- webhooks --------------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint whose answers the test scripts."""

    def __init__(self, answer: Callable[[dict[str, Any]], web.StreamResponse]) -> None:
        self.answer = answer
        self.received: list[tuple[dict[str, Any], str | None]] = []
        self.in_flight = 0
        self.peak = 0
        self.hold = 0.0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        update = await request.json()
        self.received.append((update, request.headers.get(SECRET_HEADER)))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.hold)
        finally:
            self.in_flight -= 1
        return self.answer(update)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def ok(update: dict[str, Any]) -> web.StreamResponse:
    return web.Response(text="ok")


async def test_webhook_delivers_with_the_secret_header(bot: Bot, emu: BotApiEmulator) -> None:
    user = emu.user(9)
    await user.send_text("before")
    async with Receiver(ok) as receiver:
        assert await bot.set_webhook(receiver.url, secret_token="s3cret_-X", max_connections=2)
        await user.send_text("after")
        await emu.drained()
        assert [(u["message"]["text"], secret) for u, secret in receiver.received] == [
            ("before", "s3cret_-X"),
            ("after", "s3cret_-X"),
        ]
        info = await bot.get_webhook_info()
        assert info.url == receiver.url and info.pending_update_count == 0
        assert info.max_connections == 2
        with pytest.raises(Conflict, match=r"(?i)webhook is active"):
            await bot.get_updates()
        assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert all(attempt.ok and attempt.secret_sent for attempt in emu.webhook_log)


async def test_webhook_keeps_max_connections_in_flight(bot: Bot, emu: BotApiEmulator) -> None:
    users = [emu.user(n) for n in range(1, 7)]
    async with Receiver(ok) as receiver:
        receiver.hold = 0.05
        await bot.set_webhook(receiver.url, max_connections=3)
        for user in users:
            await user.send_text("x")
        await emu.drained()
        assert len(receiver.received) == 6
        assert receiver.peak == 3
        await bot.delete_webhook()


async def test_webhook_retries_a_failed_delivery(bot: Bot, emu: BotApiEmulator) -> None:
    failures = iter([500, 502])

    def flaky(update: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=next(failures, 200))

    async with Receiver(flaky) as receiver:
        await bot.set_webhook(receiver.url)
        sent = await emu.user(9).send_text("x")
        await emu.drained()
        assert [u["update_id"] for u, _ in receiver.received] == [sent["update_id"]] * 3
        assert [a.status for a in emu.webhook_log] == [500, 502, 200]
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 502 Bad Gateway"
        await bot.delete_webhook()


async def test_webhook_connection_errors_are_retried_then_given_up() -> None:
    async with Receiver(ok) as receiver:
        dead_url = receiver.url  # nothing listens there once the receiver is closed
    async with BotApiEmulator(webhook_retry_delays=(0.01, 0.01)) as emu:
        await emu.call("setWebhook", url=dead_url)
        await emu.user(9).send_text("x")
        await emu.drained()
        assert [(a.attempt, a.error) for a in emu.webhook_log] == [
            (1, "Connection refused"),
            (2, "Connection refused"),
            (3, "Connection refused"),
        ]
        info = await emu.call("getWebhookInfo")
        assert info["last_error_message"] == "Connection refused"


async def test_webhook_answer_may_carry_a_method(bot: Bot, emu: BotApiEmulator) -> None:
    user = emu.user(9, started=True)
    await bot.send_message(user.id, "Nilai?", reply_markup=keyboard([("5", "r:5")]))

    def answer_inline(update: dict[str, Any]) -> web.StreamResponse:
        query = update["callback_query"]
        return web.json_response(
            {"method": "answerCallbackQuery", "callback_query_id": query["id"], "text": "✓"}
        )

    async with Receiver(answer_inline) as receiver:
        await bot.set_webhook(receiver.url)
        pressed = await user.press(user.messages[-1], "r:5")
        answer = await user.wait_for_answer(pressed)
        assert answer.text == "✓"
        await emu.drained()
        [attempt] = emu.webhook_log
        assert attempt.reply_method == "answerCallbackQuery"
        assert attempt.reply_result == {"ok": True, "result": True}
        assert emu.calls["answerCallbackQuery"] == 1
        await bot.delete_webhook()


async def test_webhook_reply_method_errors_stay_silent(bot: Bot, emu: BotApiEmulator) -> None:
    def bad(update: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"method": "sendMessage", "chat_id": 424242, "text": "x"})

    async with Receiver(bad) as receiver:
        await bot.set_webhook(receiver.url)
        await emu.user(9).send_text("x")
        await emu.drained()
        [attempt] = emu.webhook_log
        assert attempt.ok
        assert attempt.reply_result is not None
        assert attempt.reply_result["description"] == "Bad Request: chat not found"
        await bot.delete_webhook()


async def test_set_webhook_can_drop_pending_updates(bot: Bot, emu: BotApiEmulator) -> None:
    await emu.user(9).send_text("stale")
    async with Receiver(ok) as receiver:
        await bot.set_webhook(receiver.url, drop_pending_updates=True)
        await emu.drained()
        assert receiver.received == []
        with pytest.raises(BadRequest, match=r"(?i)bad webhook"):
            await bot.set_webhook("ftp://example.org/hook")
        await bot.delete_webhook()


# -- faults ----------------------------------------------------------------------------------


async def test_fail_answers_with_the_given_error(
    bot: Bot, emu: BotApiEmulator, ani: SimUser
) -> None:
    emu.fail("sendMessage", times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
            await bot.send_message(ani.id, "x")
    assert (await bot.send_message(ani.id, "x")).text == "x"
    emu.fail(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 7", retry_after=7
    )
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ani.id, "x")
    assert caught.value.retry_after == timedelta(seconds=7)
    assert emu.count_429 == 1


async def test_fail_can_target_one_chat(bot: Bot, emu: BotApiEmulator) -> None:
    a, b = emu.user(1, started=True), emu.user(2, started=True)
    emu.fail(
        "sendMessage",
        error_code=403,
        description="Forbidden: user is deactivated",
        chat_id=b.id,
        times=None,
    )
    assert await bot.send_message(a.id, "x")
    for _ in range(2):
        with pytest.raises(Forbidden, match=r"(?i)user is deactivated"):
            await bot.send_message(b.id, "x")
    emu.clear_faults()
    assert await bot.send_message(b.id, "x")


async def test_fail_after_the_effect(bot: Bot, emu: BotApiEmulator, ani: SimUser) -> None:
    emu.fail("sendMessage", after=True)
    with pytest.raises(NetworkError):
        await bot.send_message(ani.id, "sent anyway")
    assert ani.last is not None and ani.last.text == "sent anyway"


async def test_drop_connection_gives_a_network_error(
    bot: Bot, emu: BotApiEmulator, ani: SimUser
) -> None:
    emu.drop_connection("sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(ani.id, "lost")
    assert ani.last is None
    emu.drop_connection("sendMessage", after=True)
    with pytest.raises(NetworkError):
        await bot.send_message(ani.id, "delivered, answer lost")
    assert ani.last is not None and ani.last.text == "delivered, answer lost"


async def test_delay_holds_the_answer(bot: Bot, emu: BotApiEmulator) -> None:
    emu.delay("getMe", 0.2, times=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bot.get_me()
    assert loop.time() - started >= 0.2
    started = loop.time()
    await bot.get_me()
    assert loop.time() - started < 0.2


async def test_stop_releases_a_delayed_call() -> None:
    emu = BotApiEmulator()
    await emu.start()
    emu.delay("*", 30)
    async with aiohttp.ClientSession() as http:
        call = asyncio.create_task(raw(http, emu, "getMe"))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(emu.stop(), 5)
        status, _ = await call
        assert status == 200


# -- text parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "mode", "text", "entities"),
    [
        (
            '<a href="https://t.me/x?a=1&amp;b=2">link</a>',
            "HTML",
            "link",
            [{"type": "text_link", "offset": 0, "length": 4, "url": "https://t.me/x?a=1&b=2"}],
        ),
        (
            '<pre><code class="language-python">x = 1</code></pre>',
            "HTML",
            "x = 1",
            [{"type": "pre", "offset": 0, "length": 5, "language": "python"}],
        ),
        (
            "<b>a <i>b</i></b>",
            "HTML",
            "a b",
            [
                {"type": "bold", "offset": 0, "length": 3},
                {"type": "italic", "offset": 2, "length": 1},
            ],
        ),
        (
            "*a* _b_ __c__ ~d~ ||e|| `f`",
            "MarkdownV2",
            "a b c d e f",
            [
                {"type": "bold", "offset": 0, "length": 1},
                {"type": "italic", "offset": 2, "length": 1},
                {"type": "underline", "offset": 4, "length": 1},
                {"type": "strikethrough", "offset": 6, "length": 1},
                {"type": "spoiler", "offset": 8, "length": 1},
                {"type": "code", "offset": 10, "length": 1},
            ],
        ),
        (
            "[situs](https://bank.example/a\\)b)",
            "MarkdownV2",
            "situs",
            [{"type": "text_link", "offset": 0, "length": 5, "url": "https://bank.example/a)b"}],
        ),
        (
            "*tebal* 1.5 (ok)",
            "Markdown",
            "tebal 1.5 (ok)",
            [{"type": "bold", "offset": 0, "length": 5}],
        ),
    ],
)
def test_parse_modes(source: str, mode: str, text: str, entities: list[dict[str, Any]]) -> None:
    assert parse_text(source, mode) == (text, entities)


@pytest.mark.parametrize(
    ("source", "mode", "error"),
    [
        ("a <b", "HTML", "Unclosed start tag"),
        ("a <x> b", "HTML", "Unsupported start tag"),
        ("<b>x</i>", "HTML", "Unmatched end tag"),
        ('<span class="x">y</span>', "HTML", 'must have class "tg-spoiler"'),
        ("*open", "MarkdownV2", "Can't find end of Bold entity"),
        ("a-b", "MarkdownV2", "Character '-' is reserved"),
        ("*open", "Markdown", "Can't find end of the entity starting at byte offset 0"),
    ],
)
def test_parse_mode_errors(source: str, mode: str, error: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_text(source, mode)
    assert caught.value.code == 400
    assert error in caught.value.description


@given(st.text(max_size=60))
def test_escaped_text_parses_back_to_itself(text: str) -> None:
    assert parse_text(escape_markdown(text, version=2), "MarkdownV2") == (text, [])
    assert parse_text(html.escape(text, quote=False), "HTML") == (text, [])
