"""What of an incoming update the bot parses, and which updates it can use at all.

A button press carries the whole message it was on: its text, formatting entities, sender and
keyboard. Handlers only need to know which message it was, to edit it; parsing the rest into
python-telegram-bot's objects took more than half of parsing a press (bench/RESULTS.md).

An update the bot cannot use (an edited message, a message without a sender, a field of the
wrong shape, an id no database column holds) must not fail on every delivery, or Telegram
repeats it until it gives up: it is set aside with a reason before parsing. Both ways updates
arrive, the webhook and long polling, pass through `admit` and `trim` before parsing.
"""

from __future__ import annotations

import re
from typing import Any

# What names a pressed message; `date` also tells an accessible message from an inaccessible one.
_PRESSED_MESSAGE_FIELDS = ("message_id", "date", "chat")
_MAX_ID = 2**63 - 1  # the BIGINT columns that hold update, user and chat ids
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON text holds a lone surrogate only as an escape such as \ud800.
ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


class NotAnUpdate(ValueError):
    """The body is not a Telegram update at all (answered 400 on the webhook)."""


def _is_id(value: object) -> bool:
    return type(value) is int and -_MAX_ID <= value <= _MAX_ID


def admit(update: object) -> str | None:
    """None when the bot can use `update`, else why not; NotAnUpdate when it is none."""
    if not isinstance(update, dict) or type(update.get("update_id")) is not int:
        raise NotAnUpdate("not a JSON object with an integer update_id")
    if not 0 <= update["update_id"] <= _MAX_ID:
        return "its update_id is out of range"
    message, query = update.get("message"), update.get("callback_query")
    if message is not None:
        if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
            return "its message is malformed"
        if not isinstance(message.get("from"), dict):
            return "its message has no sender"
        if not (_is_id(message["from"].get("id")) and _is_id(message["chat"].get("id"))):
            return "its sender or chat id is out of range"
        return None
    if query is not None:
        if not isinstance(query, dict) or not isinstance(query.get("from"), dict):
            return "its button press is malformed"
        if not _is_id(query["from"].get("id")):
            return "its sender id is out of range"
        pressed = query.get("message")
        if pressed is not None and not isinstance(pressed, dict):
            return "its button press is malformed"
        return None
    member = update.get("my_chat_member")
    if member is not None:  # a customer blocked or unblocked the bot
        if not isinstance(member, dict) or not isinstance(member.get("chat"), dict):
            return "its chat member change is malformed"
        if not _is_id(member["chat"].get("id")):
            return "its chat id is out of range"
        return None
    kinds = [key for key in update if key != "update_id"]
    return f"the bot does not use {kinds[0] if kinds else 'empty'} updates"


def mend_text(value: Any) -> Any:
    """`value` with every lone surrogate (no character; it cannot be stored or sent) replaced
    by U+FFFD; only worth calling when the raw JSON held an escaped surrogate."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: mend_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mend_text(item) for item in value]
    return value


def trim(update: dict[str, Any]) -> dict[str, Any]:
    """Reduce a press's message to the fields that name it, in place; other updates are kept."""
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict):
            query["message"] = {k: message[k] for k in _PRESSED_MESSAGE_FIELDS if k in message}
    return update
