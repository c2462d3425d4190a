"""The pacer's promises, on real time: the global rate over every one-second window (the first
included), the rate itself kept on a busy event loop, and replies ahead of queued blast traffic."""

from __future__ import annotations

import asyncio
import time

from bot.transport.pacing import Pacer


def busiest_window(moments: list[float], width: float = 1.0) -> int:
    best, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _blast(pacer: Pacer, count: int, moments: list[float], busy: float = 0.0) -> None:
    """`count` bulk sends to distinct chats; `busy`: CPU seconds each costs the event loop."""

    async def one(chat: int) -> None:
        await pacer.acquire(chat, bulk=True)
        moments.append(time.monotonic())
        if busy:
            until = time.perf_counter() + busy
            while time.perf_counter() < until:
                pass

    await asyncio.gather(*(one(1000 + n) for n in range(count)))


async def test_no_window_holds_more_than_the_rate_and_the_rate_is_kept() -> None:
    rate = 400.0
    pacer = Pacer(rate, 1, 1)
    moments: list[float] = []
    started = time.monotonic()
    await _blast(pacer, 600, moments, busy=0.0008)  # a loop a third busy with each send
    moments.sort()
    assert busiest_window(moments) <= rate + 1
    assert sum(1 for m in moments if m - started < 1.0) <= rate + 1  # no burst at the start
    measured = (len(moments) - 1) / (moments[-1] - moments[0])
    assert measured >= rate * 0.95  # a late wakeup is made up, not lost


async def test_a_reply_goes_ahead_of_queued_blast_traffic() -> None:
    rate = 100.0
    pacer = Pacer(rate, 1, 1)
    moments: list[float] = []
    blast = asyncio.create_task(_blast(pacer, 150, moments))
    await asyncio.sleep(0.3)  # the blast is under way, more than a second of it queued
    asked = time.monotonic()
    await pacer.acquire(42)
    waited = time.monotonic() - asked
    assert len(moments) < 100  # the blast was still going
    assert waited < 3 / rate  # behind at most the one bulk message given its slot
    await blast
