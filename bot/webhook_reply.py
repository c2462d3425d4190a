"""One Bot API call may ride back in the webhook's 200 answer instead of a request of its own.

Telegram performs a method named in the body of the answer to a webhook delivery; the bot
learns neither result nor error, which suits `answerCallbackQuery`. The webhook server opens a
slot per delivery; a handler offers its call; the server returns what was taken.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

_slot: ContextVar[list[dict[str, Any]] | None] = ContextVar("webhook_reply", default=None)


def open_slot() -> Token[list[dict[str, Any]] | None]:
    return _slot.set([])


def close_slot(token: Token[list[dict[str, Any]] | None]) -> dict[str, Any] | None:
    """The call offered during this delivery, if any, and forget the slot."""
    taken = _slot.get()
    _slot.reset(token)
    return taken[0] if taken else None


def offer(method: str, **params: Any) -> bool:
    """Hand the call to the webhook answer; False when there is no free slot (polling)."""
    slot = _slot.get()
    if slot is None or slot:
        return False
    slot.append({"method": method, **{k: v for k, v in params.items() if v is not None}})
    return True
