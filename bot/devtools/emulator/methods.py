"""The Bot API methods the emulator speaks, validated the way Telegram validates them."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.devtools.emulator.errors import NOT_MODIFIED, QUERY_INVALID, bad_request, forbidden
from bot.devtools.emulator.files import Upload
from bot.devtools.emulator.messages import SimMessage, parse_reply_markup
from bot.devtools.emulator.params import Params
from bot.devtools.emulator.text import parse_text, utf16_len
from bot.devtools.emulator.users import CallbackAnswer, SimUser
from bot.devtools.emulator.webhook import WebhookConfig

if TYPE_CHECKING:
    from bot.devtools.emulator.server import BotApiEmulator

Handler = Callable[["BotApiEmulator", Params], Awaitable[Any]]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_TEXT = 200
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


@dataclass(frozen=True)
class Method:
    name: str
    handler: Handler


@dataclass(frozen=True)
class Described:
    """A result that Telegram sends with a ``description`` (setWebhook, deleteWebhook)."""

    result: Any
    description: str


METHODS: dict[str, Method] = {}


def api(name: str) -> Callable[[Handler], Handler]:
    """Register a handler; Bot API method names are case-insensitive."""

    def register(handler: Handler) -> Handler:
        METHODS[name.lower()] = Method(name, handler)
        return handler

    return register


# -- shared checks ---------------------------------------------------------------------------


def _chat(emu: BotApiEmulator, p: Params, *, sending: bool = False) -> SimUser:
    raw = p.get("chat_id")
    if raw is None or raw == "":
        raise bad_request("chat_id is empty")
    user = emu.find_chat(raw)
    if user is None:
        raise bad_request("chat not found")
    if user.blocked:
        raise forbidden("bot was blocked by the user")
    if sending and not user.started:
        raise forbidden("bot can't initiate conversation with a user")
    return user


def _message(user: SimUser, p: Params, action: str) -> SimMessage:
    if p.get("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    message_id = p.integer("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = user.message(message_id)
    if message is None or message.deleted:
        raise bad_request(f"message to {action} not found")
    if action == "edit" and not message.from_bot:
        raise bad_request("message can't be edited")
    return message


def _formatted(p: Params, field: str, entities_field: str) -> tuple[str, list[dict[str, Any]]]:
    text = p.string(field) or ""
    entities = p.json(entities_field)
    if entities is not None:
        if not isinstance(entities, list):
            raise bad_request(f"can't parse {entities_field} JSON object")
        return text, entities
    return parse_text(text, p.string("parse_mode"))


def _text(p: Params) -> tuple[str, list[dict[str, Any]]]:
    if not p.string("text"):
        raise bad_request("message text is empty")
    text, entities = _formatted(p, "text", "entities")
    if not text.strip():
        raise bad_request("message text is empty")
    if utf16_len(text) > MAX_TEXT:
        raise bad_request("message is too long")
    return text, entities


def _caption(p: Params) -> tuple[str | None, list[dict[str, Any]]]:
    caption, entities = _formatted(p, "caption", "caption_entities")
    if utf16_len(caption) > MAX_CAPTION:
        raise bad_request("message caption is too long")
    return caption or None, entities


# -- bot and updates -------------------------------------------------------------------------


@api("getMe")
async def get_me(emu: BotApiEmulator, p: Params) -> Any:
    return emu.bot_user


@api("logOut")
async def log_out(emu: BotApiEmulator, p: Params) -> Any:
    return True


@api("close")
async def close(emu: BotApiEmulator, p: Params) -> Any:
    return True


@api("getUpdates")
async def get_updates(emu: BotApiEmulator, p: Params) -> Any:
    limit = p.integer("limit") or 100
    timeout = max(0.0, p.number("timeout") or 0.0)
    allowed = p.json("allowed_updates")
    if isinstance(allowed, list):
        emu.updates.set_allowed(allowed)
    return await emu.updates.get(p.integer("offset"), max(1, min(limit, 100)), timeout)


@api("setWebhook")
async def set_webhook(emu: BotApiEmulator, p: Params) -> Any:
    url = p.string("url") or ""
    if not url:
        return await delete_webhook(emu, p)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = p.string("secret_token") or None
    if secret is not None and not _SECRET.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    max_connections = p.integer("max_connections") or 40
    if max_connections < 1:
        raise bad_request("bad webhook: max_connections must be positive")
    allowed = p.json("allowed_updates")
    if isinstance(allowed, list):
        emu.updates.set_allowed(allowed)
    if p.flag("drop_pending_updates"):
        emu.updates.drop_all()
    upload = p.file("certificate")
    config = WebhookConfig(
        url=url,
        secret_token=secret,
        max_connections=max_connections,
        allowed_updates=tuple(allowed) if isinstance(allowed, list) else None,
        certificate=upload.data if isinstance(upload, Upload) else None,
    )
    if emu.webhook.config == config:
        return Described(True, "Webhook is already set")
    await emu.webhook.set(config)
    return Described(True, "Webhook was set")


@api("deleteWebhook")
async def delete_webhook(emu: BotApiEmulator, p: Params) -> Any:
    if p.flag("drop_pending_updates"):
        emu.updates.drop_all()
    if emu.webhook.config is None:
        return Described(True, "Webhook is already deleted")
    await emu.webhook.clear()
    return Described(True, "Webhook was deleted")


@api("getWebhookInfo")
async def get_webhook_info(emu: BotApiEmulator, p: Params) -> Any:
    hook = emu.webhook
    info: dict[str, Any] = {
        "url": hook.config.url if hook.config else "",
        "has_custom_certificate": bool(hook.config and hook.config.certificate),
        "pending_update_count": emu.updates.pending,
    }
    if hook.config:
        info["max_connections"] = hook.config.max_connections
        if hook.config.allowed_updates is not None:
            info["allowed_updates"] = list(hook.config.allowed_updates)
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    return info


# -- messages --------------------------------------------------------------------------------


@api("sendMessage")
async def send_message(emu: BotApiEmulator, p: Params) -> Any:
    user = _chat(emu, p, sending=True)
    text, entities = _text(p)
    markup = parse_reply_markup(p.get("reply_markup"))
    emu.admit("sendMessage", user.id, paid=p.flag("allow_paid_broadcast"))
    return emu.create_message(user, text=text, entities=entities, reply_markup=markup).to_api()


@api("sendPhoto")
async def send_photo(emu: BotApiEmulator, p: Params) -> Any:
    return _send_file(emu, p, "photo", emu.files.photo)


@api("sendDocument")
async def send_document(emu: BotApiEmulator, p: Params) -> Any:
    return _send_file(emu, p, "document", emu.files.document)


def _send_file(
    emu: BotApiEmulator, p: Params, kind: str, store: Callable[[Any], tuple[Any, bytes]]
) -> Any:
    """sendPhoto and sendDocument: the same checks, a different way to store the file."""
    user = _chat(emu, p, sending=True)
    upload = p.file(kind)
    if upload is None or upload == "":
        raise bad_request(f"there is no {kind} in the request")
    caption, entities = _caption(p)
    markup = parse_reply_markup(p.get("reply_markup"))
    stored, data = store(upload)
    emu.admit("send" + kind.capitalize(), user.id, paid=p.flag("allow_paid_broadcast"))
    message = emu.create_message(
        user,
        content=data,
        caption=caption,
        caption_entities=entities,
        reply_markup=markup,
        **{kind: stored},
    )
    return message.to_api()


@api("editMessageText")
async def edit_message_text(emu: BotApiEmulator, p: Params) -> Any:
    user = _chat(emu, p)
    message = _message(user, p, "edit")
    if message.text is None:
        raise bad_request("there is no text in the message to edit")
    text, entities = _text(p)
    markup = parse_reply_markup(p.get("reply_markup"))
    if (text, entities, markup) == (message.text, message.entities, message.reply_markup):
        raise bad_request(NOT_MODIFIED)
    emu.admit("editMessageText", user.id)
    emu.edit_message(user, message, text=text, entities=entities, reply_markup=markup)
    return message.to_api()


@api("editMessageCaption")
async def edit_message_caption(emu: BotApiEmulator, p: Params) -> Any:
    user = _chat(emu, p)
    message = _message(user, p, "edit")
    if message.text is not None:
        raise bad_request("there is no caption in the message to edit")
    caption, entities = _caption(p)
    markup = parse_reply_markup(p.get("reply_markup"))
    current = (message.caption, message.caption_entities, message.reply_markup)
    if (caption, entities, markup) == current:
        raise bad_request(NOT_MODIFIED)
    emu.admit("editMessageCaption", user.id)
    emu.edit_message(user, message, caption=caption, caption_entities=entities, reply_markup=markup)
    return message.to_api()


@api("editMessageReplyMarkup")
async def edit_message_reply_markup(emu: BotApiEmulator, p: Params) -> Any:
    user = _chat(emu, p)
    message = _message(user, p, "edit")
    markup = parse_reply_markup(p.get("reply_markup"))
    if markup == message.reply_markup:
        raise bad_request(NOT_MODIFIED)
    emu.admit("editMessageReplyMarkup", user.id)
    emu.edit_message(user, message, reply_markup=markup)
    return message.to_api()


@api("deleteMessage")
async def delete_message(emu: BotApiEmulator, p: Params) -> Any:
    user = _chat(emu, p)
    emu.delete_message(user, _message(user, p, "delete"))
    return True


@api("deleteMessages")
async def delete_messages(emu: BotApiEmulator, p: Params) -> Any:
    user = _chat(emu, p)
    ids = p.json("message_ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise bad_request("message_ids must be a non-empty list of at most 100 identifiers")
    found = [m for m in (user.message(int(i)) for i in ids) if m is not None and not m.deleted]
    if not found:
        raise bad_request("message to delete not found")
    for message in found:
        emu.delete_message(user, message)
    return True


@api("answerCallbackQuery")
async def answer_callback_query(emu: BotApiEmulator, p: Params) -> Any:
    query = emu.live_query(p.string("callback_query_id") or "")
    if query is None:
        raise bad_request(QUERY_INVALID)
    text = p.string("text")
    if text is not None and len(text) > MAX_CALLBACK_TEXT:
        raise bad_request("MESSAGE_TOO_LONG")
    emu.admit("answerCallbackQuery", query.user.id)
    query.answered = True
    query.user.record_answer(
        CallbackAnswer(
            query_id=query.query_id,
            data=query.data,
            message_id=query.message_id,
            text=text,
            show_alert=p.flag("show_alert"),
            url=p.string("url"),
            cache_time=p.integer("cache_time") or 0,
        )
    )
    return True


@api("sendChatAction")
async def send_chat_action(emu: BotApiEmulator, p: Params) -> Any:
    user = _chat(emu, p, sending=True)
    action = p.string("action")
    if action not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    user.chat_actions.append(action)
    return True


# -- files -----------------------------------------------------------------------------------


@api("getFile")
async def get_file(emu: BotApiEmulator, p: Params) -> Any:
    stored = emu.files.get(p.string("file_id") or "")
    if stored is None:
        raise bad_request("invalid file_id")
    return stored.to_api()


# -- commands and profile --------------------------------------------------------------------


def _commands_key(p: Params) -> tuple[str, str]:
    scope = p.json("scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    return json.dumps(scope, sort_keys=True), p.string("language_code") or ""


@api("setMyCommands")
async def set_my_commands(emu: BotApiEmulator, p: Params) -> Any:
    commands = p.json("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    clean = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad_request("can't parse BotCommand JSON object")
        command = str(item.get("command", "")).removeprefix("/")
        description = str(item.get("description", ""))
        if not _COMMAND.fullmatch(command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        clean.append({"command": command, "description": description})
    key = _commands_key(p)
    if clean:
        emu.commands[key] = clean
    else:
        emu.commands.pop(key, None)
    return True


@api("getMyCommands")
async def get_my_commands(emu: BotApiEmulator, p: Params) -> Any:
    return emu.commands.get(_commands_key(p), [])


@api("deleteMyCommands")
async def delete_my_commands(emu: BotApiEmulator, p: Params) -> Any:
    emu.commands.pop(_commands_key(p), None)
    return True


@api("setMyDescription")
async def set_my_description(emu: BotApiEmulator, p: Params) -> Any:
    emu.profile[("description", p.string("language_code") or "")] = p.string("description") or ""
    return True


@api("setMyShortDescription")
async def set_my_short_description(emu: BotApiEmulator, p: Params) -> Any:
    key = ("short_description", p.string("language_code") or "")
    emu.profile[key] = p.string("short_description") or ""
    return True


@api("setChatMenuButton")
async def set_chat_menu_button(emu: BotApiEmulator, p: Params) -> Any:
    return True
