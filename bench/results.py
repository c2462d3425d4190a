"""`/results` over a million responses: roll-ups against the raw aggregate, SQLite and PostgreSQL.

    python -m bench.results                 # 1,000,000 responses, both databases, a few minutes
    python -m bench.results --responses 50000 --database sqlite    # a sanity run

Loads responses (8 answers each) across 50 branches in 5 regions (WIB, WITA and WIT) over 120
days straight into the tables, with 15 % more sessions abandoned part-way (`--abandoned`), builds
the roll-ups with `run_bot.py rebuild-rollups`' code, then times, in one run: the summary
`/results` computes (whole bank, one region, one branch, last 30 days, with the previous 30
days and drop-off; bank and branch again over the 30 days that read the most roll-up rows) and
the raw aggregate query over the answers table that results would need without roll-ups,
medians of several runs; and a completion's roll-up writes with and without the by-day indexes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import sqlalchemy as sa

from bot.services.access import Org, Scope
from bot.services.results import Period, Results
from bot.services.staff import StaffAccess
from bot.services.surveys import SurveyCatalog
from flows import load_survey_file
from storage import orgs
from storage import results as rollups
from storage.crypto import Keyring, generate_key_material, set_keyring
from storage.db import Database
from storage.models import answers, survey_sessions

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("SUARA_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
ZONES = ("Asia/Jakarta", "Asia/Jakarta", "Asia/Makassar", "Asia/Makassar", "Asia/Jayapura")
TODAY = date(2026, 11, 30)
QUESTIONS = (
    ("csat", "rating"),
    ("nps", "nps"),
    ("main_reason", "choice"),
    ("resolved", "yesno"),
    ("improve", "multi"),
    ("speed", "rating"),
    ("effort", "ces"),
    ("comment", "text"),
)
REASONS = ("waiting", "staff", "knowledge", "process", "facilities", "other")
IMPROVE = ("waiting_time", "friendliness", "speed", "information", "comfort", "parking")


def _answer(question: str, kind: str, rnd: random.Random) -> tuple[float | None, str | None, bool]:
    """(value_number, value_choice, skipped) for one generated answer."""
    if kind == "rating":
        return float(rnd.choice((1, 2, 3, 4, 4, 5, 5, 5))), None, False
    if kind == "nps":
        return float(rnd.choice((0, 3, 6, 7, 8, 8, 9, 9, 10, 10, 10))), None, False
    if kind == "ces":
        return float(rnd.randint(1, 7)), None, False
    if kind == "choice":
        return None, rnd.choice(REASONS), False
    if kind == "multi":
        return None, ",".join(sorted(rnd.sample(IMPROVE, rnd.randint(1, 3)))), False
    if kind == "yesno":
        return float(rnd.random() < 0.8), None, False
    return None, None, True  # free text: skipped, so no encryption is needed to load it


async def _organisation(db: Database) -> list[int]:
    async with db.transaction() as connection:
        ids = []
        for r in range(5):
            region = await orgs.ensure_region(connection, f"R{r}", f"Region {r}")
            for b in range(10):
                branch = await orgs.ensure_branch(
                    connection, f"R{r}B{b:02d}", f"Branch {r}-{b}", region, ZONES[r]
                )
                ids.append(branch.id)
    return ids


def _rows(branch_ids: list[int], survey_id: int, count: int, abandoned: float, seed: int = 7):  # type: ignore[no-untyped-def]
    """Sessions and answers in batches: (sessions, answers) lists of tuples."""
    rnd = random.Random(seed)
    start = datetime.combine(TODAY, datetime.min.time(), UTC) - timedelta(days=120)
    batch_sessions, batch_answers = [], []
    for session_id in range(1, count + 1):
        began = start + timedelta(seconds=rnd.randrange(120 * 86400))
        done = began + timedelta(minutes=2)
        batch_sessions.append(
            (
                session_id,
                None,
                survey_id,
                rnd.choice(branch_ids),
                "completed",
                "{}",
                9,
                "comment",
                began,
                done,
                done,
            )
        )
        for question, kind in QUESTIONS:
            number, choice, skipped = _answer(question, kind, rnd)
            batch_answers.append((session_id, question, kind, number, choice, None, skipped, done))
        if rnd.random() < abandoned:  # a customer who stopped part-way: counted in drop-off
            batch_sessions.append(
                (
                    count + session_id,
                    None,
                    survey_id,
                    rnd.choice(branch_ids),
                    "abandoned",
                    "{}",
                    3,
                    rnd.choice(QUESTIONS)[0],
                    began,
                    began,
                    None,
                )
            )
        if len(batch_sessions) >= 20_000:
            yield batch_sessions, batch_answers
            batch_sessions, batch_answers = [], []
    if batch_sessions:
        yield batch_sessions, batch_answers


SESSION_COLUMNS = (
    "id",
    "customer_id",
    "survey_id",
    "branch_id",
    "status",
    "state",
    "version",
    "reached",
    "started_at",
    "updated_at",
    "completed_at",
)
ANSWER_COLUMNS = (
    "session_id",
    "question_id",
    "question_type",
    "value_number",
    "value_choice",
    "value_text",
    "skipped",
    "answered_at",
)


async def _load(
    db: Database, branch_ids: list[int], survey_id: int, count: int, abandoned: float
) -> float:
    began = time.perf_counter()
    if db.is_postgres:
        url = db.engine.url
        connection = await asyncpg.connect(
            host=url.host, port=url.port or 5432, user=url.username, database=url.database
        )
        try:
            for sessions, found in _rows(branch_ids, survey_id, count, abandoned):
                await connection.copy_records_to_table(
                    "survey_sessions", records=sessions, columns=SESSION_COLUMNS
                )
                await connection.copy_records_to_table(
                    "answers", records=found, columns=ANSWER_COLUMNS
                )
            # Settled as a live database would be: autovacuum would otherwise vacuum the
            # loaded tables during the timings.
            await connection.execute("VACUUM ANALYZE")
        finally:
            await connection.close()
    else:
        import sqlite3

        plain = sqlite3.connect(db.engine.url.database)
        plain.execute("PRAGMA synchronous=OFF")

        def text(value: object) -> object:
            return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value

        for sessions, found in _rows(branch_ids, survey_id, count, abandoned):
            for table, columns, rows in (
                ("survey_sessions", SESSION_COLUMNS, sessions),
                ("answers", ANSWER_COLUMNS, found),
            ):
                marks = ",".join("?" * len(columns))
                plain.executemany(
                    f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})",
                    [tuple(text(v) for v in row) for row in rows],
                )
            plain.commit()
        plain.execute("ANALYZE")
        plain.commit()
        plain.close()
    return time.perf_counter() - began


async def _raw(db: Database, since: datetime, until: datetime) -> None:
    """The aggregate results would run without roll-ups: answers by branch and value."""
    s, a = survey_sessions.c, answers.c
    async with db.engine.connect() as connection:
        await connection.execute(
            sa.select(s.branch_id, a.question_type, a.value_number, sa.func.count())
            .select_from(survey_sessions.join(answers, a.session_id == s.id))
            .where(
                s.status == "completed",
                s.completed_at >= since,
                s.completed_at < until,
                a.question_type.in_(("nps", "rating", "ces")),
            )
            .group_by(s.branch_id, a.question_type, a.value_number)
        )


async def _completions(db: Database, branch_ids: list[int], survey_id: int, units: int) -> float:
    """Median microseconds of a unit of work that counts one completed response in the
    roll-ups (its day's and its week's rows), on the loaded tables: the write results add to
    the answer path."""
    rnd = random.Random(11)
    at = datetime.combine(TODAY, datetime.min.time(), UTC) + timedelta(hours=3)
    samples = []
    for _ in range(units):
        answered = [
            (question, kind, number if choice is None else choice)
            for question, kind in QUESTIONS
            for number, choice, skipped in [_answer(question, kind, rnd)]
            if not skipped
        ]
        branch = rnd.choice(branch_ids)
        began = time.perf_counter()
        async with db.transaction() as connection:
            await rollups.record_completion(connection, branch, survey_id, at, answered)
        samples.append(time.perf_counter() - began)
    return round(statistics.median(samples) * 1e6, 1)


async def _completion_costs(
    db: Database, branch_ids: list[int], survey_id: int
) -> dict[str, float]:
    """A completion's roll-up writes with the by-day indexes and without them, interleaved in
    three rounds, the indexes restored after."""
    found: dict[str, list[float]] = {"with_by_day_index": [], "without_by_day_index": []}
    for _ in range(3):
        found["with_by_day_index"].append(await _completions(db, branch_ids, survey_id, 500))
        async with db.transaction() as connection:
            for table in ("rollups", "rollup_weeks"):
                await connection.exec_driver_sql(f"DROP INDEX ix_{table}_by_day")
        found["without_by_day_index"].append(await _completions(db, branch_ids, survey_id, 500))
        async with db.transaction() as connection:
            for table in ("rollups", "rollup_weeks"):
                await connection.exec_driver_sql(
                    f"CREATE INDEX ix_{table}_by_day ON {table} "
                    "(day, survey_id, metric, question_id, value, branch_id, count)"
                )
    return {name: statistics.median(values) for name, values in found.items()}


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


async def run(url: str, responses: int, repeat: int, abandoned: float) -> dict[str, object]:
    db = Database(url)
    await db.upgrade()
    catalog = SurveyCatalog(db)
    survey = load_survey_file(ROOT / "surveys" / "branch_service.yaml")
    pinned, _ = await catalog.register(
        survey, (ROOT / "surveys" / "branch_service.yaml").read_text()
    )
    branch_ids = await _organisation(db)
    load_seconds = await _load(db, branch_ids, pinned.id, responses, abandoned)
    began = time.perf_counter()
    async with db.transaction() as connection:
        rows = await rollups.rebuild(connection)
    await rollups.settle(db.engine)
    rebuild_seconds = time.perf_counter() - began
    if db.is_postgres:  # write the bulk load out now rather than during the timings
        async with db.engine.connect() as connection:
            await connection.exec_driver_sql("CHECKPOINT")

    staff = StaffAccess(db, issuer="bench", session_hours=1)
    results = Results(db, catalog, staff, ZoneInfo("Asia/Jakarta"))
    period = Period.parse("30d", TODAY)
    async with db.transaction() as connection:
        org = Org.of(await orgs.all_regions(connection), await orgs.all_branches(connection))
    # The last 30 days to the 27th, a Friday, read the most roll-up units of any 30 days
    # (10 and 8 for the period before); to the 30th, a Monday, 6 and 8.
    heaviest = Period.parse("30d", TODAY - timedelta(days=3))
    scopes = {
        "bank": (Scope("all"), period),
        "region": (Scope("region", "R2"), period),
        "branch": (Scope("branch", "R2B03"), period),
        "bank_heaviest_30_days": (Scope("all"), heaviest),
        "branch_heaviest_30_days": (Scope("branch", "R2B03"), heaviest),
    }
    timings: dict[str, float] = {}
    answers_in_bank = 0
    for name, (scope, within) in scopes.items():
        samples = []
        async with db.engine.connect() as connection:  # untimed warm-up
            await results.summary(connection, org, scope, within, "en")
        for _ in range(repeat):
            began = time.perf_counter()
            async with db.engine.connect() as connection:
                summary = await results.summary(connection, org, scope, within, "en")
            samples.append(time.perf_counter() - began)
        timings[name] = _median_ms(samples)
        if name == "bank":
            answers_in_bank = summary.scores.responses
    since = datetime.combine(period.first, datetime.min.time(), UTC) - timedelta(hours=9)
    until = datetime.combine(period.last + timedelta(days=1), datetime.min.time(), UTC)
    raw = []
    for _ in range(max(1, repeat // 2)):
        began = time.perf_counter()
        await _raw(db, since, until)
        raw.append(time.perf_counter() - began)
    completion_us = await _completion_costs(db, branch_ids, pinned.id)
    await db.dispose()
    return {
        "database": "postgresql" if db.is_postgres else "sqlite",
        "responses": responses,
        "abandoned_per_response": abandoned,
        "responses_in_30_days": answers_in_bank,
        "load_seconds": round(load_seconds, 1),
        "rebuild_rollups_seconds": round(rebuild_seconds, 1),
        "rollup_rows": rows,
        "results_ms": timings,
        "raw_bank_ms": _median_ms(raw),
        "speedup_bank": round(_median_ms(raw) / timings["bank"], 1),
        "completion_rollup_writes_us": completion_us,
    }


async def _pg_database() -> tuple[str, str]:
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN)
    name = f"suara_bench_{os.getpid()}"
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name}")
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False), name


async def _drop_pg(name: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN)
    connection = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--abandoned", type=float, default=0.15, help="unfinished sessions per response"
    )
    args = parser.parse_args()
    set_keyring(Keyring(generate_key_material()))
    found = []
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            found.append(
                await run(
                    f"sqlite+aiosqlite:///{folder}/bench.db",
                    args.responses,
                    args.repeat,
                    args.abandoned,
                )
            )
            print(json.dumps(found[-1]), flush=True)
    if args.database in ("postgresql", "both"):
        url, name = await _pg_database()
        try:
            found.append(await run(url, args.responses, args.repeat, args.abandoned))
            print(json.dumps(found[-1]), flush=True)
        finally:
            await _drop_pg(name)


if __name__ == "__main__":
    asyncio.run(main())
