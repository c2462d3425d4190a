"""Per-branch result summaries: responses, completion, NPS, CSAT and CES.

The database groups answers by value, so a summary moves counts, not rows; the scores come
from `flows.scoring`, the one place their rules live.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flows.scoring import CesSummary, CsatSummary, NpsSummary, ces, csat, nps
from storage.models import answers, branches, survey_sessions
from storage.sessions import COMPLETED


@dataclass(frozen=True)
class BranchSummary:
    branch_id: int
    code: str
    name: str
    started: int
    completed: int
    nps: NpsSummary
    csat: CsatSummary
    ces: CesSummary

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.started if self.started else None


async def branch_summaries(
    connection: AsyncConnection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    branch_ids: list[int] | None = None,
) -> list[BranchSummary]:
    """One summary per branch (in code order) over sessions started in [since, until)."""
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

    values = await connection.execute(
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
            answers.c.question_type.in_(("nps", "rating", "ces")),
            answers.c.value_number.is_not(None),
        )
        .group_by(survey_sessions.c.branch_id, answers.c.question_type, answers.c.value_number)
    )
    scores: dict[tuple[int, str], list[int]] = defaultdict(list)
    for branch_id, kind, value, count in values:
        scores[branch_id, kind].extend([int(value)] * int(count))

    names = await connection.execute(
        sa.select(branches.c.id, branches.c.code, branches.c.name).order_by(branches.c.code)
    )
    return [
        BranchSummary(
            branch_id,
            code,
            name,
            *totals.get(branch_id, (0, 0)),
            nps(scores[branch_id, "nps"]),
            csat(scores[branch_id, "rating"]),
            ces(scores[branch_id, "ces"]),
        )
        for branch_id, code, name in names
        if branch_ids is None or branch_id in branch_ids
    ]
