"""What of an incoming update the bot parses.

A button press carries the whole message it was on: its text, formatting entities, sender and
keyboard. Handlers only need to know which message it was, to edit it; parsing the rest into
python-telegram-bot's objects took more than half of parsing a press (bench/RESULTS.md).
Both ways updates arrive, the webhook and long polling, pass through `trim` before parsing.
"""

from __future__ import annotations

from typing import Any

# What names a pressed message; `date` also tells an accessible message from an inaccessible one.
_PRESSED_MESSAGE_FIELDS = ("message_id", "date", "chat")


def trim(update: dict[str, Any]) -> dict[str, Any]:
    """Reduce a press's message to the fields that name it, in place; other updates are kept."""
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict):
            query["message"] = {k: message[k] for k in _PRESSED_MESSAGE_FIELDS if k in message}
    return update
