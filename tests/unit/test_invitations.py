"""Invitations and response rates against hand-computed figures, on a real database: campaign
invitations settled by the sender's own storage calls, responses completed through the
answer path's own `complete`, a branch in WIT and one in WIB on the same UTC moment, a
customer who answers twice, one who was never invited, and a campaign's own period."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.devtools.example import load_example
from bot.services.access import Org, Scope
from bot.services.results import BadCampaign, Results
from bot.services.staff import Refused, StaffAccess
from bot.services.surveys import SurveyCatalog
from bot.wiring.cli import main
from flows.schema import load_survey
from storage import campaigns, orgs
from storage import results as rollups
from storage import sessions as session_store
from storage.crypto import Keyring
from storage.db import Database
from storage.models import customers
from storage.models import rollups as rollup_rows

ROOT = Path(__file__).resolve().parents[2]
JAKARTA = ZoneInfo("Asia/Jakarta")
ANSWERS = [("csat", "rating", 5), ("nps", "nps", 9)]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


ANSWERED_AT = utc(2026, 11, 5)  # a campaign's own period counts its sessions whenever they ran


class World:
    def __init__(self, db: Database, survey_id: int) -> None:
        self.db = db
        self.survey_id = survey_id

    async def customer(self, branch: str) -> int:
        async with self.db.transaction() as connection:
            found = await orgs.branch_by_code(connection, branch)
            assert found is not None
            result = await connection.execute(
                sa.insert(customers).values(branch_id=found.id, telegram_id=None)
            )
            return int(result.inserted_primary_key[0])

    async def campaign(self, scope: str, started: datetime) -> int:
        async with self.db.transaction() as connection:
            return await campaigns.create(
                connection,
                name=f"Q4 {scope}",
                survey_id=self.survey_id,
                scope=scope,
                status=campaigns.RUNNING,
                created_by="system",
                created_at=started,
                started_at=started,
                expires_at=utc(2026, 11, 20),
            )

    async def invite(self, campaign: int, sent: dict[int, datetime | None]) -> None:
        """Invitations to these customers, settled as the sender settles a batch (None:
        the delivery failed)."""
        async with self.db.transaction() as connection:
            await campaigns.add_deliveries(
                connection, campaign, list(sent), campaigns.INVITE, utc(2026, 10, 1)
            )
            d = campaigns.campaign_deliveries.c
            rows = await connection.execute(
                sa.select(d.id, d.customer_id).where(d.campaign_id == campaign)
            )
            ids = {customer: delivery for delivery, customer in rows}
            await campaigns.settle(
                connection,
                [
                    campaigns.Settled(
                        ids[customer],
                        campaigns.FAILED if at is None else campaigns.SENT,
                        at or utc(2026, 10, 1),
                    )
                    for customer, at in sent.items()
                ],
            )

    async def answer(self, customer: int, branch: str, campaign: int, *, finish: bool) -> None:
        async with self.db.transaction() as connection:
            found = await orgs.branch_by_code(connection, branch)
            assert found is not None
            session = await session_store.create(
                connection,
                customer,
                self.survey_id,
                found.id,
                {"current": "nps"},
                campaign_id=campaign,
                at=ANSWERED_AT,
            )
            if finish:
                await session_store.complete(connection, session, ANSWERS, at=ANSWERED_AT)
            else:
                await session_store.save(
                    connection, session, status=session_store.ABANDONED, at=ANSWERED_AT
                )


@pytest.fixture
async def world(db: Database, keyring: Keyring) -> tuple[Results, World]:
    catalog = SurveyCatalog(db)
    text = (ROOT / "surveys" / "branch_service.yaml").read_text()
    pinned, _ = await catalog.register(load_survey(text), text)
    async with db.transaction() as connection:
        await load_example(connection)
    staff = StaffAccess(db, issuer="Suara", session_hours=8)
    return Results(db, catalog, staff, JAKARTA), World(db, pinned.id)


async def _table(db: Database) -> list[tuple[object, ...]]:
    async with db.transaction() as connection:
        rows = await connection.execute(sa.select(rollup_rows).order_by(*rollup_rows.c))
        return [tuple(row) for row in rows]


async def test_invitations_and_response_rates_match_hand_computed_ones(
    world: tuple[Results, World],
) -> None:
    results, w = world
    ani, budi, dedi, eka = [await w.customer("JKT01") for _ in range(4)]
    citra = await w.customer("JYP01")
    fajar = await w.customer("BDG01")
    gita = await w.customer("JKT01")  # never invited: opens a forwarded invitation link
    bank = await w.campaign("all", utc(2026, 10, 31, 16))
    # 2026-10-31 16:30 UTC is 31 October in Jakarta (WIB) but 1 November in Jayapura (WIT).
    edge = utc(2026, 10, 31, 16, 30)
    await w.invite(
        bank,
        {ani: edge, budi: edge, citra: edge, fajar: utc(2026, 11, 10, 3), dedi: None, eka: None},
    )
    await w.answer(ani, "JKT01", bank, finish=True)
    await w.answer(ani, "JKT01", bank, finish=True)  # a second response counts once
    await w.answer(budi, "JKT01", bank, finish=False)  # stopped at the NPS question
    await w.answer(citra, "JYP01", bank, finish=True)
    await w.answer(gita, "JKT01", bank, finish=True)
    east = await w.campaign("region:TIM", utc(2026, 11, 2))
    await w.invite(east, {citra: utc(2026, 11, 2, 1)})

    kept = await _table(w.db)
    async with w.db.transaction() as connection:
        await rollups.rebuild(connection)
    assert await _table(w.db) == kept  # the sender's and the answer path's roll-ups are exact

    october = await results.for_operator("all", "2026-10")
    # October: Ani and Budi at JKT01 (WIB); Ani answered.
    assert (october.scores.invitations, october.scores.invitations_answered) == (2, 1)
    assert october.scores.response_rate == pytest.approx(0.5)
    november = await results.for_operator("all", "2026-11")
    # November: Citra at JYP01 (WIT, 1 Nov) answered, Fajar at BDG01 did not, and Citra's
    # second invitation (the TIM campaign) was not answered.
    s = november.scores
    assert (s.invitations, s.invitations_answered) == (3, 1)
    assert s.response_rate == pytest.approx(1 / 3)
    by_code = {b.code: b.scores for b in november.branches}
    assert (by_code["JYP01"].invitations, by_code["JYP01"].response_rate) == (2, 0.5)
    assert (by_code["BDG01"].invitations, by_code["BDG01"].response_rate) == (1, 0.0)
    assert (by_code["JKT01"].invitations, by_code["JKT01"].response_rate) == (0, None)
    figures = november.to_json()
    assert (figures["invitations"], figures["response_rate"]) == (3, pytest.approx(1 / 3))
    jyp = next(b for b in figures["branches"] if b["code"] == "JYP01")
    assert (jyp["invitations"], jyp["invitations_answered"], jyp["response_rate"]) == (2, 1, 0.5)

    # The campaign's own period: its sessions and invitations only, whenever they happened.
    whole = await results.for_operator(None, f"campaign {bank}")
    c = whole.scores
    assert whole.campaign is not None and whole.campaign.id == bank
    assert (c.invitations, c.invitations_answered) == (4, 2)  # Ani and Citra of four sent
    assert (c.started, c.responses) == (5, 4)  # Ani twice, Citra, and Gita (not invited)
    assert c.nps.count == 4 and c.nps.promoters == 4
    assert dict(c.drop_off) and sum(n for _q, n in c.drop_off) == 1  # Budi, at NPS
    assert whole.to_json()["period"]["campaign"] == {"id": bank, "name": "Q4 all"}
    assert whole.to_json()["previous"] is None

    jakarta = await results.for_operator("JKT01", f"campaign {bank}")
    assert (jakarta.scores.invitations, jakarta.scores.invitations_answered) == (2, 1)
    assert jakarta.scores.responses == 3 and [b.code for b in jakarta.branches] == ["JKT01"]

    # A campaign that reaches no branch of the scope is refused, as is one that does not exist.
    async with w.db.transaction() as connection:
        org = await Org.load(connection)
        outside = await results.campaign_summary(
            connection, org, Scope("branch", "JKT01"), east, utc(2026, 11, 30), "en"
        )
        missing = await results.campaign_summary(
            connection, org, Scope("all"), 999, utc(2026, 11, 30), "en"
        )
    assert isinstance(outside, Refused) and outside.reason == "scope"
    assert isinstance(missing, Refused) and missing.reason == "unknown_campaign"
    with pytest.raises(BadCampaign):
        await results.for_operator("JKT01", f"campaign {east}")


@pytest.mark.usefixtures("env")
async def test_the_command_line_prints_invitations_and_refuses_an_unknown_campaign(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    assert await asyncio.to_thread(main, ["results", "--period", "7d", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert (figures["invitations"], figures["response_rate"]) == (0, None)
    assert await asyncio.to_thread(main, ["results", "--period", "campaign 12"]) == 2
    err = capsys.readouterr().err
    assert "'campaign 12' names no campaign" in err and "Traceback" not in err
