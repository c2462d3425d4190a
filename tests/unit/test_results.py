"""Results against hand-computed fixtures, on a real database: empty periods, skipped optional
questions, abandoned sessions, two survey versions with different rating scales, a branch in
WIT and one in WIB on the same UTC day, and erased customers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.devtools.example import load_example
from bot.services.access import Scope
from bot.services.results import BadPeriod, Period, Results
from bot.services.staff import StaffAccess
from bot.services.surveys import SurveyCatalog
from flows.schema import load_survey, localized
from storage import orgs
from storage import results as rollups
from storage.crypto import Keyring
from storage.db import Database
from storage.models import answers, customers, survey_sessions

ROOT = Path(__file__).resolve().parents[2]
JAKARTA = ZoneInfo("Asia/Jakarta")


def test_periods_are_parsed_and_refused() -> None:
    today = date(2026, 11, 30)
    assert Period.parse(None, today) == Period(date(2026, 11, 1), today)
    assert Period.parse("7d", today) == Period(date(2026, 11, 24), today)
    assert Period.parse("2026-10", today) == Period(date(2026, 10, 1), date(2026, 10, 31))
    assert Period.parse("2026-12", today) == Period(date(2026, 12, 1), date(2026, 12, 31))
    assert Period.parse("2026-10-05..2026-10-06", today).days == 2
    assert Period.parse("2026-10", today).previous() == Period(date(2026, 8, 31), date(2026, 9, 30))
    for bad in (
        "0d",
        "1000d",
        "2026-13",
        "2026-10-06..2026-10-05",
        "yesterday",
        "2026-02-30..2026-03-01",
    ):
        with pytest.raises(BadPeriod):
            Period.parse(bad, today)


class Fixture:
    """Sessions and answers written straight into the tables, at chosen times."""

    def __init__(self, db: Database, catalog: SurveyCatalog) -> None:
        self.db = db
        self.catalog = catalog
        self.customer = 0

    async def session(
        self,
        branch: str,
        survey_id: int,
        started: datetime,
        *,
        completed: datetime | None = None,
        reached: str | None = None,
        values: dict[str, object] | None = None,
        erased: bool = False,
    ) -> None:
        async with self.db.transaction() as connection:
            found = await orgs.branch_by_code(connection, branch)
            assert found is not None
            self.customer += 1
            customer = (
                await connection.execute(
                    sa.insert(customers).values(
                        telegram_id=None if erased else 70_000 + self.customer,
                        erased_at=started if erased else None,
                    )
                )
            ).inserted_primary_key[0]
            session_id = (
                await connection.execute(
                    sa.insert(survey_sessions).values(
                        customer_id=customer,
                        survey_id=survey_id,
                        branch_id=found.id,
                        status="completed" if completed else "abandoned",
                        state="{}",
                        reached=reached,
                        started_at=started,
                        updated_at=completed or started,
                        completed_at=completed,
                    )
                )
            ).inserted_primary_key[0]
            for question, value in (values or {}).items():
                kind = {"csat": "rating", "nps": "nps", "main_reason": "choice"}[question]
                await connection.execute(
                    sa.insert(answers).values(
                        session_id=session_id,
                        question_id=question,
                        question_type=kind,
                        value_number=None if value is None or kind == "choice" else float(value),  # type: ignore[arg-type]
                        value_choice=value if kind == "choice" else None,
                        skipped=value is None,
                        answered_at=completed,
                    )
                )


@pytest.fixture
async def fixture(db: Database, keyring: Keyring) -> tuple[Results, Fixture, int, int]:
    catalog = SurveyCatalog(db)
    text = (ROOT / "surveys" / "branch_service.yaml").read_text()
    v1, _ = await catalog.register(load_survey(text), text)
    ten = text.replace("scale: 5", "scale: 10")
    v2, _ = await catalog.register(load_survey(ten), ten)
    async with db.transaction() as connection:
        await load_example(connection)
    staff = StaffAccess(db, issuer="Suara", session_hours=8)
    return Results(db, catalog, staff, JAKARTA), Fixture(db, catalog), v1.id, v2.id


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def test_figures_match_hand_computed_ones(fixture: tuple[Results, Fixture, int, int]) -> None:
    results, add, v1, v2 = fixture
    # 2026-10-31 16:30 UTC is 23:30 WIB on 31 October, but 01:30 WIT on 1 November.
    edge = utc(2026, 10, 31, 16, 30)
    await add.session("JKT01", v1, edge, completed=edge, values={"csat": 5, "nps": 10})  # Oct
    await add.session("JYP01", v1, edge, completed=edge, values={"csat": 1, "nps": 0})  # Nov
    nov = utc(2026, 11, 10, 3)
    # JKT01 in November: v1 on 1..5, v2 on 1..10; an optional answer skipped; an erased one.
    await add.session(
        "JKT01", v1, nov, completed=nov, values={"csat": 4, "nps": 9, "main_reason": "staff"}
    )
    await add.session(
        "JKT01", v2, nov, completed=nov, values={"csat": 9, "nps": 7, "main_reason": None}
    )
    await add.session("JKT01", v2, nov, completed=nov, values={"csat": 2, "nps": None}, erased=True)
    await add.session("JKT01", v1, nov, reached="nps")  # abandoned at the NPS question
    await add.session("JKT01", v2, nov, reached="nps")
    await add.session("BDG01", v1, nov, reached="csat")

    async with add.db.transaction() as connection:  # the rows went in behind the service
        await rollups.rebuild(connection)
    november = await results.for_operator("all", "2026-11")
    s = november.scores
    assert (s.started, s.responses) == (7, 4)  # the WIT edge response, 3 at JKT01 (one erased)
    assert s.completion_rate == pytest.approx(4 / 7)
    # NPS answers: 0 (JYP01), 9, 7 (the erased customer's answer was skipped): 1 promoter,
    # 1 passive, 1 detractor.
    assert (s.nps.count, s.nps.promoters, s.nps.passives, s.nps.detractors) == (3, 1, 1, 1)
    assert s.nps.score == pytest.approx(0.0)
    by_scale = {line.scale: line.summary for line in s.csat}
    assert by_scale[5].count == 2 and by_scale[5].mean == pytest.approx(2.5)  # 1 and 4
    assert by_scale[5].top2_share == pytest.approx(0.5)
    assert by_scale[10].count == 2 and by_scale[10].mean == pytest.approx(5.5)  # 9 and 2
    assert by_scale[10].top2_share == pytest.approx(0.5)  # 9 is in the top two of 10
    assert dict(s.drop_off) == {
        _question("nps"): 2,
        _question("csat"): 1,
    }
    assert dict(s.choices)[_question("main_reason")] == (("Staff were not friendly", 1),)

    by_code = {b.code: b for b in november.branches}
    assert by_code["JYP01"].scores.responses == 1 and by_code["JKT01"].scores.responses == 3
    assert all(b.small_sample for b in november.branches)  # fewer than 30 each

    october = await results.for_operator("JKT01", "2026-10")
    assert october.scope == Scope("branch", "JKT01")
    assert october.scores.responses == 1 and october.scores.nps.score == pytest.approx(100.0)
    assert november.previous.responses == 1  # October: the WIB edge response only

    empty = await results.for_operator("TIM", "2026-09")
    assert empty.scores.responses == 0 and empty.scores.nps.score is None
    assert empty.scores.completion_rate is None and empty.scores.csat == ()
    json = empty.to_json()
    assert json["scope"] == "region:TIM" and json["period"] == {
        "from": "2026-09-01",
        "to": "2026-09-30",
    }
    assert {"responses", "completion_rate", "nps", "csat", "ces", "drop_off", "branches"} <= set(
        json
    )


def _question(question_id: str) -> str:
    survey = load_survey((ROOT / "surveys" / "branch_service.yaml").read_text())
    return localized(survey.question(question_id).text, "en", "id")
