"""Campaign invitations and the responses to them, as results count them.

Two roll-up metrics, keyed like every other roll-up row (branch-local day, branch, survey
version) with the campaign's id in the question column:

- `invited`: invitations sent, on the day they were sent, under the branch the customer
  belonged to then (kept in the sender's batch commit, `record_sent`);
- `responded`: invited customers who completed the campaign's survey through its invitation,
  counted once each, on the day their invitation was sent (kept in the completion's
  transaction, `record_response`).

Both share the invitation's day and branch, so `responded / invited` over any period is the
share of that period's invitations that were answered, never above one. Reading two roll-up
metrics keeps `/results` as fast as the rest of its figures: counting deliveries instead would
join every invitation of the period to its customer on each request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import results
from storage.models import branches, campaign_deliveries, campaigns, customers, survey_sessions

INVITED, RESPONDED = "invited", "responded"
_INVITE, _SENT, _COMPLETED = "invite", "sent", "completed"  # as storage.campaigns spells them


async def _zones(connection: AsyncConnection, branch_ids: set[int]) -> dict[int, ZoneInfo]:
    if not branch_ids:
        return {}
    rows = await connection.execute(
        sa.select(branches.c.id, branches.c.timezone).where(branches.c.id.in_(branch_ids))
    )
    return {branch_id: ZoneInfo(zone) for branch_id, zone in rows}


async def record_sent(connection: AsyncConnection, sent: Sequence[tuple[int, datetime]]) -> None:
    """Invitations among these (delivery, sent at) just became `sent`: note the customer's
    branch on each and count them."""
    if not sent:
        return
    at = dict(sent)
    rows = (
        await connection.execute(
            sa.select(
                campaign_deliveries.c.id,
                campaign_deliveries.c.campaign_id,
                customers.c.branch_id,
                campaigns.c.survey_id,
            )
            .join(customers, customers.c.id == campaign_deliveries.c.customer_id)
            .join(campaigns, campaigns.c.id == campaign_deliveries.c.campaign_id)
            .where(campaign_deliveries.c.id.in_(list(at)), campaign_deliveries.c.kind == _INVITE)
        )
    ).all()
    placed = [row for row in rows if row.branch_id is not None and row.survey_id is not None]
    if not placed:
        return
    await connection.execute(
        sa.update(campaign_deliveries)
        .where(campaign_deliveries.c.id == sa.bindparam("delivery_id"))
        .values(branch_id=sa.bindparam("branch")),
        [{"delivery_id": row.id, "branch": row.branch_id} for row in placed],
    )
    zones = await _zones(connection, {row.branch_id for row in placed})
    counts: Counter[results.Row] = Counter()
    for row in placed:
        day = at[row.id].astimezone(zones[row.branch_id]).date()
        counts[day, row.branch_id, row.survey_id, INVITED, str(row.campaign_id), ""] += 1
    await results.add(connection, counts)


async def record_response(connection: AsyncConnection, campaign_id: int, customer_id: int) -> None:
    """The customer just completed the campaign's survey through its invitation: the first
    such response counts on the invitation's day and branch (a customer never invited, who
    opened a forwarded link, counts as no response to an invitation)."""
    invitation = (
        await connection.execute(
            sa.select(
                campaign_deliveries.c.sent_at,
                campaign_deliveries.c.branch_id,
                campaigns.c.survey_id,
            )
            .join(campaigns, campaigns.c.id == campaign_deliveries.c.campaign_id)
            .where(
                campaign_deliveries.c.campaign_id == campaign_id,
                campaign_deliveries.c.customer_id == customer_id,
                campaign_deliveries.c.kind == _INVITE,
                campaign_deliveries.c.status == _SENT,
            )
        )
    ).first()
    if invitation is None or invitation.branch_id is None or invitation.sent_at is None:
        return
    completed = await connection.scalar(
        sa.select(sa.func.count()).where(
            survey_sessions.c.campaign_id == campaign_id,
            survey_sessions.c.customer_id == customer_id,
            survey_sessions.c.status == _COMPLETED,
        )
    )
    if int(completed or 0) != 1:  # answered before: counted then
        return
    zone = (await _zones(connection, {invitation.branch_id}))[invitation.branch_id]
    day = invitation.sent_at.astimezone(zone).date()
    key = (day, invitation.branch_id, invitation.survey_id, RESPONDED, str(campaign_id), "")
    await results.add(connection, Counter({key: 1}))


async def raw_counts(
    connection: AsyncConnection, zone: str, branch_ids: Sequence[int], campaign_id: int | None
) -> Counter[results.Row]:
    """The `invited` and `responded` roll-up rows of these branches (all in `zone`), as the
    deliveries and sessions give them; one campaign's only, when it is named."""
    d = campaign_deliveries.c
    day = results.day_expression(connection, zone, d.sent_at).label("day")
    sent = sa.and_(
        d.kind == _INVITE,
        d.status == _SENT,
        d.branch_id.in_(list(branch_ids)),
        campaigns.c.survey_id.is_not(None),
        sa.true() if campaign_id is None else d.campaign_id == campaign_id,
    )
    answered = (
        sa.select(survey_sessions.c.campaign_id, survey_sessions.c.customer_id)
        .where(survey_sessions.c.status == _COMPLETED, survey_sessions.c.campaign_id.is_not(None))
        .distinct()
        .subquery()
    )
    joined = campaign_deliveries.join(campaigns, campaigns.c.id == d.campaign_id).outerjoin(
        answered,
        sa.and_(answered.c.campaign_id == d.campaign_id, answered.c.customer_id == d.customer_id),
    )
    counts: Counter[results.Row] = Counter()
    for found, branch, survey, campaign, invited, responded in await connection.execute(
        sa.select(
            day,
            d.branch_id,
            campaigns.c.survey_id,
            d.campaign_id,
            sa.func.count(),
            sa.func.count(answered.c.customer_id),
        )
        .select_from(joined)
        .where(sent)
        .group_by(day, d.branch_id, campaigns.c.survey_id, d.campaign_id)
    ):
        key = (results.as_date(found), branch, survey)
        counts[(*key, INVITED, str(campaign), "")] += int(invited)
        if responded:
            counts[(*key, RESPONDED, str(campaign), "")] += int(responded)
    return counts


async def campaign_figures(
    connection: AsyncConnection, campaign_id: int, zones: Sequence[tuple[str, Sequence[int]]]
) -> results.Figures:
    """Everything a summary needs about one campaign in these branches (grouped by time zone):
    the sessions it opened and its invitations, counted from the rows themselves, as a
    campaign's rows are few and found by its id."""
    found = results.Figures()
    for zone, branch_ids in zones:
        counts = await results.raw_counts(connection, zone, branch_ids, campaign_id=campaign_id)
        counts += await raw_counts(connection, zone, branch_ids, campaign_id)
        for (day, branch, survey, metric, question, value), count in counts.items():
            if metric == "started":
                found.started[branch] += count
            elif metric == "completed":
                found.completed[branch] += count
            elif metric == INVITED:
                found.invited[branch] += count
            elif metric == RESPONDED:
                found.responded[branch] += count
            elif metric in results.SCORED:
                found.scores[branch, survey, question, metric, int(value)] += count
                if metric == "nps":
                    found.nps_days[day, int(value)] += count
            elif metric in results.CHOSEN:
                found.choices[branch, survey, question, value] += count
            elif metric == results.STOPPED:  # ended unfinished, where they stopped
                found.stopped[branch, survey, question] += count
    sessions = survey_sessions.c
    every = [branch for _zone, ids in zones for branch in ids]
    for branch, survey, reached, count in await connection.execute(
        sa.select(sessions.branch_id, sessions.survey_id, sessions.reached, sa.func.count())
        .where(
            sessions.campaign_id == campaign_id,
            sessions.branch_id.in_(every),
            sessions.status == results.OPEN,  # still open; the others are counted above
            sessions.reached.is_not(None),
        )
        .group_by(sessions.branch_id, sessions.survey_id, sessions.reached)
    ):
        found.stopped[branch, survey, reached] += int(count)
    return found
