"""The handler context: python-telegram-bot's, plus typed access to Suara's services."""

from __future__ import annotations

from telegram.ext import CallbackContext, ExtBot

from bot.wiring.services import Services

SERVICES_KEY = "services"
ALERTS_JOB = "follow-ups"  # the job that sends alerts; a completion wakes it


class Context(CallbackContext[ExtBot[None], dict, dict, dict]):  # type: ignore[type-arg]
    @property
    def services(self) -> Services:
        return self.application.bot_data[SERVICES_KEY]  # type: ignore[no-any-return]
