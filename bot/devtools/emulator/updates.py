"""The bot's pending updates, served by long polling or handed to webhook delivery.

Telegram keeps an update until the bot confirms it (a getUpdates ``offset`` past it, or a 2xx
webhook answer), so the queue holds updates until then, in update_id order.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bot.devtools.emulator.errors import ApiError

Update = dict[str, Any]

# Telegram leaves these out unless allowed_updates names them.
OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)


class RawUpdate(dict[str, Any]):
    """An update served as the JSON text given, byte for byte (one no JSON encoder would write,
    such as one nested thousands deep); as a dict it holds only its ``update_id``."""

    def __init__(self, update_id: int, text: str) -> None:
        super().__init__(update_id=update_id)
        self.text = text


def update_kind(update: Update) -> str:
    """The update's type: its one field besides ``update_id``."""
    return next((key for key in update if key != "update_id"), "")


@dataclass(eq=False)
class Entry:
    """A queued update; ``forced`` ones (redeliveries) ignore the offset and go once."""

    update: Update
    forced: bool = False

    @property
    def update_id(self) -> int:
        return self.update["update_id"]


class UpdateQueue:
    """Pending updates plus the signalling that long polls and deliveries wait on."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.webhook_active = False
        self.closed = False
        self._next_id = 1
        self._allowed: frozenset[str] | None = None
        self._changed = asyncio.Event()
        self._generation = 0

    @property
    def pending(self) -> int:
        return len(self.entries)

    def notify(self) -> None:
        """Wake everything waiting for a change."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self, seconds: float | None = None) -> None:
        """Return at the next change, or after ``seconds``."""
        event = self._changed
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass

    def set_allowed(self, kinds: list[str] | None) -> None:
        """Telegram semantics: a list applies from now on; an empty list means the default."""
        if kinds is not None:
            self._allowed = frozenset(kinds) if kinds else None

    def allows(self, kind: str) -> bool:
        return kind not in OPT_IN_UPDATES if self._allowed is None else kind in self._allowed

    def put(self, body: dict[str, Any]) -> Update:
        """Give ``body`` the next update_id and queue it unless its type is filtered out."""
        update = {"update_id": self._next_id, **body}
        self._next_id += 1
        if self.allows(update_kind(update)):
            self.entries.append(Entry(update))
            self.notify()
        return update

    def put_raw(self, fields: str, update_id: int | None = None) -> RawUpdate:
        """Queue an update whose members besides ``update_id`` are the JSON text ``fields``;
        kept, as any update, until an offset confirms it."""
        number = self._next_id if update_id is None else update_id
        self._next_id = max(self._next_id, number + 1)
        update = RawUpdate(number, f'{{"update_id":{number},{fields}}}')
        self.entries.append(Entry(update))
        self.notify()
        return update

    def inject(self, update: Update, *, forced: bool) -> Update:
        """Queue a caller-made update; one without an id gets the next."""
        if "update_id" not in update:
            return self.put(update)
        self._next_id = max(self._next_id, update["update_id"] + 1)
        self.entries.append(Entry(dict(update), forced=forced))
        self.notify()
        return update

    def drop_all(self) -> None:
        self.entries.clear()
        self.notify()

    def remove(self, entry: Entry) -> None:
        for index, candidate in enumerate(self.entries):
            if candidate is entry:
                del self.entries[index]
                self.notify()
                return

    def close(self) -> None:
        self.closed = True
        self.notify()

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            keep = self.entries[offset:]
        else:
            keep = [e for e in self.entries if e.forced or e.update_id >= offset]
        if len(keep) != len(self.entries):
            self.entries = keep
            self.notify()

    async def get(self, offset: int | None, limit: int, wait: float) -> list[Update]:
        """getUpdates: confirm below ``offset``, then wait up to ``wait`` seconds for updates."""
        self._generation += 1
        mine = self._generation
        self.notify()  # an older long poll now ends with a conflict, as on Telegram
        if offset:
            self._confirm(offset)
        deadline = time.monotonic() + wait
        while True:
            if self.webhook_active:
                raise ApiError(409, WEBHOOK_CONFLICT)
            batch = self.entries[:limit]
            if batch or self.closed:
                forced = [e for e in batch if e.forced]
                if forced:
                    self.entries = [e for e in self.entries if not any(e is f for f in forced)]
                return [e.update for e in batch]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self.wait_changed(remaining)
            if self._generation != mine:
                raise ApiError(409, POLL_CONFLICT)

    def next_for_delivery(self, busy: set[Entry]) -> Entry | None:
        for entry in self.entries:
            if entry not in busy:
                return entry
        return None
