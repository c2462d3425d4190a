"""The services one running bot shares across handlers, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from bot.services.campaigns import Campaigns
from bot.services.conversation import Conversations
from bot.services.personal_data import PersonalData
from bot.services.sender import Sender
from bot.services.staff import StaffAccess
from bot.services.surveys import SurveyCatalog
from bot.transport.pacing import Pacer
from bot.wiring.config import Settings
from storage.db import Database


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    catalog: SurveyCatalog
    conversations: Conversations
    pacer: Pacer
    personal_data: PersonalData
    staff: StaffAccess
    campaigns: Campaigns
    sender: Sender
