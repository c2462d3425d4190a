"""The services one running bot shares across handlers, built once by the app factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.services.campaigns import Campaigns
from bot.services.conversation import Conversations
from bot.services.customer_lists import CustomerLists
from bot.services.exports import Exports
from bot.services.follow_up import FollowUps
from bot.services.library import SurveyLibrary
from bot.services.personal_data import PersonalData
from bot.services.results import Results
from bot.services.sender import Sender
from bot.services.staff import StaffAccess
from bot.services.surveys import SurveyCatalog
from bot.transport.pacing import Pacer
from bot.wiring.config import Settings
from bot.wiring.logs import FaultTally
from storage.db import Database


def _database_outages() -> FaultTally:
    return FaultTally(logging.getLogger("suara"), "the database is unavailable")


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    catalog: SurveyCatalog
    conversations: Conversations
    pacer: Pacer
    personal_data: PersonalData
    staff: StaffAccess
    results: Results
    exports: Exports
    library: SurveyLibrary
    customer_lists: CustomerLists
    campaigns: Campaigns
    sender: Sender
    follow_ups: FollowUps
    outages: FaultTally = field(default_factory=_database_outages)
