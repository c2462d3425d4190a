"""The counts behind results, read from roll-ups so a summary moves counts, not rows.

A roll-up row counts one thing on one branch-local day: sessions started or completed, or
answers of one value to one question of one survey version. The same counts are kept per
branch-local ISO week, so a period reads its whole weeks from the weekly rows and only the
days at its edges from the daily ones. Both are kept in the transaction that starts or
completes a session (`record_start`, `record_completion`) and can be rebuilt exactly from
sessions and answers (`rebuild`), which is also how tests prove they agree.
Drop-off (how far unfinished sessions got) counts a session that ended unfinished in the
roll-ups too, on the day it started, where it stopped (`record_stops`, in the transaction that
ends it); sessions still open are read from the sessions themselves, as they go on. The
formulas live in `flows.scoring`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.crypto import get_keyring
from storage.models import answers, branches, customers, rollup_weeks, rollups, survey_sessions
from storage.prepared import Prepared

COMPLETED, OPEN = "completed", "open"  # storage.sessions' statuses; it imports this module
# Spelled as the partial index on open sessions spells it, so the planner uses it.
STILL_OPEN = sa.text("survey_sessions.status = 'open'")
STOPPED = "stopped"  # the metric of sessions that ended unfinished, by the question reached

SCORED = ("nps", "rating", "ces")
CHOSEN = ("choice", "multi")  # yes/no answers are stored as 1 and 0
KEY = ("day", "branch_id", "survey_id", "metric", "question_id", "value")
Row = tuple[date, int, int, str, str, str]  # a roll-up key


@dataclass(frozen=True)
class Window:
    """Branches of one time zone over local days [first, last], and the same in UTC."""

    zone: str
    branch_ids: tuple[int, ...]
    first: date
    last: date
    since: datetime
    until: datetime


@dataclass
class Figures:
    started: Counter[int] = field(default_factory=Counter)  # branch -> sessions started
    completed: Counter[int] = field(default_factory=Counter)  # branch -> responses
    # (branch, survey id, question id, type, value) -> answers
    scores: Counter[tuple[int, int, str, str, int]] = field(default_factory=Counter)
    # (branch, survey id, question id, option id) -> answers choosing it
    choices: Counter[tuple[int, int, str, str]] = field(default_factory=Counter)
    # (branch, survey id, question reached) -> sessions started and not completed
    stopped: Counter[tuple[int, int, str]] = field(default_factory=Counter)
    # (local day, value) -> NPS answers, for the trend; `figures_of` counts each 7-day step
    # of the period (from its first day) under the step's first day
    nps_days: Counter[tuple[date, int]] = field(default_factory=Counter)
    # branch -> campaign invitations sent, and those of them answered (storage.invitations)
    invited: Counter[int] = field(default_factory=Counter)
    responded: Counter[int] = field(default_factory=Counter)

    def by_branch(self) -> dict[int, Figures]:
        """The same counts split per branch, in one pass (the trend stays with the whole)."""
        split: dict[int, Figures] = {}

        def part(branch: int) -> Figures:
            found = split.get(branch)
            if found is None:
                found = split[branch] = Figures()
            return found

        for branch, count in self.started.items():
            part(branch).started[branch] = count
        for branch, count in self.completed.items():
            part(branch).completed[branch] = count
        for key, count in self.scores.items():
            part(key[0]).scores[key] = count
        for key, count in self.choices.items():
            part(key[0]).choices[key] = count
        for key, count in self.stopped.items():
            part(key[0]).stopped[key] = count
        for branch, count in self.invited.items():
            part(branch).invited[branch] = count
        for branch, count in self.responded.items():
            part(branch).responded[branch] = count
        return split


# -- keeping roll-ups -----------------------------------------------------------------------


def week_of(day: date) -> date:
    """The Monday that starts `day`'s ISO week: the weekly roll-ups' day."""
    return day - timedelta(days=day.weekday())


def _upsert(table: sa.Table, day: str, dialect: str) -> Any:
    """Add a count to one roll-up row of `table`, its day taken from the parameter `day`."""
    module = postgresql if dialect == "postgresql" else sqlite
    values = {name: sa.bindparam(name) for name in (*KEY[1:], "count")}
    statement = module.insert(table).values(day=sa.bindparam(day), **values)
    return statement.on_conflict_do_update(
        index_elements=list(KEY), set_={"count": table.c.count + statement.excluded["count"]}
    )


_ADD_DAYS = Prepared(lambda dialect: _upsert(rollups, "day", dialect))
_ADD_WEEKS = Prepared(lambda dialect: _upsert(rollup_weeks, "week", dialect))
# PostgreSQL adds to the day and to its week in one statement: one round trip, not two.
_ADD_BOTH = Prepared(
    lambda dialect: _upsert(rollup_weeks, "week", dialect).add_cte(
        _upsert(rollups, "day", dialect).cte("days")
    )
)
_ZONE = Prepared(sa.select(branches.c.timezone).where(branches.c.id == sa.bindparam("branch_id")))


async def _add(connection: AsyncConnection, counts: Counter[Row]) -> None:
    """Add `counts` to their days and to their weeks."""
    rows = [
        dict(zip(KEY, key, strict=True), count=count, week=week_of(key[0]))
        for key, count in counts.items()
    ]
    if connection.dialect.name == "postgresql":
        await _ADD_BOTH.many(connection, rows)
    else:
        await _ADD_DAYS.many(connection, rows)
        await _ADD_WEEKS.many(connection, rows)


async def _zone(connection: AsyncConnection, branch_id: int) -> ZoneInfo:
    row = await _ZONE.first(connection, branch_id=branch_id)
    return ZoneInfo(row.timezone if row else "Asia/Jakarta")


async def _local_day(connection: AsyncConnection, branch_id: int, at: datetime) -> date:
    return at.astimezone(await _zone(connection, branch_id)).date()


async def record_start(
    connection: AsyncConnection, branch_id: int | None, survey_id: int, at: datetime
) -> None:
    """Count a started session on its branch's local day (sessions without a branch: none)."""
    if branch_id is None:
        return
    day = await _local_day(connection, branch_id, at)
    await _add(connection, Counter({(day, branch_id, survey_id, "started", "", ""): 1}))


async def record_completion(
    connection: AsyncConnection,
    branch_id: int | None,
    survey_id: int,
    at: datetime,
    results: Iterable[tuple[str, str, Any]],
) -> None:
    """Count a response and its scored and chosen answers on the branch's local day."""
    if branch_id is None:
        return
    day = await _local_day(connection, branch_id, at)
    counts: Counter[Row] = Counter({(day, branch_id, survey_id, "completed", "", ""): 1})
    for question_id, kind, value in results:
        for option in _values(kind, value):
            counts[day, branch_id, survey_id, kind, question_id, option] += 1
    await _add(connection, counts)


async def record_stops(
    connection: AsyncConnection, ended: Iterable[tuple[int | None, int, datetime, str | None]]
) -> None:
    """Count sessions that ended unfinished, (branch, survey, started at, question reached)
    each, on their branch's local day of starting. Every write that ends an open session
    other than by completing it calls this in the same transaction."""
    counts: Counter[Row] = Counter()
    zones: dict[int, ZoneInfo] = {}
    for branch_id, survey_id, started_at, reached in ended:
        if branch_id is None or reached is None:
            continue
        if branch_id not in zones:
            zones[branch_id] = await _zone(connection, branch_id)
        day = started_at.astimezone(zones[branch_id]).date()
        counts[day, branch_id, survey_id, STOPPED, reached, ""] += 1
    await _add(connection, counts)


def _values(kind: str, value: Any) -> list[str]:
    """What a roll-up counts of one answer: the score, or each option chosen."""
    if value is None:
        return []
    if kind in SCORED:
        return [str(int(value))]
    if kind == "choice":
        return [str(value)]
    if kind == "multi":
        return [str(option) for option in (value.split(",") if isinstance(value, str) else value)]
    return []


async def rebuild(connection: AsyncConnection) -> int:
    """Recompute every roll-up from sessions, answers and invitations; returns how many rows
    there are."""
    from storage import invitations  # it imports this module

    await connection.execute(sa.delete(rollups))
    await connection.execute(sa.delete(rollup_weeks))
    zones: dict[str, list[int]] = {}
    for branch_id, zone in await connection.execute(sa.select(branches.c.id, branches.c.timezone)):
        zones.setdefault(zone, []).append(branch_id)
    total = 0
    for zone, ids in sorted(zones.items()):
        counts = await raw_counts(connection, zone, ids)
        await _add(connection, counts)
        total += len(counts)
        invited = await invitations.raw_counts(connection, zone, ids, None)
        await _add(connection, invited)
        total += len(invited)
    return total


async def settle(engine: AsyncEngine) -> None:
    """Refresh the planner's statistics of the roll-ups after a rebuild; on PostgreSQL also
    vacuum them, so that reads are answered from the key's index alone (autovacuum would,
    later). Runs outside any transaction, as VACUUM must."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            free = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await free.exec_driver_sql("VACUUM (ANALYZE) rollups, rollup_weeks")
        else:
            await connection.exec_driver_sql("ANALYZE rollups")
            await connection.exec_driver_sql("ANALYZE rollup_weeks")
            await connection.commit()


async def raw_counts(
    connection: AsyncConnection,
    zone: str,
    branch_ids: Sequence[int],
    *,
    campaign_id: int | None = None,
) -> Counter[Row]:
    """The roll-up rows of these branches (all in `zone`) as the raw tables give them; only
    the sessions one campaign opened, when it is named."""
    sessions = survey_sessions.c
    counts: Counter[Row] = Counter()
    mine = sessions.branch_id.in_(list(branch_ids))
    if campaign_id is not None:
        mine = sa.and_(mine, sessions.campaign_id == campaign_id)
    started = _day_expression(connection, zone, sessions.started_at).label("day")
    for day, branch, survey, count in await connection.execute(
        sa.select(started, sessions.branch_id, sessions.survey_id, sa.func.count())
        .where(mine)
        .group_by(started, sessions.branch_id, sessions.survey_id)
    ):
        counts[_date(day), branch, survey, "started", "", ""] += int(count)
    done = _day_expression(connection, zone, sessions.completed_at).label("day")
    finished = sa.and_(mine, sessions.status == COMPLETED)
    for day, branch, survey, count in await connection.execute(
        sa.select(done, sessions.branch_id, sessions.survey_id, sa.func.count())
        .where(finished)
        .group_by(done, sessions.branch_id, sessions.survey_id)
    ):
        counts[_date(day), branch, survey, "completed", "", ""] += int(count)
    ended = sa.and_(mine, sessions.status.not_in((COMPLETED, OPEN)), sessions.reached.is_not(None))
    for day, branch, survey, reached, count in await connection.execute(
        sa.select(
            started, sessions.branch_id, sessions.survey_id, sessions.reached, sa.func.count()
        )
        .where(ended)
        .group_by(started, sessions.branch_id, sessions.survey_id, sessions.reached)
    ):
        counts[_date(day), branch, survey, STOPPED, reached, ""] += int(count)
    joined = survey_sessions.join(answers, answers.c.session_id == sessions.id)
    value = sa.func.coalesce(
        sa.cast(sa.cast(answers.c.value_number, sa.Integer), sa.String), answers.c.value_choice
    )
    for day, branch, survey, kind, question, found, count in await connection.execute(
        sa.select(
            done,
            sessions.branch_id,
            sessions.survey_id,
            answers.c.question_type,
            answers.c.question_id,
            value,
            sa.func.count(),
        )
        .select_from(joined)
        .where(
            finished,
            answers.c.question_type.in_((*SCORED, *CHOSEN)),
            answers.c.skipped.is_(False),
        )
        .group_by(
            done,
            sessions.branch_id,
            sessions.survey_id,
            answers.c.question_type,
            answers.c.question_id,
            value,
        )
    ):
        for option in _values(kind, found):
            counts[_date(day), branch, survey, kind, question, option] += int(count)
    return counts


def _day_expression(
    connection: AsyncConnection, zone: str, column: sa.ColumnElement[datetime]
) -> sa.ColumnElement[Any]:
    """A moment's calendar day in `zone`, computed by the database."""
    if connection.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone(zone, column), sa.Date)
    # SQLite knows no zones; Indonesia's keep one offset all year.
    offset = datetime.now(ZoneInfo(zone)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    return sa.func.date(column, f"{minutes:+d} minutes")


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# What storage.invitations shares of keeping roll-ups.
add, day_expression, as_date = _add, _day_expression, _date


# -- reading --------------------------------------------------------------------------------


def spans(first: date, last: date) -> list[tuple[sa.Table, date, date, int]]:
    """Local days [first, last] as roll-up ranges to add (1) or take away (-1), for the fewest
    rows: each ISO week wholly or mostly (5 or 6 days) inside from `rollup_weeks` by its
    Monday, less the daily rows of its days outside; the days of other weeks from `rollups`."""
    weeks: list[date] = []
    found: list[tuple[sa.Table, date, date, int]] = []
    monday = week_of(first)
    while monday <= last:
        sunday = monday + timedelta(days=6)
        since, until = max(monday, first), min(sunday, last)
        if (until - since).days + 1 >= 5:
            weeks.append(monday)
            if monday < since:
                found.append((rollups, monday, since - timedelta(days=1), -1))
            if until < sunday:
                found.append((rollups, until + timedelta(days=1), sunday, -1))
        else:
            found.append((rollups, since, until, 1))
        monday += timedelta(days=7)
    if weeks:  # whole weeks are the middle ones, so they follow each other
        found.insert(0, (rollup_weeks, weeks[0], weeks[-1], 1))
    return found


def _steps(first: date, last: date) -> list[date]:
    """The first days of the 7-day steps from `first` that cover [first, last]: the trend's."""
    return [first + timedelta(days=n) for n in range(0, (last - first).days + 1, 7)]


def _days_of(table: sa.Table, since: date, until: date) -> list[date]:
    """The days of `table`'s rows from `since` to `until`: every day, or every Monday."""
    step = 7 if table is rollup_weeks else 1
    return [since + timedelta(days=n) for n in range(0, (until - since).days + 1, step)]


def _days_by_branches(windows: Sequence[Window]) -> dict[tuple[date, date], list[int]]:
    """The branches of `windows` by their local days (every zone's are the same days)."""
    found: dict[tuple[date, date], list[int]] = {}
    for w in windows:
        if w.branch_ids:
            found.setdefault((w.first, w.last), []).extend(w.branch_ids)
    return found


async def figures(connection: AsyncConnection, windows: Sequence[Window]) -> Figures:
    """Everything a summary needs over `windows`: roll-ups, and the sessions still open."""
    return (await figures_of(connection, [windows]))[0]


# A part of a summary's query: roll-up rows of one table over a range of days, added (1) or
# taken away (-1), or the sessions still open ("open"); summed over branches or not.
Part = tuple[str, int, bool]
TABLES = {table.name: table for table in (rollups, rollup_weeks)}


# For the rest of the transaction, PostgreSQL plans these reads for their own parameters (a
# generic plan, chosen after five runs of a prepared statement, reads every IN list's days
# alike and took 10 ms where a custom plan takes 2) and in one process: starting parallel
# workers costs more than the few thousand index rows they would share.
_PLAN_FOR_READS = sa.select(
    sa.func.set_config("plan_cache_mode", "force_custom_plan", True),
    sa.func.set_config("max_parallel_workers_per_gather", "0", True),
)


def _signed(count: sa.ColumnElement[int], sign: int) -> sa.ColumnElement[int]:
    """A count added (1) or taken away (-1): the days outside a week read whole."""
    return count if sign > 0 else -count


@functools.lru_cache(maxsize=512)
def _figures_statement(parts: tuple[Part, ...]) -> sa.Select[Any]:
    """The query of `figures_of` for one arrangement of parts, built once: every value is a
    parameter (`n`th part: period, branch ids, first and last day or moment), so a summary
    pays neither for building it nor for compiling it again."""
    sessions = survey_sessions.c
    selects = []
    for n, (source, sign, summed) in enumerate(parts):
        period = sa.bindparam(f"period_{n}", type_=sa.Integer)
        ids = sa.bindparam(f"ids_{n}", expanding=True)
        if source == OPEN:  # those that ended unfinished are in the roll-ups already
            selects.append(
                sa.select(
                    period,
                    sa.literal(0) if summed else sessions.branch_id,
                    sessions.survey_id,
                    sa.literal(STOPPED),
                    sessions.reached,
                    sa.literal(""),
                    sa.literal(1),
                ).where(
                    sessions.branch_id.in_(ids),
                    sessions.started_at >= sa.bindparam(f"since_{n}"),
                    sessions.started_at < sa.bindparam(f"until_{n}"),
                    STILL_OPEN,
                    sessions.reached.is_not(None),
                )
            )
            continue
        table = TABLES[source]
        key = (table.c.survey_id, table.c.metric, table.c.question_id, table.c.value)
        if summed:  # one day or week of the whole, summed in the order of its by-day index
            count = sa.func.sum(table.c.count)
            selects.append(
                sa.select(period, sa.literal(0), *key, _signed(count, sign))
                .where(table.c.branch_id.in_(ids), table.c.day == sa.bindparam(f"since_{n}"))
                .group_by(*key)
            )
            continue
        selects.append(
            sa.select(
                period.label("period"),
                table.c.branch_id,
                *key,
                _signed(table.c.count, sign).label("count"),
            ).where(
                table.c.branch_id.in_(ids),
                table.c.day.between(sa.bindparam(f"since_{n}"), sa.bindparam(f"until_{n}")),
            )
        )
    every = sa.union_all(*selects).subquery() if len(selects) > 1 else selects[0].subquery()
    keys = (every.c.period, every.c.branch_id, every.c.survey_id, every.c.metric)
    keys += (every.c.question_id, every.c.value)
    total = sa.func.sum(every.c.count)
    return sa.select(*keys, total).group_by(*keys).having(total != 0)  # days taken away: 0


@functools.lru_cache(maxsize=512)
def _trend_statement(parts: tuple[tuple[str, int, int], ...]) -> sa.Select[Any]:
    """The trend's query for one arrangement of (table, sign, days) parts, built once."""
    selects = []
    for n, (source, sign, days) in enumerate(parts):
        table = TABLES[source]
        selects.append(
            sa.select(
                sa.bindparam(f"step_{n}", type_=sa.Date).label("step"),
                table.c.value,
                _signed(table.c.count, sign).label("count"),
            ).where(
                table.c.branch_id.in_(sa.bindparam(f"ids_{n}", expanding=True)),
                # each day by itself, then the key's next column: one seek for each day
                table.c.day.in_([sa.bindparam(f"day_{n}_{d}", type_=sa.Date) for d in range(days)]),
                table.c.metric == "nps",
            )
        )
    every = sa.union_all(*selects).subquery() if len(selects) > 1 else selects[0].subquery()
    total = sa.func.sum(every.c.count)
    return (
        sa.select(every.c.step, every.c.value, total)
        .group_by(every.c.step, every.c.value)
        .having(total != 0)
    )


async def figures_of(
    connection: AsyncConnection,
    periods: Sequence[Sequence[Window]],
    *,
    totals_only: Collection[int] = (),
) -> list[Figures]:
    """`figures` for several periods (a period and the one before it) in two queries: the
    roll-ups and the sessions still open of every period, then the NPS counts of the first
    period's 7-day steps for its trend. Each part reads a range of its table's key. The periods
    numbered in `totals_only` are summed over their branches, under branch 0: fewer rows
    where only the whole is shown (the previous period)."""
    found = [Figures() for _ in periods]
    parts: list[Part] = []
    params: dict[str, Any] = {}

    def part(shape: Part, index: int, ids: Sequence[int], since: Any, until: Any) -> None:
        n = len(parts)
        parts.append(shape)
        params.update({f"period_{n}": index, f"ids_{n}": list(ids)})
        params.update({f"since_{n}": since, f"until_{n}": until})

    for index, windows in enumerate(periods):
        summed = index in totals_only
        for (first, last), ids in _days_by_branches(windows).items():
            for table, since, until, sign in spans(first, last):
                if summed:
                    for day in _days_of(table, since, until):
                        part((table.name, sign, summed), index, ids, day, day)
                else:
                    part((table.name, sign, summed), index, ids, since, until)
        for w in windows:
            if w.branch_ids:
                part((OPEN, 1, summed), index, w.branch_ids, w.since, w.until)
    if not parts:
        return found
    if connection.dialect.name == "postgresql":
        await connection.execute(_PLAN_FOR_READS)
    rows = await connection.execute(_figures_statement(tuple(parts)), params)
    for index, where, survey, metric, question, value, count in rows:
        into, count = found[index], int(count)
        if metric == "started":
            into.started[where] += count
        elif metric == "completed":
            into.completed[where] += count
        elif metric in SCORED:
            into.scores[where, survey, question, metric, int(value)] += count
        elif metric in CHOSEN:
            into.choices[where, survey, question, value] += count
        elif metric == "invited":
            into.invited[where] += count
        elif metric == "responded":
            into.responded[where] += count
        elif metric == STOPPED:
            into.stopped[where, survey, question] += count

    trend: list[tuple[str, int, int]] = []
    params = {}
    for (first, last), ids in _days_by_branches(periods[0]).items():
        for start in _steps(first, last):  # each step as spans: weeks where they mostly fit
            for table, since, until, sign in spans(start, min(last, start + timedelta(days=6))):
                days = _days_of(table, since, until)
                n = len(trend)
                trend.append((table.name, sign, len(days)))
                params.update({f"step_{n}": start, f"ids_{n}": list(ids)})
                params.update({f"day_{n}_{d}": day for d, day in enumerate(days)})
    if trend:
        for start, value, count in await connection.execute(_trend_statement(tuple(trend)), params):
            found[0].nps_days[_date(start), int(value)] += int(count)
    return found


# -- responses, one by one, for exports -------------------------------------------------------


@dataclass(frozen=True)
class Response:
    session_id: int
    branch_id: int
    survey_id: int
    completed_at: datetime
    answers: dict[str, Any]
    name: str | None = None  # only with `contacts`, and only when the customer agreed
    phone: str | None = None


def _completed_within(windows: Sequence[Window]) -> sa.ColumnElement[bool]:
    sessions = survey_sessions.c
    return sa.and_(
        sessions.status == COMPLETED,
        sa.or_(
            *(
                sa.and_(
                    sessions.branch_id.in_(w.branch_ids),
                    sessions.completed_at >= w.since,
                    sessions.completed_at < w.until,
                )
                for w in windows
                if w.branch_ids
            ),
            sa.false(),
        ),
    )


async def surveys_answered(connection: AsyncConnection, windows: Sequence[Window]) -> list[int]:
    """The survey versions of the responses completed within `windows`."""
    rows = await connection.execute(
        sa.select(survey_sessions.c.survey_id)
        .where(_completed_within(windows))
        .distinct()
        .order_by(survey_sessions.c.survey_id)
    )
    return [row.survey_id for row in rows]


async def responses(
    connection: AsyncConnection, windows: Sequence[Window], *, contacts: bool = False
) -> AsyncIterator[Response]:
    """Each response completed within `windows` with its answers, streamed from the database
    rather than loaded at once. With `contacts`, the name and phone of customers who agreed to
    be contacted about that response and have not been erased, decrypted once per response."""
    from storage.sessions import answer_value  # sessions imports this module

    sessions = survey_sessions.c
    joined = survey_sessions.join(answers, answers.c.session_id == sessions.id)
    extra: list[Any] = []
    if contacts:
        named = sa.and_(sessions.contact_consent.is_(True), customers.c.erased_at.is_(None))
        extra = [
            sa.case((named, sa.type_coerce(column, sa.Text)), else_=None).label(f"contact_{key}")
            for key, column in (("name", customers.c.name), ("phone", customers.c.phone))
        ]
        joined = joined.outerjoin(customers, customers.c.id == sessions.customer_id)
    statement = (
        sa.select(
            *extra,
            sessions.id.label("session_id"),
            sessions.branch_id,
            sessions.survey_id,
            sessions.completed_at,
            answers.c.question_id,
            answers.c.question_type,
            answers.c.value_number,
            answers.c.value_choice,
            answers.c.value_text,
            answers.c.skipped,
        )
        .select_from(joined)
        .where(_completed_within(windows))
        .order_by(sessions.id, answers.c.id)
        .execution_options(yield_per=1000)
    )
    current: Response | None = None
    async for row in await connection.stream(statement):
        if current is None or current.session_id != row.session_id:
            if current is not None:
                yield current
            current = Response(row.session_id, row.branch_id, row.survey_id, row.completed_at, {})
            if contacts:
                current = replace(
                    current, name=_plain(row.contact_name), phone=_plain(row.contact_phone)
                )
        current.answers[row.question_id] = answer_value(row)
    if current is not None:
        yield current


def _plain(token: str | None) -> str | None:
    return None if token is None else get_keyring().decrypt(token)
