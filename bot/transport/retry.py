"""Calls to the Bot API that wait out Telegram's flood control (429 with retry_after)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram.error import RetryAfter

from bot.transport.pacing import Pacer

T = TypeVar("T")
MAX_WAIT = 30.0
ATTEMPTS = 4


def _seconds(error: RetryAfter) -> float:
    wait = error.retry_after
    return float(wait if isinstance(wait, int | float) else wait.total_seconds())


async def with_flood_wait(
    call: Callable[[], Awaitable[T]],
    pacer: Pacer | None = None,
    chat_id: int = 0,
    *,
    bulk: bool = False,
) -> T:
    """Pace the call (`bulk`: as campaign traffic, behind replies), and when Telegram still
    says 429, wait as asked and try again."""
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
    raise AssertionError("unreachable")
