"""Simulated Telegram users: the in-process side that tests, the demo and benchmarks drive.

Each user owns their private chat with the bot. Actions enqueue real updates; the bot's
messages arrive as live :class:`SimMessage` objects, and waiting is event-driven.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.devtools.emulator.messages import SimMessage
from bot.devtools.emulator.text import command_entities

if TYPE_CHECKING:
    from bot.devtools.emulator.server import BotApiEmulator

_DEEP_LINK_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")


class NoReply(AssertionError, TimeoutError):
    """The bot did not send what a test waited for in time."""


@dataclass(frozen=True)
class CallbackAnswer:
    """What the bot answered to one button press (answerCallbackQuery)."""

    query_id: str
    data: str | None
    message_id: int
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int


class SimUser:
    """A user and their private chat with the bot."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "id",
        started: bool = False,
    ) -> None:
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.started = started
        self.blocked = False
        self.callback_answers: list[CallbackAnswer] = []
        self.chat_actions: list[str] = []
        self._emulator = emulator
        self._history: dict[int, SimMessage] = {}
        self._next_message_id = 1
        self._events: list[SimMessage] = []
        self._keys_removed: set[int] = set()  # events that only took a message's buttons off
        self._mark = 0
        self._changed = asyncio.Event()
        self.api_user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        self.api_chat: dict[str, Any] = {"id": user_id, "first_name": first_name}
        for key, value in (("last_name", last_name), ("username", username)):
            if value:
                self.api_user[key] = value
                self.api_chat[key] = value
        if language_code:
            self.api_user["language_code"] = language_code
        self.api_chat["type"] = "private"

    def __repr__(self) -> str:
        return f"<SimUser {self.id} {self.first_name!r}>"

    # -- what the chat shows ---------------------------------------------------------------

    @property
    def messages(self) -> list[SimMessage]:
        """The bot's messages in this chat, oldest first, deleted ones included (flagged)."""
        return [m for m in self._history.values() if m.from_bot]

    @property
    def history(self) -> list[SimMessage]:
        """Every message in the chat, the user's own included."""
        return list(self._history.values())

    @property
    def last(self) -> SimMessage | None:
        """The bot's most recent message that is still there."""
        for message in reversed(self._history.values()):
            if message.from_bot and not message.deleted:
                return message
        return None

    def message(self, message_id: int) -> SimMessage | None:
        return self._history.get(message_id)

    # -- acting ------------------------------------------------------------------------------

    async def send_text(self, text: str) -> dict[str, Any]:
        """Type and send ``text``; a ``/command`` gets its bot_command entity."""
        message = self._new_user_message(text=text, entities=command_entities(text))
        return await self._act({"message": message.to_api()})

    async def send_in_group(self, group_id: int, text: str) -> dict[str, Any]:
        """Send ``text`` in a group chat the bot is in; the bot's replies there are not kept."""
        message = {
            "message_id": self.take_message_id(),
            "from": self.api_user,
            "chat": {"id": group_id, "type": "group", "title": "Group"},
            "date": int(time.time()),
            "text": text,
            "entities": command_entities(text),
        }
        return await self._act({"message": message})

    async def start(self, payload: str | None = None) -> dict[str, Any]:
        """Open the bot, optionally through a deep link ``t.me/<bot>?start=<payload>``."""
        if payload is not None and not _DEEP_LINK_PAYLOAD.fullmatch(payload):
            raise ValueError(f"a deep-link payload is 1-64 of A-Za-z0-9_-, not {payload!r}")
        return await self.send_text(f"/start {payload}" if payload else "/start")

    async def send_document(
        self,
        content: bytes,
        file_name: str,
        *,
        mime_type: str | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """Upload a file into the chat; the bot can fetch it with getFile."""
        stored = self._emulator.files.add(content, "documents", file_name=file_name, mime=mime_type)
        document = {
            "file_name": file_name,
            "mime_type": mime_type or "application/octet-stream",
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(content),
        }
        message = self._new_user_message(document=document, content=content, caption=caption)
        return await self._act({"message": message.to_api()})

    async def send_contact(
        self, phone_number: str, *, user_id: int | None = None
    ) -> dict[str, Any]:
        """Share a phone number with the contact button: one's own (``user_id`` defaults to
        this user's id) or, with another ``user_id``, someone else's."""
        contact = {
            "phone_number": phone_number,
            "first_name": self.first_name,
            "user_id": self.id if user_id is None else user_id,
        }
        message = self._new_user_message(contact=contact)
        return await self._act({"message": message.to_api()})

    async def press(
        self, message: SimMessage | int, data: str | None = None, *, label: str | None = None
    ) -> dict[str, Any]:
        """Tap a button that is on ``message`` now, chosen by callback data or by label."""
        found = message if isinstance(message, SimMessage) else self._history.get(message)
        if found is None or not found.from_bot or found.chat_id != self.id:
            raise AssertionError(f"{self!r} has no bot message {message!r}")
        if found.deleted:
            raise AssertionError(f"cannot press a button on deleted {found!r}")
        if label is not None:
            data = found.button(label)
            if data is None:
                raise AssertionError(f"no callback button labelled {label!r} on {found!r}")
        elif data not in found.button_data:
            raise AssertionError(
                f"no button with callback_data {data!r} on {found!r}; buttons: {found.buttons}"
            )
        return await self.press_raw(found.message_id, data)

    async def press_raw(self, message_id: int, data: str | None) -> dict[str, Any]:
        """A forged press: any data, any message id, as a modified client could send."""
        self._ensure_active()
        found = self._history.get(message_id)
        if found is not None and not found.deleted:
            shown = found.to_api()
        else:  # Telegram's InaccessibleMessage
            shown = {"chat": self.api_chat, "message_id": message_id, "date": 0}
        query_id = self._emulator.register_query(self, data, message_id)
        query: dict[str, Any] = {
            "id": query_id,
            "from": self.api_user,
            "message": shown,
            "chat_instance": str(-(self.id * 7919 + 13)),
        }
        if data is not None:
            query["data"] = data
        return await self._act({"callback_query": query})

    def block(self) -> None:
        """Block the bot: sends fail with 403 and the bot gets a my_chat_member update."""
        if not self.blocked:
            self.blocked = True
            self._emulator.put_update({"my_chat_member": self._member_change("member", "kicked")})

    def unblock(self) -> None:
        if self.blocked:
            self.blocked = False
            self._emulator.put_update({"my_chat_member": self._member_change("kicked", "member")})

    # -- waiting -----------------------------------------------------------------------------

    def mark(self) -> int:
        """Set the watermark to now: later waits only see messages sent or edited after it."""
        self._mark = len(self._events)
        return self._mark

    async def wait_for(
        self,
        predicate: Callable[[SimMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - the test API reads best with a plain timeout
        *,
        after: int | None = None,
    ) -> SimMessage:
        """The first bot message, new or edited since the watermark, satisfying ``predicate``.

        The watermark is the user's latest action (or ``after``, a value of :meth:`mark`); it
        moves to the message returned, so successive waits walk through the conversation. An
        edit that only took the buttons off a message is no reply and is passed over.
        """
        index = self._mark if after is None else after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while index < len(self._events):
                message = self._events[index]
                index += 1
                if index - 1 in self._keys_removed:
                    continue
                if predicate is None or predicate(message):
                    self._mark = index
                    return message
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoReply(
                    f"{self!r}: no matching bot message within {timeout}s; "
                    f"recent: {self.messages[-3:]}"
                )
            await self._wait_change(remaining)

    async def next_reply(self, timeout: float = 5.0) -> SimMessage:  # noqa: ASYNC109
        """The bot's next new or edited message after the user's latest action."""
        return await self.wait_for(None, timeout)

    async def wait_for_answer(
        self,
        update: dict[str, Any] | str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> CallbackAnswer:
        """The bot's answerCallbackQuery for a press (its update or its query id)."""
        query_id = update if isinstance(update, str) else update["callback_query"]["id"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for answer in self.callback_answers:
                if answer.query_id == query_id:
                    return answer
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoReply(f"{self!r}: query {query_id} not answered within {timeout}s")
            await self._wait_change(remaining)

    async def expect_silence(self, seconds: float = 0.3) -> None:
        """Assert that the bot sends and edits nothing here for ``seconds``."""
        start = self._mark
        await asyncio.sleep(seconds)
        if len(self._events) > start:
            raise AssertionError(f"{self!r}: unexpected bot messages {self._events[start:]}")

    # -- used by the emulator ----------------------------------------------------------------

    def take_message_id(self) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    def record(self, message: SimMessage, *, new: bool, keys_removed: bool = False) -> None:
        """A bot message was sent (``new``) or edited (``keys_removed``: only its buttons were
        taken off)."""
        if new:
            self._history[message.message_id] = message
        if keys_removed:
            self._keys_removed.add(len(self._events))
        self._events.append(message)
        self.notify()

    def record_answer(self, answer: CallbackAnswer) -> None:
        self.callback_answers.append(answer)
        self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- internals ---------------------------------------------------------------------------

    async def _wait_change(self, seconds: float) -> None:
        event = self._changed
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass

    def _ensure_active(self) -> None:
        if self.blocked:
            raise AssertionError(f"{self!r} has blocked the bot; call unblock() first")

    def _new_user_message(self, **content: Any) -> SimMessage:
        self._ensure_active()
        message = SimMessage(
            message_id=self.take_message_id(),
            chat=self.api_chat,
            sender=self.api_user,
            date=int(time.time()),
            from_bot=False,
            **content,
        )
        self._history[message.message_id] = message
        return message

    async def _act(self, body: dict[str, Any]) -> dict[str, Any]:
        self.started = True
        self.mark()
        update = self._emulator.put_update(body)
        await asyncio.sleep(0)
        return update

    def _member_change(self, old: str, new: str) -> dict[str, Any]:
        bot = self._emulator.bot_sender

        def member(status: str) -> dict[str, Any]:
            banned = {"until_date": 0} if status == "kicked" else {}  # 0: for ever
            return {"user": bot, "status": status, **banned}

        return {
            "chat": self.api_chat,
            "from": self.api_user,
            "date": int(time.time()),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }
