"""The services one running bot shares across handlers, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.conversation import Conversations
from bot.pacing import Pacer
from bot.personal_data import PersonalData
from bot.surveys import SurveyCatalog
from storage.db import Database


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    catalog: SurveyCatalog
    conversations: Conversations
    pacer: Pacer
    personal_data: PersonalData
