"""Webhook delivery: POST each pending update to the bot as Telegram does.

Up to ``max_connections`` deliveries are in flight; a non-2xx answer or a connection error is
retried after short pauses; a 2xx answer whose JSON body names a ``method`` has that call
performed, its result kept only in the delivery log (Telegram tells the bot nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import aiohttp

from bot.devtools.emulator.updates import Entry, RawUpdate, UpdateQueue

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

Execute = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: tuple[str, ...] | None = None
    certificate: bytes | None = None  # a self-signed certificate, the one HTTPS root trusted

    def tls(self) -> ssl.SSLContext | bool:
        """How an https:// delivery checks the bot's certificate, as Telegram does: against
        the uploaded one if any, otherwise against the public certificate authorities."""
        if self.certificate is None:
            return True
        return ssl.create_default_context(cadata=self.certificate.decode("ascii"))


@dataclass
class WebhookAttempt:
    """One POST of one update: the HTTP status, or the connection error instead."""

    update_id: int
    attempt: int
    status: int | None
    error: str | None = None
    secret_sent: bool = False
    reply_method: str | None = None
    reply_result: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _body(update: dict[str, Any]) -> str:
    return update.text if isinstance(update, RawUpdate) else json.dumps(update)


def _reason(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class WebhookDelivery:
    """Runs while a webhook is set; stops (keeping undelivered updates) when it is removed."""

    def __init__(
        self,
        queue: UpdateQueue,
        execute: Execute,
        *,
        retry_delays: Sequence[float],
        timeout: float,
    ) -> None:
        self.config: WebhookConfig | None = None
        self.log: list[WebhookAttempt] = []
        self.last_error_date: int | None = None
        self.last_error_message: str | None = None
        self._queue = queue
        self._execute = execute
        self._retry_delays = tuple(retry_delays)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._busy: set[Entry] = set()

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    async def set(self, config: WebhookConfig) -> None:
        await self.clear()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        self.config = config
        self._queue.webhook_active = True
        self._queue.notify()
        self._dispatcher = asyncio.create_task(self._dispatch(config))

    async def clear(self) -> None:
        """Stop delivering; updates in flight stay queued for the next consumer."""
        self.config = None
        self._queue.webhook_active = False
        tasks = [t for t in (self._dispatcher, *self._deliveries) if t is not None]
        self._dispatcher = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._busy.clear()
        self._queue.notify()

    async def close(self) -> None:
        await self.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _dispatch(self, config: WebhookConfig) -> None:
        slots = asyncio.Semaphore(config.max_connections)
        while True:
            await slots.acquire()
            entry = self._queue.next_for_delivery(self._busy)
            while entry is None:
                await self._queue.wait_changed()
                entry = self._queue.next_for_delivery(self._busy)
            self._busy.add(entry)
            task = asyncio.create_task(self._deliver(config, entry, slots))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, config: WebhookConfig, entry: Entry, slots: asyncio.Semaphore) -> None:
        try:
            for attempt, pause in enumerate((0.0, *self._retry_delays), start=1):
                if pause:
                    await asyncio.sleep(pause)
                record = await self._post(config, entry.update, attempt)
                self.log.append(record)
                if record.ok:
                    break
            self._queue.remove(entry)  # delivered, or given up after the last retry
        finally:
            self._busy.discard(entry)
            slots.release()

    async def _post(
        self, config: WebhookConfig, update: dict[str, Any], attempt: int
    ) -> WebhookAttempt:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if config.secret_token:
            headers[SECRET_HEADER] = config.secret_token
        record = WebhookAttempt(
            update["update_id"], attempt, None, secret_sent=bool(config.secret_token)
        )
        tls = config.tls()
        try:
            async with self._session.post(
                config.url, data=_body(update), headers=headers, ssl=tls
            ) as response:
                record.status = response.status
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.error = self._describe(exc)
            self._failed(record.error)
            return record
        if not record.ok:
            self._failed(f"Wrong response from the webhook: {_reason(response.status)}")
        elif body:
            await self._reply_call(body, record)
        return record

    async def _reply_call(self, body: bytes, record: WebhookAttempt) -> None:
        try:
            call = json.loads(body)
        except ValueError:
            return
        if isinstance(call, dict) and isinstance(call.get("method"), str):
            params = {k: v for k, v in call.items() if k != "method"}
            record.reply_method = call["method"]
            record.reply_result = await self._execute(call["method"], params)

    @staticmethod
    def _describe(exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return "Connection timed out"
        if isinstance(exc, aiohttp.ClientConnectorError):
            return "Connection refused"
        return f"{type(exc).__name__}: {exc}"

    def _failed(self, message: str) -> None:
        self.last_error_date = int(time.time())
        self.last_error_message = message
