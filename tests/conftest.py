"""Shared fixtures: a fresh migrated database per test, keys, settings.

The database is SQLite by default; `SUARA_TEST_DATABASE=postgres` runs the same tests on the
PostgreSQL server at `SUARA_TEST_PG_URL`. Without a reachable server those tests skip with the
reason, except on CI (`CI=true`), where a missing database is a failure.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.wiring.config import Settings, load_settings
from storage.crypto import Keyring, generate_key_material, set_keyring
from storage.db import Database

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("SUARA_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKEND = os.environ.get("SUARA_TEST_DATABASE", "sqlite")
ON_CI = os.environ.get("CI", "").lower() == "true"
_counter = itertools.count()


def _pg_admin_url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def _pg_execute(*statements: str) -> None:
    import asyncpg

    url = make_url(PG_URL)
    connection = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
        timeout=5,
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await database.upgrade()
    finally:
        await database.dispose()


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        asyncio.run(_pg_execute("SELECT 1"))
    except Exception as error:  # any failure to connect means: no server here
        return f"PostgreSQL at {PG_URL} is not reachable ({error.__class__.__name__})"
    return None


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database each test copies; built once per run."""
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("template") / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
        yield str(path)
        return
    reason = postgres_unavailable()
    if reason:
        if ON_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"suara_tmpl_{os.getpid()}"
    asyncio.run(_pg_execute(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"))
    asyncio.run(_migrate(_pg_admin_url(name)))
    yield name
    asyncio.run(_pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
async def database_url(template_database: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated, empty database for one test."""
    if BACKEND == "sqlite":
        path = tmp_path / "suara.db"
        shutil.copy(template_database, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"suara_t_{os.getpid()}_{next(_counter)}"
    await _pg_execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    yield _pg_admin_url(name)
    await _pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    ring = Keyring(generate_key_material())
    set_keyring(ring)
    yield ring
    set_keyring(None)


@pytest.fixture
async def db(database_url: str, keyring: Keyring) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        _env_file=None,
        bot_token="123456:TEST-TOKEN",
        database_url=database_url,
        surveys_dir=ROOT / "surveys",
        privacy_notice_file=ROOT / "locales" / "privacy_notice.yaml",
        key_file=tmp_path / "suara.key",
        concurrent_updates=8,
    )


@pytest.fixture
async def empty_database_url(template_database: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no schema at all, for migration tests."""
    if BACKEND == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"suara_e_{os.getpid()}_{next(_counter)}"
    await _pg_execute(f"CREATE DATABASE {name}")
    yield _pg_admin_url(name)
    await _pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
