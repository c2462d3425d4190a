"""A bad setting stops start-up with one clear sentence; the command line never shows a
traceback for a user error."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.wiring.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("database_url", "mysql://x", "Setting DATABASE_URL is invalid: must start with"),
        ("telegram_api_url", "api.telegram.org", "TELEGRAM_API_URL is invalid: must be an http"),
        ("timezone", "Mars/Olympus", "TIMEZONE is invalid: is not a known time zone"),
        ("listen_port", "99999", "LISTEN_PORT is invalid"),
        ("default_locale", "fr", "DEFAULT_LOCALE is invalid"),
        ("webhook_secret", "has spaces", "WEBHOOK_SECRET is invalid"),
        ("purge_time", "25:00", "PURGE_TIME is invalid"),
    ],
)
def test_bad_settings_are_one_sentence(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(_env_file=None, **{name: value})
    assert "\n" not in str(caught.value) and str(caught.value).endswith(".")


def test_defaults_are_safe() -> None:
    settings = load_settings(_env_file=None)
    assert settings.bot_token is None and settings.is_sqlite
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.zone.key == "Asia/Jakarta"


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run_bot.py"), *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line_reports_user_errors_in_one_sentence(tmp_path: Path) -> None:
    bad = _cli(env={"DATABASE_URL": "mysql://nope"}, cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("suara: Setting DATABASE_URL is invalid")
    database = f"sqlite+aiosqlite:///{tmp_path}/suara.db"
    no_token = _cli(env={"DATABASE_URL": database}, cwd=tmp_path)
    assert no_token.returncode == 2 and "BOT_TOKEN is missing" in no_token.stderr
    assert "Traceback" not in no_token.stderr


async def test_init_example_prints_deep_links(tmp_path: Path) -> None:
    from bot.devtools.emulator import BotApiEmulator

    async with BotApiEmulator(token="123456:INIT", bot_username="bank_suara_bot") as emulator:
        env = {
            "PATH": "/usr/bin:/bin",
            "BOT_TOKEN": "123456:INIT",
            "TELEGRAM_API_URL": emulator.api_root,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/suara.db",
            "KEY_FILE": str(tmp_path / "suara.key"),
            "SURVEYS_DIR": str(ROOT / "surveys"),
            "PRIVACY_NOTICE_FILE": str(ROOT / "locales" / "privacy_notice.yaml"),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "run_bot.py"),
            "init",
            "--example",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "https://t.me/bank_suara_bot?start=b_JKT01" in out.decode()
    assert "?start=c_" in out.decode()
    assert (tmp_path / "suara.key").stat().st_mode & 0o077 == 0
