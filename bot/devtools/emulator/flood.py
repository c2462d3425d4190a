"""Telegram's flood limits as token buckets: one across all chats and one per chat.

A request over either limit is refused with the whole seconds until it would pass, which is
what Telegram reports in ``retry_after``.
"""

from __future__ import annotations

import math
import time


class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity``."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic()

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 when one is)."""
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class FloodControl:
    """The global and per-chat limits; ``None`` for a rate disables that limit."""

    def __init__(
        self,
        *,
        global_rate: float | None,
        global_burst: float | None,
        per_chat_rate: float | None,
        per_chat_burst: float,
        paid_rate: float | None,
    ) -> None:
        self._global = self._bucket(global_rate, global_burst)
        self._paid = self._bucket(paid_rate, None)
        self._chat_rate = per_chat_rate
        self._chat_burst = max(1.0, per_chat_burst)
        self._chats: dict[int, TokenBucket] = {}

    @staticmethod
    def _bucket(rate: float | None, burst: float | None) -> TokenBucket | None:
        if rate is None:
            return None
        return TokenBucket(rate, max(1.0, burst if burst is not None else rate))

    def admit(self, chat_id: int, *, paid: bool = False) -> int | None:
        """Take a token for one message to ``chat_id``, or return the seconds to wait."""
        now = time.monotonic()
        buckets = []
        if self._chat_rate is not None:
            chat = self._chats.get(chat_id)
            if chat is None:
                chat = self._chats[chat_id] = TokenBucket(self._chat_rate, self._chat_burst)
            buckets.append(chat)
        shared = self._paid if paid and self._paid is not None else self._global
        if shared is not None:
            buckets.append(shared)
        wait = max((bucket.wait(now) for bucket in buckets), default=0.0)
        if wait > 0:
            return max(1, math.ceil(wait))
        for bucket in buckets:
            bucket.take()
        return None
