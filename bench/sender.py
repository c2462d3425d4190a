"""The campaign sender: its ceiling, its pacing, and a customer's reply latency during a blast.

    python -m bench.sender                              # all three, about two minutes
    python -m bench.sender --only ceiling --messages 20000 --profile /tmp/sender.pstats

The bot runs as in production, in a child process of its own (bench/botproc.py: the polling
bot with its Sender, the project's AiohttpRequest and a fresh SQLite file), so its CPU is its
own; the Bot API emulator and the simulated customers run here, on the other core. Campaigns
are created and launched here through the same services, on the same database; the bot's
sender picks them up as it does a launch from the command line.

- ceiling: SEND_RATE lifted far above the 1,000 cap, the emulator's flood limits off;
  messages/s from the first to the last delivery's recorded send time (state persisted).
- pacing: SEND_RATE 30 against the emulator at Telegram's limits: rate, busiest and first
  one-second window, 429s.
- latency: SEND_RATE 1000; customers of another branch answer the survey (press, the next
  question, a pause) with no blast, then while a 1,000 msg/s blast runs: p50/p95 from press
  to the bot's reply, both phases in one run against one bot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from bench import procstat
from bench.answers import CORES, OUTRO, TOKEN, BotProcess, Config, _free_port, profile_report
from bench.client import BenchUser, add_user, choose, is_question, percentile, warm_up
from bot.devtools.emulator import BotApiEmulator, SimMessage
from bot.services.campaigns import CampaignView, Plan
from bot.wiring.app import open_services
from bot.wiring.config import load_settings
from bot.wiring.services import Services
from storage import campaigns as campaign_store
from storage.models import campaign_deliveries, customers

ROOT = Path(__file__).resolve().parent.parent
LIFTED = 100_000.0  # SEND_RATE for the ceiling: no pacing to speak of
WAIT = 30.0


def busiest_window(moments: list[float], width: float = 1.0) -> int:
    """The most sends inside any `width`-second window."""
    moments = sorted(moments)
    best, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_queue_wait(pid: int) -> float:
    """Seconds the process's threads have spent ready to run but waiting for a core: the
    machine's other work, felt as latency."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total / 1e9


@dataclass
class Blast:
    campaign: int
    messages: int
    launched: float = 0.0  # perf_counter
    moments: list[float] = field(default_factory=list)  # each delivery's sent_at

    @property
    def rate(self) -> float:
        span = max(self.moments) - min(self.moments) if len(self.moments) > 1 else 0.0
        return (len(self.moments) - 1) / span if span > 0 else 0.0


@dataclass
class Rig:
    """One bot process, its emulator and database, and this process's handle on the database."""

    emulator: BotApiEmulator
    bot: BotProcess
    services: Services
    folder: Path
    next_id: int = 10_000_000

    async def blast(self, messages: int) -> Blast:
        """`messages` new customers who can be invited, and a campaign to them, launched."""
        first, self.next_id = self.next_id, self.next_id + messages
        services = self.services
        async with services.db.transaction() as connection:
            branch = await connection.scalar(sa.text("SELECT id FROM branches WHERE code='JKT01'"))
            rows = [
                {
                    "telegram_id": first + n,
                    "locale": "id",
                    "branch_id": branch,
                    "consent_version": services.conversations.notice.version,
                    "consent_at": datetime.now(UTC),
                }
                for n in range(messages)
            ]
            await connection.execute(sa.insert(customers), rows)
        for n in range(messages):
            self.emulator.user(first + n, started=True)
        plan = Plan("bench", "branch_service", "branch:JKT01")  # answering customers: BDG01
        created = await services.campaigns.create(None, plan)
        assert isinstance(created, CampaignView), created
        number = created.campaign.id
        async with services.db.transaction() as connection:
            await campaign_store.update(connection, number, quiet_start="00:00", quiet_end="00:00")
        launched = await services.campaigns.launch(None, str(number))
        assert isinstance(launched, CampaignView), launched
        return Blast(number, messages, time.perf_counter())

    async def sent(self, blast: Blast, at_least: int) -> int:
        """Wait until at least `at_least` of the blast's invitations have been sent."""
        async with asyncio.timeout(WAIT + blast.messages / 100):
            while True:
                count = await self._count(blast, (campaign_store.SENT,))
                if count >= at_least:
                    return count
                await asyncio.sleep(0.05)

    async def finished(self, blast: Blast) -> Blast:
        """Wait until nothing of the blast is pending or sending; its send times."""
        async with asyncio.timeout(WAIT + blast.messages / 100):
            unsettled = (campaign_store.PENDING, campaign_store.SENDING)
            while True:
                if not await self._count(blast, unsettled):
                    break
                await asyncio.sleep(0.05)
        async with self.services.db.transaction() as connection:
            rows = await connection.execute(
                sa.select(campaign_deliveries.c.sent_at).where(
                    campaign_deliveries.c.campaign_id == blast.campaign,
                    campaign_deliveries.c.kind == campaign_store.INVITE,
                    campaign_deliveries.c.status == campaign_store.SENT,
                )
            )
            blast.moments = [row.sent_at.replace(tzinfo=UTC).timestamp() for row in rows]
        return blast

    async def _count(self, blast: Blast, statuses: tuple[str, ...]) -> int:
        async with self.services.db.transaction() as connection:
            count = await connection.scalar(
                sa.select(sa.func.count()).where(
                    campaign_deliveries.c.campaign_id == blast.campaign,
                    campaign_deliveries.c.kind == campaign_store.INVITE,
                    campaign_deliveries.c.status.in_(statuses),
                )
            )
        return int(count or 0)


@asynccontextmanager
async def rig(send_rate: float, limits: bool) -> AsyncIterator[Rig]:
    flood: dict[str, Any] = (
        {} if limits else {"global_rate": None, "per_chat_rate": None, "paid_broadcast_rate": None}
    )
    with tempfile.TemporaryDirectory(prefix="suara-sender-") as tmp:
        folder = Path(tmp)
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        async with BotApiEmulator(token=TOKEN, **flood) as emulator:
            args = ["--api-root", emulator.api_root, "--token", TOKEN, "--database", url]
            args += ["--folder", str(folder), "--port", str(_free_port())]
            args += ["--send-rate", str(send_rate)]
            bot = await BotProcess.spawn(
                Config("suara", "polling", "sqlite"), args, folder / "bot.log", ROOT
            )
            try:
                await bot.expect("ready")
                settings = load_settings(
                    _env_file=None,
                    bot_token=TOKEN,
                    database_url=url,
                    telegram_api_url=emulator.api_root,
                    surveys_dir=ROOT / "surveys",
                    privacy_notice_file=ROOT / "locales" / "privacy_notice.yaml",
                    key_file=folder / "bench.key",
                    log_level="WARNING",
                )
                services = await open_services(settings)
                try:
                    yield Rig(emulator, bot, services, folder)
                finally:
                    await services.db.dispose()
            except BaseException:
                print(f"-- the bot's log ends with:\n{bot.tail()}", file=sys.stderr)
                raise
            finally:
                await bot.stop()


# -- the three measurements ----------------------------------------------------------------


async def ceiling(messages: int, profile: Path | None) -> dict[str, Any]:
    async with rig(LIFTED, limits=False) as r:
        await r.sent(await r.blast(200), 200)  # warm: connections, caches, the first claim
        if profile is not None:
            await r.bot.tell("profile-start")
        bot_before, here_before = procstat.process_cpu(r.bot.pid), time.process_time()
        machine_before = procstat.MachineTimes.now()
        blast = await r.finished(await r.blast(messages))
        wall = time.perf_counter() - blast.launched
        bot_cpu = procstat.process_cpu(r.bot.pid) - bot_before
        here_cpu = time.process_time() - here_before
        busy = procstat.MachineTimes.now().utilisation_since(machine_before)
        if profile is not None:
            await r.bot.tell(f"profile-stop {profile}")
            await r.bot.expect("profiled")
        span = max(blast.moments) - min(blast.moments)
        return {
            "messages": messages,
            "sent": len(blast.moments),
            "delivered_to_emulator": r.emulator.calls["sendMessage"],
            "rate": round(blast.rate, 1),
            "bot_cpu_ms_per_message": round(bot_cpu * 1000 / messages, 3),
            "bot_cores_while_sending": round(bot_cpu / wall, 2),
            "emulator_cores_while_sending": round(here_cpu / wall, 2),
            "machine_busy_cores": round(busy * CORES, 2),
            "others_cores": round(max(0.0, busy * CORES - (bot_cpu + here_cpu) / wall), 2),
            "seconds_sending": round(span, 2),
            "429s": r.emulator.count_429,
        }


async def pacing(messages: int) -> dict[str, Any]:
    async with rig(30.0, limits=True) as r:
        blast = await r.finished(await r.blast(messages))
        first = min(blast.moments)
        return {
            "messages": messages,
            "sent": len(blast.moments),
            "delivered_to_emulator": r.emulator.calls["sendMessage"],
            "rate": round(blast.rate, 2),
            "deviation_pct": round((blast.rate / 30.0 - 1) * 100, 2),
            "busiest_second": busiest_window(blast.moments),
            "first_second": sum(1 for m in blast.moments if m - first < 1.0),
            "429s": r.emulator.count_429,
        }


async def latency(customers: int, seconds: float, think: float, seed: int) -> dict[str, Any]:
    rate = 1000.0
    async with rig(rate, limits=False) as r:
        users = [add_user(r.emulator, 800_000 + n) for n in range(customers)]
        firsts = list(await asyncio.gather(*(warm_up(u, "b_BDG01") for u in users)))
        rng = random.Random(seed)

        machine: dict[str, dict[str, float]] = {}

        async def phase(name: str) -> list[float]:
            start, stop = time.perf_counter(), time.perf_counter() + seconds
            cpu, waited = procstat.process_cpu(r.bot.pid), run_queue_wait(r.bot.pid)
            here, here_waited = time.process_time(), run_queue_wait(os.getpid())
            busy = procstat.MachineTimes.now()
            samples: list[float] = []
            runs = [
                _converse(u, i, stop, samples, random.Random(rng.random()), think, firsts, n)
                for n, (u, i) in enumerate(zip(users, firsts, strict=True))
            ]
            await asyncio.gather(*runs)
            wall = time.perf_counter() - start
            machine[name] = {
                "bot_cores": round((procstat.process_cpu(r.bot.pid) - cpu) / wall, 2),
                "bot_waiting_for_a_core": round((run_queue_wait(r.bot.pid) - waited) / wall, 3),
                "emulator_cores": round((time.process_time() - here) / wall, 2),
                "emulator_waiting": round((run_queue_wait(os.getpid()) - here_waited) / wall, 3),
                "machine_busy_cores": round(
                    procstat.MachineTimes.now().utilisation_since(busy) * CORES, 2
                ),
            }
            return samples

        quiet = await phase("quiet")
        blast = await r.blast(int(rate * (seconds + 6)))
        await r.sent(blast, int(rate))  # the blast is in full flow
        during = await phase("blast")
        sent_by_end = await r.sent(blast, 0)
        await r.finished(blast)
        q50, q95 = percentile(quiet, 0.5) * 1000, percentile(quiet, 0.95) * 1000
        b50, b95 = percentile(during, 0.5) * 1000, percentile(during, 0.95) * 1000
        return {
            "customers": customers,
            "replies_quiet": len(quiet),
            "replies_during_blast": len(during),
            "p50_ms_quiet": round(q50, 1),
            "p95_ms_quiet": round(q95, 1),
            "p50_ms_blast": round(b50, 1),
            "p95_ms_blast": round(b95, 1),
            "p50_ratio": round(b50 / q50, 2),
            "p95_ratio": round(b95 / q95, 2),
            "blast_rate": round(blast.rate, 1),
            "blast_sent_when_window_closed": sent_by_end,
            "blast_busiest_second": busiest_window(blast.moments),
            "429s": r.emulator.count_429,
            **{f"{k}_{name}": v for name, m in machine.items() for k, v in m.items()},
        }


async def _converse(
    user: BenchUser,
    message: SimMessage,
    stop: float,
    samples: list[float],
    rng: random.Random,
    think: float,
    current: list[SimMessage],
    index: int,
) -> None:
    """Press, wait for the next question, pause `think`, again; a new run after the outro."""

    def is_step(m: SimMessage) -> bool:
        return is_question(m) or m.body.startswith(OUTRO)

    await asyncio.sleep(rng.uniform(0, think))  # customers do not press in step
    while time.perf_counter() < stop:
        pressed = time.perf_counter()
        await user.press(message, choose(message, rng))
        reply = await user.wait_for(is_step, WAIT)
        samples.append(user.stamps[reply.message_id] - pressed)
        if is_question(reply):
            message = reply
        else:
            await user.start("b_BDG01")
            message = await user.wait_for(is_question, WAIT)
        await asyncio.sleep(think)
    current[index] = message  # the next phase continues from here


# -- the command ---------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    if args.only in (None, "ceiling"):
        results["ceiling"] = await ceiling(args.messages, args.profile)
    if args.only in (None, "pacing"):
        results["pacing"] = await pacing(args.pacing_messages)
    if args.only in (None, "latency"):
        results["latency"] = await latency(args.customers, args.seconds, args.think, args.seed)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("ceiling", "pacing", "latency"))
    parser.add_argument("--messages", type=int, default=20_000, help="the ceiling's blast")
    parser.add_argument("--pacing-messages", type=int, default=600)
    parser.add_argument("--customers", type=int, default=10, help="answering, for latency")
    parser.add_argument("--seconds", type=float, default=10.0, help="each latency phase")
    parser.add_argument("--think", type=float, default=0.3, help="a customer's pause")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=Path, help="cProfile the bot during the ceiling")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, result in results.items():
            print(f"-- {name}")
            for key, value in result.items():
                print(f"{key:>32}: {value}")
    if args.profile is not None and "ceiling" in results:
        print(profile_report(args.profile, args.messages).replace("answer", "message"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
