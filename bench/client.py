"""The load: simulated customers who answer survey buttons as fast as the bot replies.

A customer presses, waits for the next question (the edit of the pressed message, or a new
message for bots that send one), and presses again; at the outro they open the branch link
again and start a new run of the survey. Times are taken where the emulator records the bot's
message, so the client's own scheduling delay is not charged to the bot.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bot.devtools.emulator import BotApiEmulator, NoReply, SimMessage, SimUser

WAIT = 30.0


class BenchUser(SimUser):
    """A simulated user who notes when each of the bot's messages last changed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: dict[int, float] = {}

    def record(self, message: SimMessage, *, new: bool, keys_removed: bool = False) -> None:
        if not keys_removed:  # taking the buttons off a message is no reply
            self.stamps[message.message_id] = time.perf_counter()
        super().record(message, new=new, keys_removed=keys_removed)


def add_user(emulator: BotApiEmulator, user_id: int) -> BenchUser:
    """Register a BenchUser in the emulator (its `user()` would make a plain SimUser)."""
    user = BenchUser(emulator, user_id, f"Nasabah {user_id}", language_code="id")
    emulator.users[user_id] = user
    return user


def is_question(message: SimMessage) -> bool:
    return any(data.startswith("q:") for data in message.button_data)


def _asks_consent(message: SimMessage) -> bool:
    return any(data.startswith("k:y") for data in message.button_data)


def choose(message: SimMessage, rng: random.Random) -> str:
    """Skip what may be skipped (multi, text), else a random answer button."""
    data = message.button_data
    skip = [d for d in data if d.endswith(":s")]
    if skip:
        return skip[0]
    answers = [d for d in data if ":a:" in d]
    if answers:
        return rng.choice(answers)
    done = [d for d in data if d.endswith(":d")]
    if done:
        return done[0]
    raise AssertionError(f"no answer button on {message!r}")


@dataclass
class Window:
    """The timed phase: every customer waits for it to open, none presses after it closes."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)
    start: float = 0.0
    end: float = 0.0

    def open(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.end = self.start + seconds
        self.opened.set()


@dataclass
class Tally:
    """What the customers saw; shared by all of them (one event loop, no locks needed)."""

    in_window: int = 0  # answers whose reply landed inside the window
    acknowledged: int = 0  # every answer press that got its reply
    unacknowledged: int = 0  # presses still unanswered after WAIT seconds
    restarts: int = 0
    last_landed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    start_latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def warm_up(user: BenchUser, payload: str) -> SimMessage:
    """Open the branch link and agree to the notice (if the bot asks); the first question."""
    await user.start(payload)
    first = await user.wait_for(lambda m: is_question(m) or _asks_consent(m), WAIT)
    if _asks_consent(first):
        await user.press(first, next(d for d in first.button_data if d.startswith("k:y")))
        first = await user.wait_for(is_question, WAIT)
    return first


async def answer(
    user: BenchUser,
    first: SimMessage,
    payload: str,
    outro: str,
    window: Window,
    tally: Tally,
    rng: random.Random,
    cap: int = 0,
) -> None:
    """Press, wait for the next question, repeat until the window closes (or `cap` answers)."""

    def is_step(message: SimMessage) -> bool:
        return is_question(message) or message.body.startswith(outro)

    message, count = first, 0
    await window.opened.wait()
    while time.perf_counter() < window.end and (cap == 0 or count < cap):
        pressed = time.perf_counter()
        await user.press(message, choose(message, rng))
        try:
            reply = await user.wait_for(is_step, WAIT)
        except NoReply as error:
            tally.unacknowledged += 1
            tally.failures.append(str(error)[:300])
            return
        landed = user.stamps[reply.message_id]
        count += 1
        tally.acknowledged += 1
        tally.latencies.append(landed - pressed)
        if landed <= window.end:
            tally.in_window += 1
            tally.last_landed = max(tally.last_landed, landed)
        if is_question(reply):
            message = reply
            continue
        if time.perf_counter() >= window.end or (cap and count >= cap):
            return
        opened = time.perf_counter()  # the outro: open the link again for a new run
        await user.start(payload)
        try:
            message = await user.wait_for(is_question, WAIT)
        except NoReply as error:
            tally.failures.append(str(error)[:300])
            return
        tally.restarts += 1
        tally.start_latencies.append(user.stamps[message.message_id] - opened)


def percentile(samples: list[float], share: float) -> float:
    """Nearest-rank percentile; NaN for no samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]
