"""The campaign sender: its ceiling with the rate limit lifted, and how closely it paces.

    python -m bench.sender                         # ceiling (SEND_RATE 1000, no emulator limits)
    python -m bench.sender --rate 30 --messages 600 --limits   # pacing under Telegram's limits

Runs in one process: the local Bot API emulator, a fresh SQLite database (the sender's
delivery states persisted as in production), the real Sender against a python-telegram-bot Bot.
Reports messages/s to the emulator, the busiest one-second window (from each delivery's
recorded send time), 429s, and that every delivery was settled as sent exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
from telegram import Bot

from bot.devtools.emulator import BotApiEmulator
from bot.devtools.example import load_example
from bot.services.campaigns import Plan
from bot.wiring.app import open_services
from bot.wiring.config import load_settings
from storage import campaigns as campaign_store
from storage.models import campaign_deliveries, customers

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:BENCH-TOKEN"


def busiest_window(moments: list[float], width: float = 1.0) -> int:
    """The most sends inside any `width`-second window."""
    moments = sorted(moments)
    best, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run(messages: int, rate: float, limits: bool) -> dict[str, float]:
    flood = {} if limits else {"global_rate": None, "per_chat_rate": None}
    async with BotApiEmulator(token=TOKEN, **flood) as emulator:  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(
                _env_file=None,
                bot_token=TOKEN,
                database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
                telegram_api_url=emulator.api_root,
                send_rate=rate,
                surveys_dir=ROOT / "surveys",
                privacy_notice_file=ROOT / "locales" / "privacy_notice.yaml",
                key_file=Path(tmp) / "bench.key",
            )
            services = await open_services(settings)
            try:
                return await _blast(services, emulator, messages)
            finally:
                await services.db.dispose()


async def _blast(services, emulator: BotApiEmulator, messages: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    async with services.db.transaction() as connection:
        await load_example(connection)
        branch = await connection.scalar(sa.text("SELECT id FROM branches WHERE code = 'JKT01'"))
        rows = [
            {
                "telegram_id": 10_000_000 + n,
                "locale": "id",
                "branch_id": branch,
                "consent_version": services.conversations.notice.version,
            }
            for n in range(messages)
        ]
        await connection.execute(sa.insert(customers), rows)
    for row in rows:
        emulator.user(int(row["telegram_id"]), started=True)
    created = await services.campaigns.create(None, Plan("bench", "branch_service", "all"))
    number = created.campaign.id
    async with services.db.transaction() as connection:
        await campaign_store.update(connection, number, quiet_start="00:00", quiet_end="00:00")
    await services.campaigns.launch(None, str(number))
    async with Bot(TOKEN, base_url=f"{emulator.api_root}/bot") as bot:
        started = time.perf_counter()
        settled = await services.sender.drain(bot)
        elapsed = time.perf_counter() - started
    async with services.db.transaction() as connection:
        sent = await connection.execute(
            sa.select(campaign_deliveries.c.sent_at).where(
                campaign_deliveries.c.kind == "invite", campaign_deliveries.c.status == "sent"
            )
        )
        moments = [row.sent_at.timestamp() for row in sent]
    first = min(moments)
    return {
        "messages": messages,
        "settled": settled,
        "sent": len(moments),
        "seconds": round(elapsed, 2),
        "rate": round(messages / elapsed, 1),
        "busiest_second": busiest_window(moments),
        "first_second": sum(1 for m in moments if m - first < 1.0),
        "delivered_to_emulator": sum(emulator.sent_per_chat.values()),
        "429s": emulator.count_429,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1000.0, help="SEND_RATE")
    parser.add_argument("--limits", action="store_true", help="the emulator's flood limits on")
    args = parser.parse_args()
    result = asyncio.run(run(args.messages, args.rate, args.limits))
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
