"""The one setting storage needs, read as the bot reads all of its settings.

`alembic upgrade head` runs the migrations with nothing but storage: it reads DATABASE_URL
from the environment or `.env` here. The bot's settings extend this class, so the name, the
default and the check are written once.
"""

from __future__ import annotations

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/suara.db"


class DatabaseSettings(BaseSettings):
    """Names match the environment variables, case-insensitively."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


def first_problem(error: ValidationError) -> str:
    """The first invalid setting as one sentence, without its value."""
    first = error.errors()[0]
    name = ".".join(str(part) for part in first["loc"]).upper() or "settings"
    message = first["msg"].removeprefix("Value error, ")
    return f"Setting {name} is invalid: {message}."


def database_url() -> str:
    """DATABASE_URL, or SystemExit with one sentence when it is invalid."""
    try:
        return DatabaseSettings().database_url
    except ValidationError as error:
        raise SystemExit(first_problem(error)) from None
