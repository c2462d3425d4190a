"""Translations and locale-aware formatting.

Catalogs are the gettext `.po` files under `locales/`, managed with Babel (`babel.cfg`). They are
compiled in memory at start-up, so a fresh checkout needs no build step and a stale `.mo` can
never shadow an edited catalog. The current reader's locale lives in a context variable set per
update; `_()` reads it.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timedelta
from decimal import Decimal
from gettext import GNUTranslations
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime as _format_datetime
from babel.dates import format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import NumberPattern, format_decimal, format_percent, parse_pattern

from bot.errors import ConfigError

LOCALES = ("id", "en")
DEFAULT_LOCALE = "id"
LOCALE_DIR = Path(__file__).resolve().parents[2] / "locales"
DOMAIN = "messages"

_current: ContextVar[str] = ContextVar("locale", default=DEFAULT_LOCALE)
_catalogs: dict[str, GNUTranslations] = {}


def load_catalogs(directory: Path = LOCALE_DIR) -> None:
    """Compile every locale's catalog; a missing one stops start-up instead of showing msgids."""
    for locale in LOCALES:
        path = directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not path.is_file():
            raise ConfigError(f"The translation catalog for '{locale}' is missing: {path}.")
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        _catalogs[locale] = GNUTranslations(buffer)


def _catalog(locale: str) -> GNUTranslations:
    if not _catalogs:
        load_catalogs()
    return _catalogs[locale]


def resolve_locale(code: str | None) -> str:
    """Map a Telegram `language_code` (or a stored one) to a supported locale."""
    if not code:
        return DEFAULT_LOCALE
    code = code.replace("-", "_")
    if code in LOCALES:
        return code
    try:
        language = Locale.parse(code).language
    except (UnknownLocaleError, ValueError):
        return DEFAULT_LOCALE
    if language in ("in", "ms"):  # old ISO code for Indonesian; Malay readers read Indonesian
        return "id"
    return language if language in LOCALES else DEFAULT_LOCALE


@contextlib.contextmanager
def use_locale(locale: str) -> Iterator[None]:
    """Render in `locale` for the duration of the block (e.g. one alert to another reader)."""
    token = _current.set(resolve_locale(locale))
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str) -> str:
    return _catalog(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _catalog(_current.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for extraction; translate it later, where the reader is known."""
    return message


_ = gettext


@functools.cache
def _pattern(digits: int, fraction: str, suffix: str = "") -> NumberPattern:
    """Babel parses a format string on every call; every question's progress line has two
    numbers, so each pattern is parsed once."""
    return parse_pattern("#,##0" + ("." + fraction * digits if digits else "") + suffix)


_babel_locale = functools.cache(Locale.parse)


def number(value: float | int | Decimal, digits: int = 1) -> str:
    return _number(value, digits, _current.get())


@functools.lru_cache(maxsize=4096)
def _number(value: float | int | Decimal, digits: int, locale: str) -> str:
    """Most numbers shown are small counts (every progress line has two): formatted once."""
    return format_decimal(value, format=_pattern(digits, "#"), locale=_babel_locale(locale))


def fixed(value: float, digits: int = 1) -> str:
    """A score with exactly `digits` decimals, as reports print them ("NPS 42,5")."""
    locale = _babel_locale(_current.get())
    return format_decimal(value, format=_pattern(digits, "0"), locale=locale)


def percent(share: float, digits: int = 1) -> str:
    locale = _babel_locale(_current.get())
    return format_percent(share, format=_pattern(digits, "0", "%"), locale=locale)


def datetime_text(moment: datetime, zone: ZoneInfo, form: str = "medium") -> str:
    return _format_datetime(moment, format=form, tzinfo=zone, locale=_current.get())


def duration(delta: timedelta) -> str:
    """How long something has waited, in words of the reader's language ("2 days", "2 hari")."""
    return format_timedelta(delta, granularity="minute", threshold=1.5, locale=_current.get())
