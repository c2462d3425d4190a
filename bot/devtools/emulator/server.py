"""The emulator: an aiohttp server speaking the Bot API, with simulated users and faults.

It runs in the caller's event loop, so tests drive users and inspect state directly while the
bot talks to it over real HTTP, exactly as it would to api.telegram.org.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bot.devtools.emulator.errors import ApiError, too_many_requests
from bot.devtools.emulator.faults import Fault, FaultKind, Faults
from bot.devtools.emulator.files import FileStore
from bot.devtools.emulator.flood import FloodControl
from bot.devtools.emulator.messages import SimMessage
from bot.devtools.emulator.methods import METHODS, Described, Method
from bot.devtools.emulator.params import Params, read_params
from bot.devtools.emulator.updates import RawUpdate, UpdateQueue
from bot.devtools.emulator.users import SimUser
from bot.devtools.emulator.webhook import WebhookAttempt, WebhookDelivery

_LOG = logging.getLogger(__name__)
_TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]+")
FLOOD_LIMITED = ("sendMessage", "sendPhoto", "sendDocument")
MAX_UPLOAD = 50 * 1024 * 1024


@dataclass
class CallbackQuery:
    """A press waiting for answerCallbackQuery."""

    query_id: str
    user: SimUser
    data: str | None
    message_id: int
    created: float
    answered: bool = False


class BotApiEmulator:
    """A local Telegram Bot API: real HTTP and JSON, flood limits, webhooks, faults."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        *,
        global_rate: float | None = 30.0,
        global_burst: float | None = None,
        per_chat_rate: float | None = 1.0,
        per_chat_burst: float = 3,
        paid_broadcast_rate: float | None = 1000.0,
        flood_limited_methods: Collection[str] = FLOOD_LIMITED,
        bot_username: str = "suara_demo_bot",
        bot_name: str = "Suara",
        webhook_retry_delays: Sequence[float] = (0.05, 0.2, 0.5),
        webhook_timeout: float = 10.0,
        callback_query_ttl: float | None = None,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_sender: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
        }
        self.bot_user: dict[str, Any] = {
            **self.bot_sender,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.users: dict[int, SimUser] = {}
        self.files = FileStore()
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.profile: dict[tuple[str, str], str] = {}
        self.calls: Counter[str] = Counter()
        self.sent_per_chat: Counter[int] = Counter()
        self.errors: Counter[int] = Counter()
        self.count_429 = 0
        self.callback_query_ttl = callback_query_ttl
        self.updates = UpdateQueue()
        self.webhook = WebhookDelivery(
            self.updates,
            self.call_payload,
            retry_delays=webhook_retry_delays,
            timeout=webhook_timeout,
        )
        self._flood = FloodControl(
            global_rate=global_rate,
            global_burst=global_burst,
            per_chat_rate=per_chat_rate,
            per_chat_burst=per_chat_burst,
            paid_rate=paid_broadcast_rate,
        )
        self._flood_limited = frozenset(flood_limited_methods)
        self._faults = Faults()
        self._queries: dict[str, CallbackQuery] = {}
        self._query_count = 0
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._closing = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port``; port 0 picks a free one (see :attr:`api_root`)."""
        app = web.Application(client_max_size=MAX_UPLOAD)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._host = host
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving: long polls return, deliveries stop, connections close."""
        self._closing.set()
        self.updates.close()
        await self.webhook.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_root(self) -> str:
        """``http://host:port``; the bot appends ``/bot<token>/<method>``."""
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        """python-telegram-bot's ``base_url`` (it appends the token)."""
        return f"{self.api_root}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.api_root}/file/bot"

    # -- simulated side ----------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Ani",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "id",
        started: bool = False,
    ) -> SimUser:
        """The simulated user ``user_id``, created on first use (``started``: has opened the
        bot before, so the bot may message them without a /start first)."""
        existing = self.users.get(user_id)
        if existing is not None:
            existing.started = existing.started or started
            return existing
        user = SimUser(
            self,
            user_id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            started=started,
        )
        self.users[user_id] = user
        return user

    def put_update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Queue a new update (the next update_id) for the bot."""
        return self.updates.put(body)

    def inject_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update as given; one reusing an old update_id is delivered again."""
        return self.updates.inject(update, forced=True)

    def put_raw_update(self, fields: str, update_id: int | None = None) -> int:
        """Queue an update written as JSON text (its members besides ``update_id``), served to
        getUpdates as given until an offset confirms it; returns its update_id."""
        return self.updates.put_raw(fields, update_id)["update_id"]

    def redeliver(self, update: dict[str, Any]) -> dict[str, Any]:
        """Deliver ``update`` once more with the same update_id, as Telegram's retries do."""
        return self.updates.inject(update, forced=True)

    async def drained(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a test helper
        """Wait until the bot has confirmed (or been delivered) every pending update."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.updates.pending or self.webhook.in_flight:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.updates.pending} updates still pending")
            await self.updates.wait_changed(remaining)

    async def call(self, method: str, **params: Any) -> Any:
        """Perform a Bot API call in-process; raises :class:`ApiError` as Telegram answers."""
        payload = await self.call_payload(method, params)
        if not payload["ok"]:
            raise ApiError(
                payload["error_code"],
                payload["description"],
                retry_after=payload.get("parameters", {}).get("retry_after"),
            )
        return payload["result"]

    async def call_payload(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Perform a call given as plain parameters and return Telegram's JSON answer."""
        entry = METHODS.get(method.lower())
        self.calls[entry.name if entry else method] += 1
        if entry is None:
            return self._count(ApiError(404, "Not Found: method not found").payload())
        return await self._run(entry, Params(params))

    @property
    def webhook_log(self) -> list[WebhookAttempt]:
        return self.webhook.log

    # -- faults ------------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        error_code: int = 500,
        description: str = "Internal Server Error",
        times: int | None = 1,
        chat_id: int | None = None,
        retry_after: int | None = None,
        after: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (``"*"``: any) with an error.

        ``after``: perform the call first, then report the error anyway.
        """
        if error_code == 429 and retry_after is None:
            retry_after = 1
        error = ApiError(error_code, description, retry_after=retry_after)
        self._faults.add(Fault("fail", self._canonical(method), times, chat_id, after, error=error))

    def delay(
        self,
        method: str,
        seconds: float,
        times: int | None = None,
        *,
        chat_id: int | None = None,
        after: bool = False,
    ) -> None:
        """Hold calls of ``method`` for ``seconds`` before (or, ``after``, once done) answering."""
        self._faults.add(
            Fault("delay", self._canonical(method), times, chat_id, after, seconds=seconds)
        )

    def drop_connection(
        self, method: str, times: int | None = 1, *, chat_id: int | None = None, after: bool = False
    ) -> None:
        """Close the connection without an answer; ``after``: once the call took effect."""
        self._faults.add(Fault("drop", self._canonical(method), times, chat_id, after))

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- used by the method handlers ---------------------------------------------------------

    def find_chat(self, raw: Any) -> SimUser | None:
        if isinstance(raw, str) and raw.startswith("@"):
            name = raw[1:].lower()
            found = (u for u in self.users.values() if (u.username or "").lower() == name)
            return next(found, None)
        try:
            return self.users.get(int(raw))
        except (TypeError, ValueError):
            return None

    def admit(self, method: str, chat_id: int, *, paid: bool = False) -> None:
        """Apply the flood limits to one call that affects ``chat_id``."""
        if method in self._flood_limited:
            wait = self._flood.admit(chat_id, paid=paid)
            if wait is not None:
                raise too_many_requests(wait)

    def create_message(self, user: SimUser, **content: Any) -> SimMessage:
        message = SimMessage(
            message_id=user.take_message_id(),
            chat=user.api_chat,
            sender=self.bot_sender,
            date=int(time.time()),
            from_bot=True,
            **content,
        )
        user.record(message, new=True)
        self.sent_per_chat[user.id] += 1
        return message

    def edit_message(self, user: SimUser, message: SimMessage, **changes: Any) -> None:
        keys_removed = changes == {"reply_markup": None}
        for key, value in changes.items():
            setattr(message, key, value)
        message.edit_date = int(time.time())
        message.edits += 1
        user.record(message, new=False, keys_removed=keys_removed)

    def delete_message(self, user: SimUser, message: SimMessage) -> None:
        message.deleted = True
        user.notify()

    def register_query(self, user: SimUser, data: str | None, message_id: int) -> str:
        self._query_count += 1
        query_id = str(4_000_000_000_000_000 + self._query_count)
        self._queries[query_id] = CallbackQuery(query_id, user, data, message_id, time.monotonic())
        return query_id

    def live_query(self, query_id: str) -> CallbackQuery | None:
        """The query if it can still be answered: known, unanswered and not expired."""
        query = self._queries.get(query_id)
        if query is None or query.answered:
            return None
        ttl = self.callback_query_ttl
        if ttl is not None and time.monotonic() - query.created > ttl:
            return None
        return query

    # -- HTTP --------------------------------------------------------------------------------

    def _canonical(self, method: str) -> str:
        entry = METHODS.get(method.lower())
        return entry.name if entry else method

    async def _run(self, entry: Method, params: Params) -> dict[str, Any]:
        try:
            result = await entry.handler(self, params)
        except ApiError as error:
            return self._count(error.payload())
        except Exception as exc:  # a bug here must reach the test, not hang the bot
            _LOG.exception("emulator failed in %s", entry.name)
            return self._count(ApiError(500, f"Internal Server Error: emulator: {exc!r}").payload())
        if isinstance(result, Described):
            return {"ok": True, "result": result.result, "description": result.description}
        return {"ok": True, "result": result}

    def _count(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not payload.get("ok", True):
            code = payload["error_code"]
            self.errors[code] += 1
            if code == 429:
                self.count_429 += 1
        return payload

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token != self.token:
            if _TOKEN_SHAPE.fullmatch(token):
                return _json(ApiError(401, "Unauthorized").payload())
            return _json(ApiError(404, "Not Found").payload())
        entry = METHODS.get(request.match_info["method"].lower())
        self.calls[entry.name if entry else request.match_info["method"]] += 1
        if entry is None:
            return _json(self._count(ApiError(404, "Not Found: method not found").payload()))
        try:
            params = await read_params(request)
        except ApiError as error:
            return _json(self._count(error.payload()))
        faults = self._faults.take(entry.name, _chat_of(params))
        if faults:
            return await self._run_faulty(request, entry, params, faults)
        return _json(await self._run(entry, params))

    async def _run_faulty(
        self, request: web.Request, entry: Method, params: Params, faults: dict[FaultKind, Fault]
    ) -> web.StreamResponse:
        """Wrap the call in its injected faults; each acts before the call or ``after`` it."""
        delay, drop, fail = faults.get("delay"), faults.get("drop"), faults.get("fail")
        if delay and not delay.after:
            await self._pause(delay.seconds)
        if drop and not drop.after:
            return _drop(request)
        payload = None if fail and not fail.after else await self._run(entry, params)
        if fail and fail.error:
            payload = self._count(fail.error.payload())
        if delay and delay.after:
            await self._pause(delay.seconds)
        if drop or payload is None:
            return _drop(request)
        return _json(payload)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        stored = self.files.by_path(request.match_info["path"])
        if request.match_info["token"] != self.token or stored is None:
            return _json(ApiError(404, "Not Found").payload())
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            pass


def _chat_of(params: Params) -> int | None:
    try:
        return int(params.get("chat_id"))
    except (TypeError, ValueError):
        return None


def _json(payload: dict[str, Any]) -> web.Response:
    status = payload.get("error_code", 200) if not payload.get("ok", True) else 200
    result = payload.get("result")
    if isinstance(result, list) and any(isinstance(item, RawUpdate) for item in result):
        return web.Response(body=_raw_updates(result), content_type="application/json")
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        body = text.encode()
    except UnicodeEncodeError:  # a lone surrogate travels as a JSON escape, as Telegram's would
        body = json.dumps(payload, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type="application/json")


def _raw_updates(updates: list[Any]) -> bytes:
    """getUpdates' answer with raw updates written as given."""
    texts = [u.text if isinstance(u, RawUpdate) else json.dumps(u) for u in updates]
    return ('{"ok":true,"result":[' + ",".join(texts) + "]}").encode()


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)
