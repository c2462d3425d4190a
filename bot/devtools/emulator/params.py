"""Method parameters from every body form Bot API clients use.

Query strings, ``application/x-www-form-urlencoded`` (python-telegram-bot JSON-encodes objects
inside fields), ``multipart/form-data`` with files, and ``application/json``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.devtools.emulator.errors import bad_request
from bot.devtools.emulator.files import Upload
from bot.devtools.emulator.messages import load_json

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class Params:
    """Typed access to one call's parameters, with Telegram's complaints on bad values."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def string(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or isinstance(value, Upload):
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def number(self, name: str) -> float | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)

    def json(self, name: str) -> Any:
        value = self.values.get(name)
        return None if value is None or value == "" else load_json(value, name)

    def file(self, name: str) -> Any:
        """An :class:`Upload`, or a file_id/URL string; ``attach://part`` is resolved."""
        value = self.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.values.get(value.removeprefix("attach://"))
        return value


async def read_params(request: web.Request) -> Params:
    """Merge the query string with the body, whatever its encoding."""
    values: dict[str, Any] = dict(request.query)
    if not request.body_exists:
        return Params(values)
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise bad_request("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise bad_request("can't parse JSON object")
        values.update(body)
    elif content_type in _FORM_TYPES:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                values[key] = Upload(value.filename, value.content_type, value.file.read())
            elif isinstance(value, bytes | bytearray):
                values[key] = bytes(value).decode(errors="replace")
            else:
                values[key] = value
    return Params(values)
