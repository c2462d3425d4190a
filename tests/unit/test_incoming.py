"""bot.transport.incoming: a press is parsed with only what names its message."""

from __future__ import annotations

import copy

from bot.transport.incoming import trim

CHAT = {"id": 5, "type": "private", "first_name": "Ani"}
MESSAGE = {
    "message_id": 9,
    "date": 1_700_000_000,
    "chat": CHAT,
    "from": {"id": 1, "is_bot": True, "first_name": "Suara"},
    "text": "Pertanyaan 1 dari 7",
    "entities": [{"type": "bold", "offset": 0, "length": 19}],
    "reply_markup": {"inline_keyboard": [[{"text": "5", "callback_data": "q:1:1:a:5"}]]},
}
USER = {"id": 5, "is_bot": False, "first_name": "Ani"}


def test_a_press_keeps_the_message_id_date_and_chat() -> None:
    press = {
        "update_id": 1,
        "callback_query": {
            "id": "7",
            "from": USER,
            "chat_instance": "1",
            "data": "q:1:1:a:5",
            "message": copy.deepcopy(MESSAGE),
        },
    }
    trimmed = trim(press)
    assert trimmed is press
    assert press["callback_query"]["message"] == {
        "message_id": 9,
        "date": 1_700_000_000,
        "chat": CHAT,
    }
    assert (
        press["callback_query"]["data"] == "q:1:1:a:5" and press["callback_query"]["from"] == USER
    )


def test_other_updates_are_left_whole() -> None:
    text = {"update_id": 2, "message": copy.deepcopy(MESSAGE)}
    inline = {
        "update_id": 3,
        "callback_query": {
            "id": "8",
            "from": USER,
            "chat_instance": "1",
            "inline_message_id": "AbC",
            "data": "x",
        },
    }
    for update in (text, inline):
        before = copy.deepcopy(update)
        assert trim(update) == before
