"""What the answer to one webhook delivery says back to Telegram.

Telegram performs a Bot API method named in the body of a 200 answer; the bot learns neither
result nor error, which suits `answerCallbackQuery` and saves a request per button press. And a
non-2xx answer makes Telegram deliver the update again later: right when the bot itself failed
(say, the database was unreachable), since nothing of the update was committed. The webhook
server opens a `Delivery` per update; handlers and the error handler fill it in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass
class Delivery:
    call: dict[str, Any] | None = None
    failed: bool = False
    outage: bool = False  # failed because the database is unavailable, not by this update


_current: ContextVar[Delivery | None] = ContextVar("webhook_delivery", default=None)


@contextmanager
def delivery() -> Iterator[Delivery]:
    """The answer being prepared for the update processed inside the block."""
    token = _current.set(Delivery())
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)


def offer(method: str, **params: Any) -> bool:
    """Hand a call to the webhook answer; False when there is none to take it (polling)."""
    current = _current.get()
    if current is None or current.call is not None:
        return False
    current.call = {"method": method, **{k: v for k, v in params.items() if v is not None}}
    return True


def fail(*, outage: bool = False) -> bool:
    """Ask Telegram to deliver this update again; False when not answering a webhook.
    `outage`: the database is unavailable, so no cap on deliveries applies."""
    current = _current.get()
    if current is None:
        return False
    current.failed = True
    current.outage = outage
    return True
