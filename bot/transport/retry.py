"""Calls to the Bot API that survive passing faults: Telegram's flood control (429 with
retry_after) is waited out as asked; a network fault or a 5xx is tried again with backoff.

A call that still fails raises: the error handler logs it once for the update, and the
redelivered or repeated update redraws where the customer is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram.error import BadRequest, NetworkError, RetryAfter

from bot.transport.pacing import Pacer

T = TypeVar("T")
MAX_WAIT = 30.0
ATTEMPTS = 4
BACKOFF = 0.2  # seconds before the second try after a fault; doubled before each next one


def _seconds(error: RetryAfter) -> float:
    wait = error.retry_after
    return float(wait if isinstance(wait, int | float) else wait.total_seconds())


async def with_retry(
    call: Callable[[], Awaitable[T]],
    pacer: Pacer | None = None,
    chat_id: int = 0,
    *,
    backoff: float = BACKOFF,
    bulk: bool = False,
) -> T:
    """Pace the call (`bulk`: as campaign traffic, behind replies); on 429 wait as Telegram
    asks, on a network fault or a 5xx wait `backoff` (doubling), and try again, at most
    ATTEMPTS times in all. A 400 is final at once."""
    for attempt in range(ATTEMPTS):
        if pacer is not None:
            await pacer.acquire(chat_id, bulk=bulk)
        try:
            return await call()
        except RetryAfter as error:
            if attempt == ATTEMPTS - 1:
                raise
            seconds = min(_seconds(error), MAX_WAIT)
            if pacer is not None:
                pacer.pause(seconds)
            else:
                await asyncio.sleep(seconds)
        except BadRequest:  # BadRequest is a NetworkError to PTB, but trying again cannot help
            raise
        except NetworkError:  # a dropped connection, a timeout or a 5xx
            if attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")
