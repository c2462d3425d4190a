"""Per-branch result summaries: responses, completion, NPS, CSAT and CES.

The counts come from `storage.tallies`; the scores from `flows.scoring`, the one place their
rules live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from flows.scoring import CesSummary, CsatSummary, NpsSummary, ces, csat, nps
from storage import tallies


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
    counted = await tallies.by_branch(
        connection, ("nps", "rating", "ces"), since=since, until=until, branch_ids=branch_ids
    )
    return [
        BranchSummary(
            tally.branch_id,
            tally.code,
            tally.name,
            tally.started,
            tally.completed,
            nps(tally.of("nps")),
            csat(tally.of("rating")),
            ces(tally.of("ces")),
        )
        for tally in counted
    ]
