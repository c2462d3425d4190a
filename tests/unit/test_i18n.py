"""Every user-visible string is translated in both catalogs, and the template is current."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.pofile import read_po

from bot.services import i18n

ROOT = Path(__file__).resolve().parents[2]


def _catalog(path: Path, locale: str | None = None):  # type: ignore[no-untyped-def]
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def test_template_matches_the_source(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "N_",
            "-k",
            "_",
            "-o",
            str(fresh),
            "--no-location",
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    extracted = {m.id for m in _catalog(fresh) if m.id}
    committed = {m.id for m in _catalog(ROOT / "locales" / "messages.pot") if m.id}
    assert extracted == committed, "run pybabel extract/update (see README)"


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_every_message_is_translated(locale: str) -> None:
    template = {m.id for m in _catalog(ROOT / "locales" / "messages.pot") if m.id}
    catalog = _catalog(ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po", locale)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    assert template - translated == set()
    for message in catalog:
        if message.id and message.string:  # placeholders survive translation
            assert sorted(_fields(message.id)) == sorted(_fields(message.string)), message.id


def _fields(text: str | tuple[str, ...]) -> list[str]:
    """The placeholders of a message, or of every plural form together."""
    import string

    forms = (text,) if isinstance(text, str) else text
    return [name for form in forms for _, name, _, _ in string.Formatter().parse(form) if name]


def test_locale_resolution_falls_back_to_indonesian() -> None:
    assert [
        i18n.resolve_locale(c) for c in ("en-GB", "en", "id", "in", "ms", "fr", None, "??")
    ] == ["en", "en", "id", "id", "id", "id", "id", "id"]


def test_numbers_and_dates_follow_the_reader() -> None:
    moment = datetime(2026, 3, 5, 7, 30, tzinfo=UTC)
    with i18n.use_locale("id"):
        assert i18n.number(1234567.891, 3) == "1.234.567,891"
        assert i18n.datetime_text(moment, ZoneInfo("Asia/Jakarta"), "long") == (
            "5 Maret 2026 14.30.00 WIB"
        )
        assert i18n.gettext("Yes") == "Ya"
    with i18n.use_locale("en"):
        assert i18n.number(1234567.891, 3) == "1,234,567.891"
        assert i18n.gettext("Yes") == "Yes"


def test_a_missing_catalog_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(i18n.ConfigError, match="catalog for 'id' is missing"):
        i18n.load_catalogs(tmp_path)
    i18n.load_catalogs()
