"""Results against hand-computed fixtures, on a real database: empty periods, skipped optional
questions, abandoned sessions, two survey versions with different rating scales, a branch in
WIT and one in WIB on the same UTC day, and erased customers."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.devtools.example import load_example
from bot.services.access import Org, Scope
from bot.services.results import BadPeriod, Period, Results, windows_for
from bot.services.staff import StaffAccess
from bot.services.surveys import SurveyCatalog
from flows.schema import load_survey, localized
from storage import orgs, sessions
from storage import results as rollups
from storage.crypto import Keyring
from storage.db import Database
from storage.models import answers, customers, rollup_weeks, survey_sessions
from storage.results import Figures

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
        still_open: bool = False,
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
                        status="completed" if completed else "open" if still_open else "abandoned",
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


def test_periods_read_whole_weeks_and_their_edge_days() -> None:
    """Every local day of a period is counted exactly once: from the weekly row of a week
    inside it (less the daily rows of that week's days outside), or from its daily row."""
    for start in range(14):  # every weekday, twice
        first = date(2026, 10, 19) + timedelta(days=start)
        for days in range(1, 46):
            last = first + timedelta(days=days - 1)
            covered: Counter[date] = Counter()
            for table, since, until, sign in rollups.spans(first, last):
                step = 7 if table is rollup_weeks else 1
                length = 7 if table is rollup_weeks else 1
                assert since <= until and (step == 1 or since.weekday() == until.weekday() == 0)
                for d in range(0, (until - since).days + 1, step):
                    for k in range(length):
                        covered[since + timedelta(days=d + k)] += sign
            expected = Counter(first + timedelta(days=d) for d in range(days))
            assert +covered == expected and -covered == Counter(), (first, last)
            units = sum(
                (u - s).days // 7 + 1 if t is rollup_weeks else (u - s).days + 1
                for t, s, u, _sign in rollups.spans(first, last)
            )
            assert units <= days and units <= (days + 6) // 7 + 8  # fewer rows than days


def _raw_figures(raw: Counter[rollups.Row], ids: set[int], first: date, last: date) -> Figures:
    """Figures summed straight from raw-table counts of the days [first, last]."""
    found = Figures()
    for (day, branch, survey, metric, question, value), count in raw.items():
        if branch not in ids or not first <= day <= last:
            continue
        if metric == "started":
            found.started[branch] += count
        elif metric == "completed":
            found.completed[branch] += count
        elif metric in rollups.SCORED:
            found.scores[branch, survey, question, metric, int(value)] += count
        elif metric == rollups.STOPPED:
            found.stopped[branch, survey, question] += count
        else:
            found.choices[branch, survey, question, value] += count
    return found


async def test_weekly_and_daily_rollups_agree_with_raw_counts_over_any_period(
    fixture: tuple[Results, Fixture, int, int],
) -> None:
    """Responses around local midnights in WIB, WITA and WIT over six weeks that cross a month:
    every period, starting and ending on any weekday, reads from weekly and daily roll-ups
    exactly what the raw sessions and answers give, and drop-off counts every unfinished
    session once, whether it ended (rolled up) or is still open (read from the sessions)."""
    _results, add, v1, v2 = fixture
    rnd = random.Random(12)
    begin = utc(2026, 10, 10)
    unfinished: list[tuple[str, int, datetime, str]] = []
    for _ in range(90):
        hour = rnd.choice((14, 15, 16, 17, 3, 9)) if rnd.random() < 0.7 else rnd.randrange(24)
        started = begin + timedelta(days=rnd.randrange(42), hours=hour, minutes=rnd.randrange(60))
        branch, survey = rnd.choice(("JKT01", "BDG01", "MKS01", "JYP01")), rnd.choice((v1, v2))
        if rnd.random() < 0.3:  # ended unfinished (rolled up), or still open (read live)
            reached = rnd.choice(("csat", "nps"))
            still_open = rnd.random() < 0.3
            await add.session(branch, survey, started, reached=reached, still_open=still_open)
            unfinished.append((branch, survey, started, reached))
            continue
        done = started + timedelta(minutes=rnd.choice((2, 50)))
        values = {
            "csat": rnd.randint(1, 5),
            "nps": rnd.choice((None, rnd.randint(0, 10))),
            "main_reason": rnd.choice((None, "staff", "waiting")),
        }
        await add.session(branch, survey, started, completed=done, values=values)

    async with add.db.transaction() as connection:
        await rollups.rebuild(connection)
        org = Org.of(await orgs.all_regions(connection), await orgs.all_branches(connection))
        raw: Counter[rollups.Row] = Counter()
        for zone in {b.timezone for b in org.branches.values()}:
            ids = [b.id for b in org.branches.values() if b.timezone == zone]
            raw += await rollups.raw_counts(connection, zone, ids)
        assert await connection.scalar(sa.select(sa.func.count()).select_from(rollup_weeks))

    periods = [
        Period(date(2026, 10, 14), date(2026, 11, 12)),  # Wednesday to Thursday, 30 days
        Period(date(2026, 11, 1), date(2026, 11, 30)),  # a month: Sunday to Monday
        Period(date(2026, 10, 19), date(2026, 11, 1)),  # two whole weeks, Monday to Sunday
        Period(date(2026, 10, 31), date(2026, 11, 1)),  # across the month, no whole week
        Period(date(2026, 10, 20), date(2026, 10, 25)),  # Tuesday to Sunday
        Period(date(2026, 10, 26), date(2026, 10, 26)),  # one Monday
    ]
    scopes = [list(org.branches.values()), [org.branches["JYP01"]], [org.branches["MKS01"]]]
    async with add.db.engine.connect() as connection:
        for period in periods:
            for branches in scopes:
                ids = {b.id for b in branches}
                now, before = await rollups.figures_of(
                    connection,
                    [windows_for(branches, period), windows_for(branches, period.previous())],
                )
                previous = period.previous()
                expected_now = _raw_figures(raw, ids, period.first, period.last)
                expected_before = _raw_figures(raw, ids, previous.first, previous.last)
                stopped = [
                    Counter(
                        (org.branches[code].id, survey, reached)
                        for code, survey, at, reached in unfinished
                        if org.branches[code].id in ids
                        and p.first
                        <= at.astimezone(ZoneInfo(org.branches[code].timezone)).date()
                        <= p.last
                    )
                    for p in (period, previous)
                ]
                assert (now.stopped, before.stopped) == tuple(stopped)
                for field in ("started", "completed", "scores", "choices"):
                    assert getattr(now, field) == getattr(expected_now, field), (period, field)
                    assert getattr(before, field) == getattr(expected_before, field), period
                nps_days: Counter[tuple[date, int]] = Counter()  # by 7-day step of the period
                for (day, branch, _s, metric, _q, value), count in raw.items():
                    if metric == "nps" and branch in ids and period.first <= day <= period.last:
                        step = period.first + timedelta(days=(day - period.first).days // 7 * 7)
                        nps_days[step, int(value)] += count
                assert now.nps_days == nps_days and not before.nps_days
                _now, whole = await rollups.figures_of(
                    connection,
                    [windows_for(branches, period), windows_for(branches, previous)],
                    totals_only={1},
                )
                assert whole.started == Counter({0: expected_before.started.total()})
                for field in ("scores", "choices", "stopped"):
                    summed: Counter[tuple[object, ...]] = Counter()
                    for key, n in getattr(before, field).items():
                        summed[(0, *key[1:])] += n
                    assert getattr(whole, field) == summed, (period, field)
    assert sum(raw[key] for key in raw if key[3] == "completed") > 50


async def test_a_session_ended_unfinished_is_counted_where_it_stopped_as_a_rebuild_does(
    fixture: tuple[Results, Fixture, int, int],
) -> None:
    """Ending an open session (here as a restart on another survey does) counts it in the
    roll-ups by the question it reached, exactly as `rebuild` counts it from the sessions."""
    _results, add, v1, _v2 = fixture

    async def table() -> list[tuple[object, ...]]:
        async with add.db.transaction() as connection:
            rows = await connection.execute(sa.select(rollups.rollups).order_by(*rollups.rollups.c))
            return [tuple(row) for row in rows]

    async with add.db.transaction() as connection:
        branch = await orgs.branch_by_code(connection, "JYP01")
        assert branch is not None
        customer = (
            await connection.execute(sa.insert(customers).values(telegram_id=71_001))
        ).inserted_primary_key[0]
        at = datetime(2026, 3, 2, 9, tzinfo=UTC)
        opened = await sessions.create(
            connection, customer, v1, branch.id, {"current": "nps"}, at=at
        )
        await sessions.save(connection, opened, status=sessions.ABANDONED, at=at)
    kept = await table()
    assert [row[3:] for row in kept if row[3] == rollups.STOPPED] == [
        (rollups.STOPPED, "nps", "", 1)
    ]
    async with add.db.transaction() as connection:
        await rollups.rebuild(connection)
    assert await table() == kept
