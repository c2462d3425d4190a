"""Pacing outgoing messages to Telegram's flood limits, before Telegram has to say so.

About 30 messages a second across chats (configurable up to the 1,000/s of paid broadcasts) and
about one a second per chat, with the short bursts Telegram tolerates. Token buckets hand out
reservations, so waiting costs a sleep and no polling; a 429 pauses everything for the
`retry_after` Telegram asked for.

The global budget holds over every one-second window, the first one included. Its bucket starts
with one token; it may hold up to a hundredth of a second's worth (CATCH_UP), so a send that the
busy event loop woke a few milliseconds late is made up rather than lost, and it refills that
many tokens less than the rate each second, so no one-second window ever holds more than the
rate plus the one message of a plain one-token bucket. Customer replies and blast traffic
share it, and replies go first: a bulk send takes its slot only while no reply waits for one,
so a reply waits behind at most the one bulk message already given its slot.

Blast traffic also yields to customer work in progress: while the bot is processing an update
(`Updates`, counted where the application processes them), bulk slots are held, so the event
loop and the database serve the customer first. A hold lasts at most MAX_HOLD at a time and
takes at most HOLD_SHARE of the blast's time however many customers keep coming, and what the
bucket gathers meanwhile goes out when the hold ends (up to CATCH_UP of it).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress

CATCH_UP = 0.01  # seconds of sending the global bucket may hold
MAX_HOLD = 0.02  # seconds bulk slots are held at a time for updates being processed
HOLD_SHARE = 0.25  # of the time, at most, bulk slots are held for updates being processed
MIN_HOLD = 0.001  # seconds: a hold shorter than this is not worth a wakeup


class Updates:
    """The updates the bot is processing now: customer work in progress."""

    __slots__ = ("_idle", "count")

    def __init__(self) -> None:
        self.count = 0
        self._idle: asyncio.Future[None] | None = None  # set when the count drops to zero

    @contextmanager
    def processing(self) -> Iterator[None]:
        """Around the processing of one update."""
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
            if not self.count and self._idle is not None:
                if not self._idle.done():
                    self._idle.set_result(None)
                self._idle = None

    async def idle(self, at_most: float) -> None:
        """Until no update is being processed, or `at_most` seconds."""
        if not self.count:
            return
        if self._idle is None:
            self._idle = asyncio.get_running_loop().create_future()
        with suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await asyncio.shield(self._idle)


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; a reservation may run into debt."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, tokens: float | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst if tokens is None else tokens
        self.updated = time.monotonic()

    def reserve(self, now: float) -> float:
        """Take one token; the seconds to wait before using it."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def has_token(self, now: float) -> bool:
        """Whether a reservation now would need no wait."""
        return self.tokens + (now - self.updated) * self.rate >= 1

    def is_full(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.burst


class Pacer:
    """Decides when the next message to a chat may go."""

    def __init__(
        self,
        rate: float = 30.0,
        per_chat_rate: float = 1.0,
        per_chat_burst: float = 3,
        *,
        max_idle_chats: int = 10_000,
        max_hold: float = MAX_HOLD,
        hold_share: float = HOLD_SHARE,
    ) -> None:
        self.rate = rate
        catch_up = max(1, math.floor(rate * CATCH_UP))
        self._global = TokenBucket(rate - (catch_up - 1), catch_up, tokens=1.0)
        self._dispatch_every = (catch_up - 1) / 2 / self._global.rate  # half the catch-up
        self._per_chat_rate = per_chat_rate
        self._per_chat_burst = per_chat_burst
        self._chats: dict[int, TokenBucket] = {}
        self._max_idle = max_idle_chats
        self._paused_until = 0.0
        self._replies_waiting = 0
        self.updates = Updates()  # the application counts them; bulk slots yield to them
        self.max_hold = max_hold  # seconds bulk slots are held at a time for updates
        self.hold_share = hold_share  # of the time, at most, they are so held
        self._hold_budget = math.inf  # seconds of holding allowed now (max_hold at first)
        self._hold_updated = time.monotonic()
        self._bulk: deque[asyncio.Future[None]] = deque()  # bulk sends waiting for a slot
        self._dispatcher: asyncio.Task[None] | None = None
        self.flood_waits = 0  # 429s received

    async def acquire(self, chat_id: int, *, bulk: bool = False) -> None:
        """Wait until a message to `chat_id` keeps within both limits; `bulk` (campaign
        traffic) yields to replies."""
        pause = self._paused_until - time.monotonic()
        if pause > 0:  # a later 429 may extend the pause; the buckets below absorb that
            await asyncio.sleep(pause)
        if bulk:
            await self._acquire_bulk(chat_id)
            return
        self._replies_waiting += 1
        try:
            await self._acquire_reply(chat_id)
        finally:
            self._replies_waiting -= 1

    async def _acquire_reply(self, chat_id: int) -> None:
        if wait := self._chat(chat_id).reserve(time.monotonic()):
            await asyncio.sleep(wait)
        if wait := self._global.reserve(time.monotonic()):
            await asyncio.sleep(wait)

    async def _acquire_bulk(self, chat_id: int) -> None:
        if wait := self._chat(chat_id).reserve(time.monotonic()):
            await asyncio.sleep(wait)
        turn = asyncio.get_running_loop().create_future()
        self._bulk.append(turn)  # bulk senders queue here; one dispatcher hands out the slots
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="pacer-bulk")
        await turn

    async def _dispatch(self) -> None:
        """Give queued bulk sends their slots in order, one reservation at a time and only
        while no reply waits and no update is being processed (within the hold budget); the
        tokens the bucket holds when it wakes go out together, and at high rates it wakes only
        every half CATCH_UP, so neither a busy event loop nor the pacing itself costs a wakeup
        per message."""
        while True:
            now = time.monotonic()
            hold = self._paused_until - now
            if self._replies_waiting:
                hold = max(hold, 1 / self.rate)
            if hold > 0:
                await asyncio.sleep(hold)
                continue
            if self._hold_allowed(now):
                await self.customers_first()
                continue
            turn = self._next_turn()
            if turn is None:
                return
            if wait := self._global.reserve(time.monotonic()):
                await asyncio.sleep(max(wait, self._dispatch_every))  # then several at once
            if not turn.done():
                turn.set_result(None)
            now = time.monotonic()
            while (
                not self._replies_waiting
                and not self._hold_allowed(now)
                and self._paused_until <= now
                and self._global.has_token(now)
                and (turn := self._next_turn()) is not None
            ):
                self._global.reserve(now)
                turn.set_result(None)

    async def customers_first(self) -> None:
        """Wait while updates are being processed, as long as the hold budget allows: blast
        work (bulk slots, and the sender's database work) yields to customers."""
        now = time.monotonic()
        if allowed := self._hold_allowed(now):
            await self.updates.idle(allowed)
            self._hold_budget -= time.monotonic() - now

    def _hold_allowed(self, now: float) -> float:
        """Seconds bulk slots may be held now for updates being processed: 0 when none is,
        else what is left of the budget, which refills at `hold_share` up to `max_hold`."""
        budget = self._hold_budget + (now - self._hold_updated) * self.hold_share
        self._hold_budget = min(self.max_hold, budget)
        self._hold_updated = now
        if not self.updates.count or self._hold_budget < MIN_HOLD:
            return 0.0
        return self._hold_budget

    def _next_turn(self) -> asyncio.Future[None] | None:
        while self._bulk:
            turn = self._bulk.popleft()
            if not turn.done():  # a cancelled send leaves its place
                return turn
        return None

    def _chat(self, chat_id: int) -> TokenBucket:
        chat = self._chats.get(chat_id)
        if chat is None:
            if len(self._chats) >= self._max_idle:
                self._forget_idle()
            chat = self._chats[chat_id] = TokenBucket(self._per_chat_rate, self._per_chat_burst)
        return chat

    def pause(self, seconds: float) -> None:
        """Telegram answered 429: nobody sends until `seconds` have passed."""
        self.flood_waits += 1
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for chat_id in [c for c, bucket in self._chats.items() if bucket.is_full(now)]:
            del self._chats[chat_id]
