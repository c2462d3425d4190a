"""python-telegram-bot's HTTP layer on one shared aiohttp session.

PTB's default httpx transport spends roughly ten times more CPU per call than aiohttp once
dozens of requests are in flight; this request class keeps PTB's semantics (timeouts, uploads,
error types) while using aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import aiohttp
from telegram import Bot
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import JSONDict, ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

from bot.transport import incoming

log = logging.getLogger(__name__)
JSON_HEADERS = {"Content-Type": "application/json"}
POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. Request was *not* "
    "sent to Telegram. Consider adjusting the connection pool size or the pool timeout."
)


class AiohttpRequest(BaseRequest):
    """A :class:`telegram.request.BaseRequest` on one ``aiohttp.ClientSession``.

    Timeouts mirror ``HTTPXRequest``: ``pool_timeout`` bounds the wait for one of the
    ``connection_pool_size`` slots, ``connect_timeout`` the TCP connect, ``read_timeout`` each
    wait for response data. aiohttp has no per-write timeout, so ``write_timeout`` (or
    ``media_write_timeout`` for uploads) joins the others in a bound on the whole exchange.
    """

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_proxy",
        "_read_timeout",
        "_session",
        "_slots",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 64,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        proxy: str | None = None,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout, used when a call passes none."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session; it needs a running event loop, so it is not made in __init__."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._slots = asyncio.Semaphore(self._pool_size)

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request; map aiohttp's failures onto PTB's TimedOut and NetworkError."""
        session, slots = self._session, self._slots
        if session is None or session.closed or slots is None:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        has_files = bool(request_data and request_data.contains_files)
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        if isinstance(write_timeout, DefaultValue):
            write = self._media_write_timeout if has_files else self._write_timeout
        else:
            write = write_timeout
        timeout = aiohttp.ClientTimeout(
            total=_bound(connect, write, read),
            sock_connect=connect,
            sock_read=read,
        )

        if slots.locked():  # a free slot is taken at once, without arming a timer
            try:
                async with asyncio.timeout(pool):
                    await slots.acquire()
            except TimeoutError as exc:
                raise TimedOut(POOL_TIMEOUT_MESSAGE) from exc
        else:
            await slots.acquire()
        try:
            async with session.request(
                method,
                url,
                data=_body(request_data) if request_data else None,
                headers=None if has_files or not request_data else JSON_HEADERS,
                timeout=timeout,
                proxy=self._proxy,
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is a TimeoutError too
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
        finally:
            slots.release()


class PreparedJson(RequestData):
    """A JSON body the caller serialised once, sent as it is."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body


async def post_prepared(
    bot: Bot, method: str, body: bytes, request: AiohttpRequest | None = None
) -> Any:
    """Call `method` with a JSON body serialised beforehand, keeping PTB's error types (429,
    403, 400, 5xx) and returning the raw result: no per-call building of parameter objects
    and no parsing of the result into PTB's classes, which is most of a send's CPU time.
    `request`: a connection pool of the caller's own instead of the bot's."""
    if request is None:
        if not isinstance(bot.request, AiohttpRequest):  # another transport: its own encoding
            return await bot.do_api_request(method, api_kwargs=json.loads(body))
        request = bot.request
    return await request.post(f"{bot.base_url}/{method}", request_data=PreparedJson(body))


class UpdatesRequest(AiohttpRequest):
    """The long-polling client: updates are trimmed (transport.incoming) before PTB parses them.

    An answer holding an update nested too deep for `json` is parsed one update at a time, and
    that update keeps only its id: the offset then moves past it, so Telegram stops returning
    it, instead of the RecursionError ending polling.
    """

    __slots__ = ()

    def parse_json_payload(self, payload: bytes) -> JSONDict:
        try:
            data = super().parse_json_payload(payload)
        except RecursionError:
            data = {"ok": True, "result": _one_by_one(payload.decode("utf-8", "replace"))}
        updates = data.get("result")
        if isinstance(updates, list):
            if incoming.ESCAPED_SURROGATE.search(payload):
                updates = incoming.mend_text(updates)
            data["result"] = [
                incoming.trim(kept) for kept in map(_admitted, updates) if kept is not None
            ]
        return data


# The tokens that nest or hide brackets in a JSON text: strings, and the brackets themselves.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_ID_VALUE = re.compile(r"\s*:\s*(-?\d+)")
_UPDATE_DEPTH = 3  # {"ok": true, "result": [ {an update} ]}


def _one_by_one(answer: str) -> list[Any]:
    """getUpdates' updates, each parsed alone; one nested too deep is left as its id alone,
    which a scan of its own members finds, or dropped when it has none."""
    updates: list[Any] = []
    depth, start, update_id = 0, 0, None
    for token in _TOKEN.finditer(answer):
        text = token.group()
        if text in ("[", "{"):
            depth += 1
            if depth == _UPDATE_DEPTH:
                start, update_id = token.start(), None
        elif text in ("]", "}"):
            if depth == _UPDATE_DEPTH:
                updates.append(_parsed(answer[start : token.end()], update_id))
            depth -= 1
        elif depth == _UPDATE_DEPTH and text == '"update_id"':
            found = _ID_VALUE.match(answer, token.end())
            update_id = int(found[1]) if found else None
    return [update for update in updates if update is not None]


def _parsed(text: str, update_id: int | None) -> Any:
    try:
        return json.loads(text)
    except (RecursionError, ValueError):
        log.warning("polling: update %s skipped: nested too deep to parse", update_id)
        return None if update_id is None else {"update_id": update_id}


def _admitted(update: Any) -> dict[str, Any] | None:
    """The update as PTB may parse it: one the bot cannot use keeps only its id, so polling
    moves past it (the offset follows the last id) and no handler sees it."""
    if isinstance(update, dict) and update.keys() == {"update_id"}:
        return update  # already reduced to its id, and logged, by _parsed
    try:
        reason = incoming.admit(update)
    except incoming.NotAnUpdate:
        log.warning("polling: an update that is not one was skipped")
        return None
    if reason is None:
        return update  # type: ignore[no-any-return]
    log.warning("polling: update acknowledged unused: %s", reason)
    return {"update_id": update["update_id"]}


def _bound(*parts: float | None) -> float | None:
    """A limit on the whole exchange, or None when any phase may take forever."""
    if any(part is None for part in parts):
        return None
    return sum(part for part in parts if part is not None)


def _body(request_data: RequestData) -> Any:
    """A JSON body, which the Bot API accepts for any call without files and which costs a
    fraction of form-encoding every character of a keyboard; multipart when there are files."""
    if isinstance(request_data, PreparedJson):
        return request_data.body
    if not request_data.contains_files:
        return json.dumps(request_data.parameters, ensure_ascii=False).encode()
    fields = request_data.json_parameters
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
