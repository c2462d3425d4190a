"""The aggregate queries behind results: counts grouped by branch, survey version, question
and value, so a summary moves counts, not rows. The formulas live in `flows.scoring`.

A period is each branch's own local days, so the caller passes one window per time zone:
the branches in that zone and the period's bounds in UTC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import answers, survey_sessions
from storage.sessions import COMPLETED

SCORED = ("nps", "rating", "ces")
CHOSEN = ("choice", "multi")  # yes/no answers are stored as 1 and 0


@dataclass(frozen=True)
class Window:
    """Sessions of `branch_ids` in [since, until): one zone's local days, in UTC."""

    zone: str
    branch_ids: tuple[int, ...]
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
    # (branch, local day, value) -> NPS answers, for the trend
    nps_days: Counter[tuple[int, date, int]] = field(default_factory=Counter)


def _within(
    column: sa.ColumnElement[datetime], windows: Sequence[Window]
) -> sa.ColumnElement[bool]:
    return sa.or_(
        *(
            sa.and_(
                survey_sessions.c.branch_id.in_(w.branch_ids), column >= w.since, column < w.until
            )
            for w in windows
            if w.branch_ids
        ),
        sa.false(),
    )


def _local_day(connection: AsyncConnection, window: Window) -> sa.ColumnElement[object]:
    """The completion's calendar day in the window's zone, computed by the database."""
    column = survey_sessions.c.completed_at
    if connection.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone(window.zone, column), sa.Date)
    offset = window.since.astimezone(ZoneInfo(window.zone)).utcoffset()
    hours = int(offset.total_seconds() // 3600) if offset else 0
    return sa.func.date(column, f"{hours:+d} hours")


async def figures(connection: AsyncConnection, windows: Sequence[Window]) -> Figures:
    """Everything a summary needs over `windows`, in six grouped queries."""
    found = Figures()
    started = _within(survey_sessions.c.started_at, windows)
    done = sa.and_(
        survey_sessions.c.status == COMPLETED, _within(survey_sessions.c.completed_at, windows)
    )
    sessions = survey_sessions.c
    for branch, count in await connection.execute(
        sa.select(sessions.branch_id, sa.func.count()).where(started).group_by(sessions.branch_id)
    ):
        found.started[branch] = int(count)
    for branch, survey, reached, count in await connection.execute(
        sa.select(sessions.branch_id, sessions.survey_id, sessions.reached, sa.func.count())
        .where(started, sessions.status != COMPLETED, sessions.reached.is_not(None))
        .group_by(sessions.branch_id, sessions.survey_id, sessions.reached)
    ):
        found.stopped[branch, survey, reached] = int(count)
    for branch, count in await connection.execute(
        sa.select(sessions.branch_id, sa.func.count()).where(done).group_by(sessions.branch_id)
    ):
        found.completed[branch] = int(count)

    joined = survey_sessions.join(answers, answers.c.session_id == sessions.id)
    scored = sa.and_(done, answers.c.question_type.in_(SCORED), answers.c.value_number.is_not(None))
    for branch, survey, question, kind, value, count in await connection.execute(
        sa.select(
            sessions.branch_id,
            sessions.survey_id,
            answers.c.question_id,
            answers.c.question_type,
            answers.c.value_number,
            sa.func.count(),
        )
        .select_from(joined)
        .where(scored)
        .group_by(
            sessions.branch_id,
            sessions.survey_id,
            answers.c.question_id,
            answers.c.question_type,
            answers.c.value_number,
        )
    ):
        found.scores[branch, survey, question, kind, int(value)] += int(count)
    for branch, survey, question, value, count in await connection.execute(
        sa.select(
            sessions.branch_id,
            sessions.survey_id,
            answers.c.question_id,
            answers.c.value_choice,
            sa.func.count(),
        )
        .select_from(joined)
        .where(done, answers.c.question_type.in_(CHOSEN), answers.c.value_choice.is_not(None))
        .group_by(
            sessions.branch_id, sessions.survey_id, answers.c.question_id, answers.c.value_choice
        )
    ):
        for option in str(value).split(","):
            found.choices[branch, survey, question, option] += int(count)
    for window in windows:
        if not window.branch_ids:
            continue
        day = _local_day(connection, window).label("day")
        only = _within(sessions.completed_at, [window])
        for branch, local, value, count in await connection.execute(
            sa.select(sessions.branch_id, day, answers.c.value_number, sa.func.count())
            .select_from(joined)
            .where(
                sessions.status == COMPLETED,
                only,
                answers.c.question_type == "nps",
                answers.c.value_number.is_not(None),
            )
            .group_by(sessions.branch_id, day, answers.c.value_number)
        ):
            local_day = local if isinstance(local, date) else date.fromisoformat(str(local))
            found.nps_days[branch, local_day, int(value)] += int(count)
    return found
