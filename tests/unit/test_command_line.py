"""The operator's command line: every user error is one sentence (exit 2), never a traceback,
and what it prints tells the operator what to do next."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.wiring.cli import main

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_PG = "postgresql+asyncpg://suara:s3cret@127.0.0.1:1/suara"


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/suara.db",
        "KEY_FILE": str(tmp_path / "suara.key"),
        "SURVEYS_DIR": str(ROOT / "surveys"),
        "PRIVACY_NOTICE_FILE": str(ROOT / "locales" / "privacy_notice.yaml"),
        **more,
    }


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _one_sentence(stderr: str) -> str:
    """The one line the command line stops with (log records may come before it)."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith(("suara: ", "alembic: "))]
    assert len(lines) == 1, stderr
    return lines[0]


async def _init_example(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    from bot.devtools.emulator import BotApiEmulator

    async with BotApiEmulator(token="123456:INIT", bot_username="bank_suara_bot") as emulator:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "run_bot.py"),
            "init",
            "--example",
            cwd=tmp_path,
            env=_env(tmp_path, BOT_TOKEN="123456:INIT", TELEGRAM_API_URL=emulator.api_root, **env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_init_labels_each_link_with_its_survey(tmp_path: Path) -> None:
    code, out, err = await _init_example(tmp_path)
    assert code == 0, err
    assert "?start=b_JKT01  (KC Jakarta Sudirman: survey branch_service)" in out
    survey_links = [line for line in out.splitlines() if "?start=c_" in line]
    assert survey_links and all(line.endswith("(survey digital_banking)") for line in survey_links)


async def test_init_stops_when_a_survey_it_links_to_is_broken_or_missing(tmp_path: Path) -> None:
    surveys = tmp_path / "surveys"
    surveys.mkdir()
    shutil.copy(ROOT / "surveys" / "branch_service.yaml", surveys)
    code, out, err = await _init_example(tmp_path, SURVEYS_DIR=str(surveys))
    assert code == 2 and "t.me" not in out  # no link that would answer "expired"
    line = _one_sentence(err)
    assert f"{surveys / 'digital_banking.yaml'} is missing" in line and "survey link c_" in line

    (surveys / "branch_service.yaml").write_text("spec: 1\nid: branch_service\n")
    code, out, err = await _init_example(tmp_path, SURVEYS_DIR=str(surveys))
    assert code == 2 and "t.me" not in out
    line = _one_sentence(err)
    assert f"{surveys / 'branch_service.yaml'} is invalid" in line and "DEFAULT_SURVEY" in line


def test_an_empty_token_is_named_before_migrations_run(tmp_path: Path) -> None:
    done = _run(
        sys.executable,
        str(ROOT / "run_bot.py"),
        "init",
        "--example",
        env=_env(tmp_path, BOT_TOKEN=""),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "Setting BOT_TOKEN is invalid: is empty" in _one_sentence(done.stderr)
    assert not (tmp_path / "suara.db").exists()


def test_a_bad_purge_time_says_how_to_write_it(tmp_path: Path) -> None:
    done = _run(
        sys.executable,
        str(ROOT / "run_bot.py"),
        "purge",
        env=_env(tmp_path, PURGE_TIME="25:99"),
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "use HH:MM" in _one_sentence(done.stderr)


@pytest.mark.parametrize("count", ["-5", "0", "many"])
def test_the_demo_refuses_a_customer_count_it_cannot_use(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["demo", "--customers", count])
    assert stopped.value.code == 2
    assert "--customers: use a whole number from 1 to" in capsys.readouterr().err


def test_an_unreachable_postgresql_is_one_sentence(tmp_path: Path) -> None:
    started = _run(
        sys.executable,
        str(ROOT / "run_bot.py"),
        "init",
        env=_env(tmp_path, DATABASE_URL=UNREACHABLE_PG),
        cwd=tmp_path,
    )
    assert started.returncode == 2
    line = _one_sentence(started.stderr)
    assert "cannot be reached" in line and "s3cret" not in line and "127.0.0.1:1" in line

    rotated = _run(
        sys.executable,
        str(ROOT / "run_bot.py"),
        "rotate-key",
        env=_env(tmp_path, DATABASE_URL=UNREACHABLE_PG),
        cwd=tmp_path,
    )
    assert rotated.returncode == 2 and "cannot be reached" in _one_sentence(rotated.stderr)

    migrated = _run(
        str(Path(sys.executable).parent / "alembic"),
        "upgrade",
        "head",
        env=_env(tmp_path, DATABASE_URL=UNREACHABLE_PG),
        cwd=ROOT,
    )
    assert migrated.returncode == 1
    line = _one_sentence(migrated.stderr)
    assert line.startswith("alembic: The database at") and "cannot be reached" in line
    assert "s3cret" not in line


def test_rotate_key_reminds_to_back_up_the_new_key_file(tmp_path: Path) -> None:
    env = _env(tmp_path)
    run_bot = (sys.executable, str(ROOT / "run_bot.py"))
    assert _run(*run_bot, "init", env=env, cwd=tmp_path).returncode == 0
    rotated = _run(*run_bot, "rotate-key", env=env, cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert f"Back up the new key file {tmp_path / 'suara.key'}" in rotated.stdout


def test_the_bot_runs_on_uvloop_where_it_is_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    from bot.wiring.runner import run

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert run(loop_type()) is uvloop.Loop
