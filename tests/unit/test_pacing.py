"""The pacer's promises, on real time: the global rate over every one-second window (the first
included), the rate itself kept on a busy event loop, and replies ahead of queued blast traffic."""

from __future__ import annotations

import asyncio
import itertools
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


async def test_bulk_slots_wait_for_an_update_being_processed() -> None:
    pacer = Pacer(1000.0, 1, 1, max_hold=2.0)
    processed = asyncio.Event()

    async def update() -> None:
        with pacer.updates.processing():
            await processed.wait()

    processing = asyncio.create_task(update())
    await asyncio.sleep(0)
    assert pacer.updates.count == 1
    bulk = asyncio.create_task(pacer.acquire(7, bulk=True))
    await asyncio.sleep(0.2)
    assert not bulk.done()  # held for the update
    reply_asked = time.monotonic()
    await pacer.acquire(8)  # a reply is not held
    assert time.monotonic() - reply_asked < 0.05
    released = time.monotonic()
    processed.set()
    await processing
    await bulk
    assert pacer.updates.count == 0
    assert time.monotonic() - released < 0.1  # goes as soon as the update is done


async def test_a_stream_of_updates_holds_a_blast_back_only_so_far() -> None:
    rate, max_hold, share = 200.0, 0.05, 0.25
    pacer = Pacer(rate, 1, 1, max_hold=max_hold, hold_share=share)
    with pacer.updates.processing():  # some update is always being processed
        moments: list[float] = []
        started = time.monotonic()
        await _blast(pacer, 300, moments)
    moments.sort()
    assert moments[0] - started <= max_hold + 0.03  # the first hold is bounded
    gaps = [b - a for a, b in itertools.pairwise(moments)]
    assert max(gaps) <= max_hold + 0.03  # so is every later one
    measured = (len(moments) - 1) / (moments[-1] - moments[0])
    assert measured >= rate * (1 - share) * 0.9  # held at most `share` of the time
    assert busiest_window(moments) <= rate + 1
    assert sum(1 for m in moments if m - started < 1.0) <= rate + 1


async def test_updates_count_what_is_being_processed() -> None:
    pacer = Pacer(30.0)
    with pacer.updates.processing(), pacer.updates.processing():
        assert pacer.updates.count == 2
        waited = time.monotonic()
        await pacer.updates.idle(0.05)  # still busy: waits its time
        assert time.monotonic() - waited >= 0.04
    assert pacer.updates.count == 0
    await asyncio.wait_for(pacer.updates.idle(5), 0.1)  # idle: at once


async def test_blast_work_waits_for_updates_within_the_same_budget() -> None:
    pacer = Pacer(1000.0, 1, 1, max_hold=0.1, hold_share=0.25)
    waited = time.monotonic()
    await pacer.customers_first()  # nothing being processed: at once
    assert time.monotonic() - waited < 0.01
    with pacer.updates.processing():
        waited = time.monotonic()
        await pacer.customers_first()  # held, but only for max_hold
        assert 0.08 <= time.monotonic() - waited < 0.2
        waited = time.monotonic()
        await pacer.customers_first()  # the budget is spent but for what the hold refilled
        assert time.monotonic() - waited < 0.1 * 0.25 + 0.02
