"""The customer's rights over their data (UU PDP No. 27/2022): see it, erase it; and retention.

Erasure and retention remove identifiers and free text but keep rated answers, detached from
the person, so every summary stays what it was. Each exercise of a right is audited by the
customer's internal id only — never the data that was erased.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services.clock import Clock, system_clock
from bot.services.conversation import answers_so_far
from bot.services.surveys import SurveyCatalog
from bot.wiring.config import Settings
from storage import audit
from storage import campaigns as campaign_store
from storage import customers as customer_store
from storage import follow_ups as follow_up_store
from storage import sessions as session_store
from storage.db import Database

log = logging.getLogger(__name__)


def _moment(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass(frozen=True)
class PurgePlan:
    """What retention removes: counts only, so it can be shown for a dry run."""

    cutoff: datetime
    customers: int
    free_text_answers: int
    open_sessions: int


class PersonalData:
    def __init__(
        self,
        db: Database,
        catalog: SurveyCatalog,
        settings: Settings,
        clock: Clock = system_clock,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._settings = settings
        self.clock = clock

    async def export(self, telegram_id: int) -> dict[str, Any] | None:
        """Everything stored about this customer, as JSON-ready data; None if nothing is."""
        async with self._db.transaction() as connection:
            customer = await customer_store.by_telegram_id(connection, telegram_id)
            if customer is None:
                return None
            profile = await customer_store.profile(connection, customer.id)
            assert profile is not None
            consents = await customer_store.consent_history(connection, customer.id)
            follow_ups = await follow_up_store.for_customer(connection, customer.id)
            surveys = [
                await self._survey(connection, s, follow_ups.get(s.id))
                for s in await session_store.for_customer(connection, customer.id)
            ]
            received = await campaign_store.received_by(connection, customer.id)
            await audit.append(
                connection, f"customer:{customer.id}", "customer.export", at=self.clock()
            )
        return {
            "profile": {
                "telegram_id": customer.telegram_id,
                "name": profile.name,
                "phone": profile.phone,
                "customer_ref": profile.ref,
                "language": customer.locale,
                "branch_id": customer.branch_id,
                "opted_out": customer.opted_out,
                "first_seen": profile.created_at.isoformat(),
                "last_active": profile.last_active_at.isoformat(),
            },
            "consents": [
                {"version": c.version, "decision": c.decision, "at": c.at.isoformat()}
                for c in consents
            ],
            "surveys": surveys,
            "invitations": [
                {
                    "campaign": r.campaign,
                    "kind": r.kind,
                    "status": r.status,
                    "due_at": r.due_at.isoformat(),
                    "sent_at": _moment(r.sent_at),
                }
                for r in received
            ],
        }

    async def _survey(
        self,
        connection: AsyncConnection,
        session: session_store.Session,
        follow_up: follow_up_store.FollowUp | None,
    ) -> dict[str, Any]:
        pinned = await self._catalog.pinned(connection, session.survey_id)
        return {
            "survey": pinned.survey.id,
            "version": pinned.version,
            "status": session.status,
            "completed_at": _moment(session.completed_at),
            "answers": await answers_so_far(connection, session),
            "may_contact": session.contact_consent,
            "follow_up": None
            if follow_up is None
            else {
                "status": follow_up.status,
                "opened_at": follow_up.created_at.isoformat(),
                "resolved_at": _moment(follow_up.resolved_at),
                "note": follow_up.note,
            },
        }

    async def erase(self, telegram_id: int) -> bool:
        """Erase the customer's identifiers and free text; False if nothing was stored."""
        at = self.clock()
        async with self._db.transaction() as connection:
            customer = await customer_store.by_telegram_id(connection, telegram_id)
            if customer is None:
                return False
            await self._erase(connection, customer.id, at)
            await audit.append(connection, f"customer:{customer.id}", "customer.erase", at=at)
        return True

    async def _erase(self, connection: AsyncConnection, customer_id: int, at: datetime) -> None:
        await follow_up_store.forget_notes(connection, customer_id)
        await session_store.detach_customer(connection, customer_id, at)
        await customer_store.anonymise(connection, customer_id, at)

    def _cutoff(self, at: datetime) -> datetime:
        """Data last touched before this moment has outlived the retention period."""
        return at - timedelta(days=self._settings.retention_days)

    async def plan_purge(self) -> PurgePlan:
        """What `purge` would remove now."""
        cutoff = self._cutoff(self.clock())
        async with self._db.transaction() as connection:
            return PurgePlan(
                cutoff,
                len(await customer_store.inactive_since(connection, cutoff)),
                await session_store.free_text_before(connection, cutoff),
                await session_store.open_before(connection, cutoff),
            )

    async def purge(self) -> PurgePlan:
        """Apply retention: old free text goes, inactive customers are anonymised."""
        at = self.clock()
        cutoff = self._cutoff(at)
        async with self._db.transaction() as connection:
            texts, ended = await session_store.purge_before(connection, cutoff)
            inactive = await customer_store.inactive_since(connection, cutoff)
            for customer_id in inactive:
                await self._erase(connection, customer_id, at)
            plan = PurgePlan(cutoff, len(inactive), texts, ended)
            await audit.append(
                connection,
                "system",
                "retention.purge",
                details={
                    "cutoff": cutoff.isoformat(),
                    "customers": plan.customers,
                    "free_text_answers": texts,
                    "open_sessions": ended,
                },
                at=at,
            )
        log.info(
            "retention: %d customers anonymised, %d free-text answers and %d open sessions purged",
            plan.customers,
            texts,
            ended,
        )
        return plan


def export_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str).encode()
