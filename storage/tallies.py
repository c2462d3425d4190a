"""Counts for branch summaries: sessions started and completed, and answers by value.

The database groups answers by value, so a summary moves counts, not rows; what the counts
mean (NPS, CSAT, CES) is computed above, in `flows.scoring`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import answers, branches, survey_sessions
from storage.sessions import COMPLETED


@dataclass(frozen=True)
class BranchTally:
    branch_id: int
    code: str
    name: str
    started: int
    completed: int
    values: dict[str, list[int]] = field(default_factory=dict)  # question type -> values

    def of(self, question_type: str) -> list[int]:
        return self.values.get(question_type, [])


async def by_branch(
    connection: AsyncConnection,
    question_types: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    branch_ids: list[int] | None = None,
) -> list[BranchTally]:
    """One tally per branch (in code order) over sessions started in [since, until): the
    numeric answers of completed sessions to questions of `question_types`."""
    window = [survey_sessions.c.branch_id.is_not(None)]
    if since is not None:
        window.append(survey_sessions.c.started_at >= since)
    if until is not None:
        window.append(survey_sessions.c.started_at < until)
    if branch_ids is not None:
        window.append(survey_sessions.c.branch_id.in_(branch_ids))

    completed = sa.func.sum(sa.case((survey_sessions.c.status == COMPLETED, 1), else_=0))
    counts = await connection.execute(
        sa.select(survey_sessions.c.branch_id, sa.func.count(), completed)
        .where(*window)
        .group_by(survey_sessions.c.branch_id)
    )
    totals = {branch_id: (int(started), int(done or 0)) for branch_id, started, done in counts}

    grouped = await connection.execute(
        sa.select(
            survey_sessions.c.branch_id,
            answers.c.question_type,
            answers.c.value_number,
            sa.func.count(),
        )
        .join(answers, answers.c.session_id == survey_sessions.c.id)
        .where(
            *window,
            survey_sessions.c.status == COMPLETED,
            answers.c.question_type.in_(list(question_types)),
            answers.c.value_number.is_not(None),
        )
        .group_by(survey_sessions.c.branch_id, answers.c.question_type, answers.c.value_number)
    )
    values: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for branch_id, kind, value, count in grouped:
        values[branch_id][kind].extend([int(value)] * int(count))

    names = await connection.execute(
        sa.select(branches.c.id, branches.c.code, branches.c.name).order_by(branches.c.code)
    )
    return [
        BranchTally(
            branch_id, code, name, *totals.get(branch_id, (0, 0)), dict(values.get(branch_id, {}))
        )
        for branch_id, code, name in names
        if branch_ids is None or branch_id in branch_ids
    ]
