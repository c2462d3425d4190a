"""The sender: campaign invitations and reminders, paced within the bot's one rate budget.

It picks due deliveries, sends them through the shared Pacer as bulk traffic (customer replies
go first, and while updates are being processed its slots and its database work wait, within
the pacer's hold budget) and settles each batch in one transaction: `sent`, `failed` after
retries with backoff, `blocked` on 403 (the customer too, never retried), or back to `pending`
when Telegram kept saying 429. A delivery becomes `sending`, committed, only when its turn to
go out has come, so one a crash left in `sending` was on its way: it counts as sent and is
never sent again. One process sends: on PostgreSQL the holder of an advisory lock, held on a
connection of its own, so another process takes over within seconds of its death.

The launcher's chat gets one progress message, edited every few seconds, then a final report.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.services.campaigns import BUSY_FOR, DEFAULT_ZONE, in_quiet_hours
from bot.services.clock import Clock, system_clock
from bot.services.i18n import N_, gettext, number, use_locale
from bot.services.surveys import SurveyCatalog
from bot.transport.pacing import Pacer
from bot.transport.request import AiohttpRequest, post_prepared
from bot.transport.retry import with_retry
from flows.schema import localized
from storage import campaigns as store
from storage import orgs
from storage import staff as staff_store
from storage.campaigns import Campaign, Due, Settled
from storage.db import Database
from storage.leader import DATABASE_FAULTS, Leadership

log = logging.getLogger(__name__)

LEADER_LOCK = 0x5355_4152_4153_4E44  # "SUARASND": one sender across processes
NETWORK_ATTEMPTS = 3
BACKOFF = 0.5  # seconds, doubling per attempt
REPORT_EVERY = 3.0  # seconds between edits of a progress message
IDLE_WAIT = 1.0  # seconds between looks for due work when nothing wakes the sender
BAR = 10
MARK_GATHER = 0.005  # seconds deliveries whose slots have come gather before being marked

INVITE_TEXT = N_("We would like to hear how we did. The survey takes about a minute.")
REMIND_NEW_TEXT = N_("A reminder: we would still like to hear from you. It takes about a minute.")
REMIND_PART_TEXT = N_("You stopped part-way through our survey. Continue where you left off?")
START_BUTTON = N_("Start the survey")
CONTINUE_BUTTON = N_("Continue the survey")
PROGRESS_TEXT = N_(
    "Campaign {id} «{name}»\n{bar} {percent}\n"
    "Sent {sent} · failed {failed} · blocked {blocked} of {total}\n"
    "{rate} msg/s · about {eta} s left"
)
DONE_TEXT = N_(
    "Campaign {id} «{name}»: invitations done.\n"
    "Sent {sent} · failed {failed} · blocked {blocked} of {total}, in {seconds} s."
)


class _NoLongerPending(Exception):
    """The delivery was settled elsewhere (a cancel) between its claim and its turn."""


@dataclass
class SenderStats:
    """Counters for /metrics, since this process started."""

    sent: int = 0
    failed: int = 0
    blocked: int = 0
    leader: bool = False
    last_tick: float = 0.0  # monotonic time of the last look for work


@dataclass
class _Progress:
    started: float
    sent_at_start: int
    edited: float = 0.0
    done: bool = False


class Sender:
    """Sends what campaigns have due; `run` is its loop, `wake` nudges it."""

    def __init__(
        self,
        db: Database,
        catalog: SurveyCatalog,
        pacer: Pacer,
        *,
        notice_version: str,
        clock: Clock = system_clock,
        concurrency: int | None = None,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._pacer = pacer
        self._notice_version = notice_version
        self.clock = clock
        self._concurrency = concurrency or max(4, min(64, int(pacer.rate / 10)))
        self._http: AiohttpRequest | None = None  # the blast's own connections, not replies'
        self._batch = max(20, min(5000, int(pacer.rate / 4)))  # a quarter second's worth
        self._wake = asyncio.Event()
        self._leadership = Leadership(db, LEADER_LOCK)
        self._progress: dict[int, _Progress] = {}
        self.stats = SenderStats()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, bot: Bot, stop: asyncio.Event) -> None:
        """Until `stop`: lead (or wait to), send what is due, sleep until woken or a second."""
        try:
            while not stop.is_set():
                self.stats.last_tick = time.monotonic()
                try:
                    if await self._lead():
                        await self.drain(bot)
                except DATABASE_FAULTS as error:
                    log.warning("sender: database error (%s); trying again", type(error).__name__)
                    await self._resign()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_WAIT)
                self._wake.clear()
        finally:
            await self._resign()
            await self.close()

    async def close(self) -> None:
        """Close the sender's connections to the Bot API."""
        if self._http is not None:
            await self._http.shutdown()
            self._http = None

    async def _connections(self) -> AiohttpRequest:
        """Invitations go through a pool of their own, as many connections as may be in
        flight, so a blast never holds a connection a customer's reply is waiting for."""
        if self._http is None:
            self._http = AiohttpRequest(connection_pool_size=self._concurrency)
            await self._http.initialize()
        return self._http

    async def drain(self, bot: Bot) -> int:
        """Send batches until nothing is due now; how many deliveries were settled. Sending
        does not pause for the database: the next batch is claimed while one goes out, and
        starts going out while the one before it is settled."""
        total = 0
        batch = await self._claim(())
        sending = self._start(bot, batch)
        while sending is not None:
            try:
                upcoming = await self._claim([d.id for d in batch])
            finally:
                results = await sending
            sending = self._start(bot, upcoming)
            try:
                await self._settle(batch, results)
            except BaseException:
                if sending is not None:  # what went out is `sending`: settled as sent later
                    await asyncio.gather(sending, return_exceptions=True)
                raise
            total += len(results)
            await self._report(bot)
            batch = upcoming
        if total or not all(p.done for p in self._progress.values()):
            await self._report(bot, final_only=True)
        return total

    def _start(self, bot: Bot, batch: list[Due]) -> asyncio.Task[list[Settled]] | None:
        return asyncio.create_task(self._send_batch(bot, batch)) if batch else None

    async def _settle(self, batch: list[Due], results: list[Settled]) -> None:
        blocked = [
            d.customer_id for d, r in zip(batch, results, strict=True) if r.status == store.BLOCKED
        ]
        await self._pacer.customers_first()
        await self._db.run(partial(_settle, results=results, blocked=blocked))

    # -- leadership ----------------------------------------------------------------------------

    async def _lead(self) -> bool:
        """Whether this process is the sender now; on winning, settle what a dead one left."""
        was_leader = self.stats.leader
        if not await self._leadership.hold():
            self.stats.leader = False
            return False
        if not was_leader:
            self.stats.leader = True
            if self._db.is_postgres:
                log.info("this process is now the campaign sender")
            await self._settle_interrupted()
        return True

    async def _resign(self) -> None:
        self.stats.leader = False
        await self._leadership.release()

    async def _settle_interrupted(self) -> None:
        at = self.clock()
        settled = await self._db.run(lambda c: store.settle_interrupted(c, at))
        if settled:
            log.warning("sender: %d deliveries left in sending are counted as sent", settled)

    # -- claiming and sending ------------------------------------------------------------------

    async def _claim(self, going: Sequence[int]) -> list[Due]:
        """Claim a batch (but not the one `going` out now); with no campaign running, one
        cheap query."""

        async def work(connection: AsyncConnection) -> list[Due]:
            at = self.clock()
            running = [
                c
                for c in await store.in_status(connection, (store.RUNNING,))
                if c.expires_at is None or c.expires_at > at  # expired: the tick ends it
            ]
            if not running:
                return []
            quiet = await _quiet_branches(connection, running, at)
            return await store.claim(
                connection, at, quiet, at - BUSY_FOR, self._batch, excluding=going
            )

        await self._pacer.customers_first()
        return await self._db.run(work)

    async def _send_batch(self, bot: Bot, batch: list[Due]) -> list[Settled]:
        await self._pacer.customers_first()
        async with self._db.transaction() as connection:
            campaigns = {c: await store.get(connection, c) for c in {d.campaign_id for d in batch}}
            plans = await self._plans(connection, batch, campaigns, bot.username)
        marks = _Marks(self._db, self._pacer)
        slots = asyncio.Semaphore(self._concurrency)

        async def one(due: Due) -> Settled:
            plan = plans[due.id]
            if isinstance(plan, str):
                return Settled(due.id, store.SKIPPED, self.clock(), plan)
            async with slots:
                return await self._deliver(bot, due, plan, marks)

        try:
            return list(await asyncio.gather(*(one(due) for due in batch)))
        finally:
            await marks.close()

    async def _plans(
        self,
        connection: AsyncConnection,
        batch: list[Due],
        campaigns: dict[int, Campaign | None],
        username: str,
    ) -> dict[int, bytes | str]:
        """For each delivery, re-checked now: the sendMessage body, or why it is skipped."""
        plans: dict[int, bytes | str] = {}
        states: dict[int, dict[int, str]] = {}
        invited: dict[int, dict[int, str]] = {}
        for campaign_id, campaign in campaigns.items():
            if campaign is None or campaign.survey_id is None:
                continue
            ids = [d.customer_id for d in batch if d.campaign_id == campaign_id]
            states[campaign_id] = await store.progress_of(connection, campaign, ids)
            invited[campaign_id] = await store.invite_status(connection, campaign_id, ids)
        bodies: dict[tuple[int, str, str, str | None], bytes] = {}  # the same few messages
        for due in batch:
            campaign = campaigns.get(due.campaign_id)
            if campaign is None or campaign.survey_id is None:
                plans[due.id] = "no_campaign"
                continue
            reason = self._skip_reason(due)
            progress = states[due.campaign_id].get(due.customer_id)
            if reason is None and due.kind != store.INVITE:
                if invited[due.campaign_id].get(due.customer_id) != store.SENT:
                    reason = "not_invited"
                elif progress == "completed":
                    reason = "answered"
            if reason is not None:
                plans[due.id] = reason
                continue
            assert due.telegram_id is not None
            key = (campaign.id, due.locale, due.kind, progress)
            rest = bodies.get(key)
            if rest is None:
                pinned = await self._catalog.pinned(connection, campaign.survey_id)
                rest = bodies[key] = _message(due, campaign, pinned.survey, progress, username)
            plans[due.id] = b'{"chat_id":%d,' % due.telegram_id + rest
        return plans

    def _skip_reason(self, due: Due) -> str | None:
        if due.telegram_id is None:
            return "no_telegram"
        if due.consent_version != self._notice_version:
            return "no_consent"
        if due.opted_out:
            return "opted_out"
        if due.blocked:
            return "blocked"
        return None

    async def _deliver(self, bot: Bot, due: Due, body: bytes, marks: _Marks) -> Settled:
        assert due.telegram_id is not None
        chat_id = due.telegram_id
        marked = False
        http = await self._connections()

        async def send() -> object:
            """Once its slot has come: its slice marked `sending` (committed), then the send."""
            nonlocal marked
            if not marked:
                if not await marks.ready(due.id):
                    raise _NoLongerPending
                marked = True
            return await post_prepared(bot, "sendMessage", body, http)

        for attempt in range(1, NETWORK_ATTEMPTS + 1):
            try:
                await with_retry(send, self._pacer, chat_id, bulk=True)
            except _NoLongerPending:
                return Settled(due.id, store.SKIPPED, self.clock(), "not_pending")
            except Forbidden:
                self.stats.blocked += 1
                return Settled(due.id, store.BLOCKED, self.clock(), "forbidden")
            except RetryAfter:
                return Settled(due.id, store.PENDING, self.clock())  # Telegram kept saying 429
            except BadRequest as error:
                log.warning("sender: delivery %d refused: %s", due.id, error.message)
                self.stats.failed += 1
                return Settled(due.id, store.FAILED, self.clock(), "bad_request")
            except NetworkError:
                if attempt < NETWORK_ATTEMPTS:
                    await asyncio.sleep(BACKOFF * 2 ** (attempt - 1))
                    continue
                self.stats.failed += 1
                return Settled(due.id, store.FAILED, self.clock(), "network")
            except TelegramError as error:
                log.warning("sender: delivery %d failed: %s", due.id, type(error).__name__)
                self.stats.failed += 1
                return Settled(due.id, store.FAILED, self.clock(), "error")
            self.stats.sent += 1
            return Settled(due.id, store.SENT, self.clock())
        raise AssertionError("unreachable")

    # -- the launcher's progress message -------------------------------------------------------

    async def _report(self, bot: Bot, *, final_only: bool = False) -> None:
        await self._pacer.customers_first()
        async with self._db.transaction() as connection:
            running = [
                c
                for c in await store.in_status(connection, (store.RUNNING,))
                if c.report_chat is not None
            ]
            counts = {c.id: await store.counts(connection, c.id) for c in running}
            locales = {c.id: await _reader_locale(connection, c) for c in running}
        now = time.monotonic()
        for campaign in running:
            invites = {s: n for (k, s), n in counts[campaign.id].items() if k == store.INVITE}
            pending = invites.get(store.PENDING, 0) + invites.get(store.SENDING, 0)
            progress = self._progress.get(campaign.id)
            if progress is None:
                if pending == 0 and campaign.report_message is not None:
                    continue  # reported before this process started
                progress = self._progress[campaign.id] = _Progress(now, invites.get(store.SENT, 0))
            if progress.done or (final_only and pending):
                continue
            if pending and now - progress.edited < REPORT_EVERY:
                continue
            progress.edited = now
            progress.done = pending == 0
            with use_locale(locales[campaign.id]):
                text = _progress_text(campaign, invites, pending, progress, now)
            await self._show(bot, campaign, text)

    async def _show(self, bot: Bot, campaign: Campaign, text: str) -> None:
        assert campaign.report_chat is not None
        chat_id = campaign.report_chat
        try:
            if campaign.report_message is None:
                message = await with_retry(
                    lambda: bot.send_message(chat_id, text, parse_mode=ParseMode.HTML),
                    self._pacer,
                    chat_id,
                )
                await self._db.run(
                    lambda c: store.update(c, campaign.id, report_message=message.message_id)
                )
            else:
                message_id = campaign.report_message
                await with_retry(
                    lambda: bot.edit_message_text(
                        text, chat_id, message_id, parse_mode=ParseMode.HTML
                    ),
                    self._pacer,
                    chat_id,
                )
        except TelegramError as error:
            log.info("sender: progress report not shown (%s)", type(error).__name__)


def _message(
    due: Due, campaign: Campaign, survey: Any, progress: str | None, username: str
) -> bytes:
    """The sendMessage body after its chat_id, serialised once for all who get the same."""
    link = f"https://t.me/{username}?start=k_{campaign.id}"
    with use_locale(due.locale):
        title = localized(survey.title, due.locale, survey.default_locale)
        if due.kind == store.INVITE:
            body, button = gettext(INVITE_TEXT), gettext(START_BUTTON)
        elif progress == "started":
            body, button = gettext(REMIND_PART_TEXT), gettext(CONTINUE_BUTTON)
        else:
            body, button = gettext(REMIND_NEW_TEXT), gettext(START_BUTTON)
    fields = {
        "text": f"{title}\n\n{body}",
        "reply_markup": {"inline_keyboard": [[{"text": button, "url": link}]]},
    }
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()[1:]


class _Marks:
    """Marks deliveries `sending` the moment their slots to go out have come, those whose
    slots came within MARK_GATHER of each other in one statement (and while one commits, the
    next ones gather). So a crash leaves in `sending` only what was on its way, and no send
    costs a transaction of its own."""

    def __init__(self, db: Database, pacer: Pacer) -> None:
        self._db = db
        self._pacer = pacer
        self._gathering: dict[int, asyncio.Future[bool]] = {}
        self._marker: asyncio.Task[None] | None = None

    async def ready(self, delivery_id: int) -> bool:
        """Whether the delivery is now `sending` (committed); False if it was pending no more."""
        marked = self._gathering[delivery_id] = asyncio.get_running_loop().create_future()
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._mark())
        return await marked

    async def _mark(self) -> None:
        while self._gathering:
            await asyncio.sleep(MARK_GATHER)  # a few statements a second, not one a message
            await self._pacer.customers_first()  # their units go first
            group, self._gathering = self._gathering, {}
            work = partial(store.mark_sending, delivery_ids=list(group))
            try:
                marked = await self._db.run(work)
            except Exception as error:  # each waiting send hears it, as from its own mark
                for future in group.values():
                    if not future.done():
                        future.set_exception(error)
                continue
            for delivery_id, future in group.items():
                if not future.done():
                    future.set_result(delivery_id in marked)

    async def close(self) -> None:
        """Wait for a marking under way, so none outlives its batch."""
        if self._marker is not None:
            with contextlib.suppress(Exception):
                await self._marker


def _progress_text(
    campaign: Campaign, invites: dict[str, int], pending: int, progress: _Progress, now: float
) -> str:
    sent = invites.get(store.SENT, 0)
    failed, blocked = invites.get(store.FAILED, 0), invites.get(store.BLOCKED, 0)
    total = sum(invites.values()) - invites.get(store.SKIPPED, 0)
    done = sent + failed + blocked
    elapsed = max(now - progress.started, 0.001)
    rate = (sent - progress.sent_at_start) / elapsed
    name = html.escape(campaign.name, quote=False)
    if pending == 0:
        return gettext(DONE_TEXT).format(
            id=campaign.id,
            name=name,
            sent=number(sent, 0),
            failed=number(failed, 0),
            blocked=number(blocked, 0),
            total=number(total, 0),
            seconds=number(elapsed, 0),
        )
    share = done / total if total else 1.0
    filled = round(share * BAR)
    return gettext(PROGRESS_TEXT).format(
        id=campaign.id,
        name=name,
        bar="▓" * filled + "░" * (BAR - filled),
        percent=f"{share:.0%}",
        sent=number(sent, 0),
        failed=number(failed, 0),
        blocked=number(blocked, 0),
        total=number(total, 0),
        rate=number(rate, 1),
        eta=number(pending / rate, 0) if rate > 0 else "?",
    )


async def _settle(
    connection: AsyncConnection, *, results: list[Settled], blocked: list[int]
) -> None:
    await store.settle(connection, results)
    await store.mark_customers_blocked(connection, blocked)


async def _reader_locale(connection: AsyncConnection, campaign: Campaign) -> str:
    """The launcher's language, for their progress message."""
    assert campaign.report_chat is not None
    member = await staff_store.by_telegram_id(connection, campaign.report_chat)
    return "en" if member is None else member.locale


async def _quiet_branches(
    connection: AsyncConnection, running: Iterable[Campaign], at: datetime
) -> dict[int, set[int]]:
    """Each running campaign -> the branches now inside its quiet hours (-1: no branch)."""
    branches = await orgs.all_branches(connection)
    quiet: dict[int, set[int]] = {}
    for campaign in running:
        inside = {
            b.id
            for b in branches
            if in_quiet_hours(at, ZoneInfo(b.timezone), campaign.quiet_start, campaign.quiet_end)
        }
        if in_quiet_hours(at, ZoneInfo(DEFAULT_ZONE), campaign.quiet_start, campaign.quiet_end):
            inside.add(-1)
        quiet[campaign.id] = inside
    return quiet
