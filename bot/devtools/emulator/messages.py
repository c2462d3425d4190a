"""Messages held by the emulator and the reply markup rules Telegram applies to them.

A :class:`SimMessage` is the one stored copy of a message: the emulator mutates it on edits and
deletions, so a test holding it sees the chat as the user would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bot.devtools.emulator.errors import bad_request

Button = tuple[str, str | None]

MAX_BUTTONS = 100
_BUTTON_ERROR = "can't parse inline keyboard button"
_BUTTON_ACTIONS = frozenset(
    {
        "callback_data",
        "url",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)


@dataclass(eq=False)
class SimMessage:
    """A message in a private chat, live: edits and deletions show up on the same object."""

    message_id: int
    chat: dict[str, Any]
    sender: dict[str, Any]
    date: int
    from_bot: bool
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    photo: list[dict[str, Any]] | None = None
    document: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None
    content: bytes | None = None
    deleted: bool = False
    edit_date: int | None = None
    edits: int = 0

    @property
    def chat_id(self) -> int:
        return self.chat["id"]

    @property
    def body(self) -> str:
        """What the user reads: the text, or the caption of a photo or document."""
        return self.text if self.text is not None else (self.caption or "")

    @property
    def buttons(self) -> list[list[Button]]:
        """Inline keyboard rows as ``(text, callback_data)``; data is None for link buttons."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [[(b.get("text", ""), b.get("callback_data")) for b in row] for row in rows]

    @property
    def button_data(self) -> list[str]:
        """Every ``callback_data`` on the inline keyboard, in reading order."""
        return [data for row in self.buttons for _, data in row if data is not None]

    @property
    def button_labels(self) -> list[str]:
        return [text for row in self.buttons for text, _ in row]

    def button(self, label: str) -> str | None:
        """The callback data of the button labelled ``label`` (exact match), if any."""
        for row in self.buttons:
            for text, data in row:
                if text == label:
                    return data
        return None

    def to_api(self) -> dict[str, Any]:
        """The Bot API ``Message`` object for the current state."""
        data: dict[str, Any] = {
            "message_id": self.message_id,
            "from": self.sender,
            "chat": self.chat,
            "date": self.date,
        }
        if self.edit_date is not None:
            data["edit_date"] = self.edit_date
        if self.text is not None:
            data["text"] = self.text
            if self.entities:
                data["entities"] = self.entities
        if self.photo is not None:
            data["photo"] = self.photo
        if self.document is not None:
            data["document"] = self.document
        if self.contact is not None:
            data["contact"] = self.contact
        if self.caption:
            data["caption"] = self.caption
            if self.caption_entities:
                data["caption_entities"] = self.caption_entities
        if self.reply_markup is not None and "inline_keyboard" in self.reply_markup:
            data["reply_markup"] = self.reply_markup  # Telegram shows only inline keyboards
        return data

    def __repr__(self) -> str:
        state = " deleted" if self.deleted else (" edited" if self.edits else "")
        who = "bot" if self.from_bot else "user"
        return (
            f"<SimMessage #{self.message_id} {who}{state} {self.body[:60]!r}"
            f" buttons={self.button_labels}>"
        )


def load_json(value: Any, what: str) -> Any:
    """Decode a parameter that form bodies carry JSON-encoded inside a field."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {what} JSON object") from None
    return value


def parse_reply_markup(value: Any) -> dict[str, Any] | None:
    """Validate ``reply_markup`` as Telegram does; an empty inline keyboard means none."""
    if value is None or value == "":
        return None
    markup = load_json(value, "reply keyboard markup")
    if not isinstance(markup, dict):
        raise bad_request("object expected as reply markup")
    if "inline_keyboard" not in markup:
        if not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
            raise bad_request('can\'t find field "inline_keyboard"')
        return markup
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
        )
    if sum(len(row) for row in rows) > MAX_BUTTONS:
        raise bad_request("reply markup is too long")
    clean_rows = [[_check_button(button) for button in row] for row in rows if row]
    return {"inline_keyboard": clean_rows} if clean_rows else None


def _check_button(button: Any) -> dict[str, Any]:
    if not isinstance(button, dict):
        raise bad_request(f"{_BUTTON_ERROR}: InlineKeyboardButton must be an Object")
    if not isinstance(button.get("text"), str):
        raise bad_request(f'{_BUTTON_ERROR}: Field "text" must be of type String')
    clean = {k: v for k, v in button.items() if v is not None}
    if clean.keys().isdisjoint(_BUTTON_ACTIONS):
        raise bad_request(f"{_BUTTON_ERROR}: Text buttons are unallowed in the inline keyboard")
    data = clean.get("callback_data")
    if data is not None and not (isinstance(data, str) and 1 <= len(data.encode()) <= 64):
        raise bad_request("BUTTON_DATA_INVALID")
    url = clean.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http", "tg://"))):
        raise bad_request("BUTTON_URL_INVALID")
    return clean
