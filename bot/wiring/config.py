"""Settings, read once at start-up from the environment or `.env`.

Every setting has a safe default except the bot token; a bad value stops start-up with one
clear sentence (`ConfigError`), never a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator

from bot.errors import ConfigError
from storage.settings import DatabaseSettings, first_problem

LOCALES = ("id", "en")


class Settings(DatabaseSettings):
    """Suara's configuration; names match the environment variables, case-insensitively.
    DATABASE_URL and how settings are read come from storage.settings."""

    bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    default_locale: Literal["id", "en"] = "id"
    timezone: str = "Asia/Jakarta"
    surveys_dir: Path = Path("surveys")
    privacy_notice_file: Path = Path("locales/privacy_notice.yaml")
    default_survey: str = Field(default="branch_service", pattern=r"^[a-z0-9_]{1,32}$")

    encryption_keys: SecretStr | None = None
    hash_key: SecretStr | None = None
    key_file: Path = Path("data/suara.key")

    webhook_url: str | None = None
    webhook_secret: SecretStr | None = Field(default=None)
    listen_host: str = "0.0.0.0"
    listen_port: int = Field(default=8443, ge=1, le=65535)

    send_rate: float = Field(default=30.0, gt=0, le=1000)
    per_chat_rate: float = Field(default=1.0, gt=0, le=30)
    per_chat_burst: float = Field(default=3.0, ge=1, le=30)
    concurrent_updates: int = Field(default=16, ge=1, le=256)
    workers: int = Field(default=1, ge=1, le=16)  # webhook processes; several need PostgreSQL
    retention_days: int = Field(default=365, ge=1, le=3650)
    purge_time: str = "02:30"
    resubmit_after_hours: int = Field(default=24, ge=0, le=24 * 365)
    db_statement_timeout: float = Field(default=30.0, ge=0, le=3600)  # seconds; 0: none
    db_lock_timeout: float = Field(default=5.0, ge=0, le=3600)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    totp_issuer: str = Field(default="Suara", min_length=1, max_length=40, pattern=r"^[^:]+$")
    staff_session_hours: float = Field(default=8.0, gt=0, le=24 * 7)

    survey_cooldown_days: int = Field(default=30, ge=0, le=3650)  # 0: no cap across campaigns
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # /metrics when polling
    # An unresolved follow-up goes to its region's admins after this many hours.
    follow_up_escalate_hours: float = Field(default=48.0, gt=0, le=24 * 90)

    @field_validator("bot_token")
    @classmethod
    def _token_given(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty; set the token from @BotFather, or remove the line")
        return value

    @field_validator("purge_time")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ValueError("is not a time of day; use HH:MM, such as 02:30")
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// address")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a known time zone such as Asia/Jakarta") from None
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("must be 1 to 256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings, turning the first problem into one sentence."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(first_problem(error)) from None
