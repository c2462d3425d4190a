"""Results for staff and scripts: a scope and a period in, the CX figures out.

The scope is checked inside the service (a viewer of one branch never sees another's), a
period is each branch's own local days, and every score comes from `flows.scoring` over
counts the database grouped (`storage.results`). Invitations and the response rate come from
campaign roll-ups (`storage.invitations`); a period may also be `campaign <id>`, that
campaign's own figures. The chat command, the command line (`run_bot.py results --json`) and
the demo read the same `Summary`.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services.access import Org, Scope
from bot.services.staff import Actor, Refused, StaffAccess, Who
from bot.services.surveys import SurveyCatalog
from flows.schema import DEFAULT_SCALE, Survey, localized
from flows.scoring import CesSummary, CsatSummary, NpsSummary, ces_of, csat_of, nps_of
from storage import audit, invitations
from storage import campaigns as campaign_store
from storage import results as store
from storage.db import Database
from storage.orgs import Branch

SMALL_SAMPLE = 30
DEFAULT_DAYS = 30
_DAYS = re.compile(r"^(\d{1,3})d$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
_CAMPAIGN = re.compile(r"^campaign (\d{1,9})$", re.IGNORECASE)


class BadPeriod(ValueError):
    """A period that is not 7d, 30d, 2026-10 or 2026-10-01..2026-10-31."""


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    @classmethod
    def parse(cls, text: str | None, today: date) -> Period:
        text = (text or f"{DEFAULT_DAYS}d").strip()
        if match := _DAYS.match(text):
            days = int(match[1])
            if not 1 <= days <= 366:
                raise BadPeriod(text)
            return cls(today - timedelta(days=days - 1), today)
        try:
            if match := _MONTH.match(text):
                first = date(int(match[1]), int(match[2]), 1)
                following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
                return cls(first, following - timedelta(days=1))
            if match := _RANGE.match(text):
                first, last = date.fromisoformat(match[1]), date.fromisoformat(match[2])
                if first <= last and (last - first).days <= 366:
                    return cls(first, last)
        except ValueError:
            pass
        raise BadPeriod(text)


def looks_like_period(text: str) -> bool:
    return bool(_DAYS.match(text) or _MONTH.match(text) or _RANGE.match(text)) or (
        campaign_number(text) is not None
    )


def campaign_number(period_text: str | None) -> int | None:
    """The campaign a period of the form `campaign <id>` names, else None."""
    match = _CAMPAIGN.match((period_text or "").strip())
    return int(match[1]) if match else None


class BadCampaign(ValueError):
    """A `campaign <id>` period naming no campaign."""


@dataclass(frozen=True)
class CampaignRef:
    id: int
    name: str


@dataclass(frozen=True)
class CsatLine:
    question: str
    scale: int
    summary: CsatSummary


@dataclass(frozen=True)
class Scores:
    """The figures for one set of branches."""

    started: int
    responses: int
    nps: NpsSummary
    csat: tuple[CsatLine, ...]
    ces: CesSummary
    choices: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]  # question, (option, count)
    drop_off: tuple[tuple[str, int], ...]  # question where sessions stopped, how many
    invitations: int = 0  # campaign invitations sent in the period
    invitations_answered: int = 0  # of those, how many customers completed the survey

    @property
    def completion_rate(self) -> float | None:
        return self.responses / self.started if self.started else None

    @property
    def response_rate(self) -> float | None:
        """Of the campaign invitations sent in the period (each counted on its branch-local
        day, under the branch the customer belonged to), the share whose customer completed
        the campaign's survey through it, whenever that was; None without invitations. It
        never exceeds one, and it may still grow after the period while invitees answer."""
        return self.invitations_answered / self.invitations if self.invitations else None

    @property
    def csat_top2(self) -> float | None:
        count = sum(line.summary.count for line in self.csat)
        top = sum((line.summary.top2_share or 0) * line.summary.count for line in self.csat)
        return top / count if count else None


@dataclass(frozen=True)
class BranchScores:
    code: str
    name: str
    timezone: str
    scores: Scores

    @property
    def small_sample(self) -> bool:
        return self.scores.responses < SMALL_SAMPLE


@dataclass(frozen=True)
class Summary:
    locale: str
    scope: Scope
    period: Period
    scores: Scores
    previous: Scores
    branches: tuple[BranchScores, ...]  # ranked: by NPS, then CSAT; small samples last
    weeks: tuple[tuple[date, NpsSummary], ...]
    campaign: CampaignRef | None = None  # a campaign's figures: its own sessions only

    @property
    def invitations(self) -> int:
        return self.scores.invitations

    @property
    def small_sample(self) -> bool:
        return self.scores.responses < SMALL_SAMPLE

    def to_json(self) -> dict[str, Any]:
        period: dict[str, Any] = {
            "from": self.period.first.isoformat(),
            "to": self.period.last.isoformat(),
        }
        if self.campaign is not None:
            period["campaign"] = {"id": self.campaign.id, "name": self.campaign.name}
        return {
            "scope": str(self.scope),
            "period": period,
            **_scores_json(self.scores),
            "previous": None if self.campaign is not None else _scores_json(self.previous),
            "branches": [
                {"code": b.code, "name": b.name, "small_sample": b.small_sample}
                | _scores_json(b.scores)
                for b in self.branches
            ],
        }


def _scores_json(scores: Scores) -> dict[str, Any]:
    nps = scores.nps
    return {
        "invitations": scores.invitations,
        "invitations_answered": scores.invitations_answered,
        "response_rate": scores.response_rate,
        "started": scores.started,
        "responses": scores.responses,
        "completion_rate": scores.completion_rate,
        "nps": {
            "score": nps.score,
            "count": nps.count,
            "promoters": nps.promoters,
            "passives": nps.passives,
            "detractors": nps.detractors,
        },
        "csat": [
            {
                "question": line.question,
                "scale": line.scale,
                "count": line.summary.count,
                "mean": line.summary.mean,
                "top2_share": line.summary.top2_share,
            }
            for line in scores.csat
        ],
        "ces": {"count": scores.ces.count, "mean": scores.ces.mean},
        "top_choices": [
            {"question": q, "options": [{"option": o, "count": n} for o, n in options]}
            for q, options in scores.choices
        ],
        "drop_off": [{"question": q, "stopped": n} for q, n in scores.drop_off],
    }


class Results:
    """Summaries over the database, for staff in their scope and for the command line."""

    def __init__(
        self, db: Database, catalog: SurveyCatalog, staff: StaffAccess, zone: ZoneInfo
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._staff = staff
        self._zone = zone

    async def for_staff(self, who: Who, args: list[str]) -> Summary | Refused:
        """`/results [branch|region|all] [period]`, inside the caller's scope."""
        scope_text, period_text, problem = split_arguments(args)

        async def body(
            connection: AsyncConnection, actor: Actor, at: datetime
        ) -> Summary | Refused:
            if problem:
                return Refused(actor.member.locale, "usage")
            number = campaign_number(period_text)
            if number is None:
                asked = await staff_request(
                    connection, actor, at, self._zone, scope_text, period_text
                )
                if isinstance(asked, Refused):
                    return asked
                return await self.summary(connection, *asked, actor.member.locale)
            scoped = await staff_request(connection, actor, at, self._zone, scope_text, None)
            if isinstance(scoped, Refused):
                return scoped
            org, scope, _period = scoped
            return await self.campaign_summary(
                connection, org, scope, number, at, actor.member.locale
            )

        target = " ".join(args)[:80] or None
        return await self._staff.run_command(who, "results.read", body, target=target)

    async def for_operator(
        self, scope_text: str | None, period_text: str | None, locale: str = "en"
    ) -> Summary:
        """The command line's figures: the whole bank unless a scope is named; audited."""

        async def work(connection: AsyncConnection) -> Summary:
            at = self._staff.clock()
            number = campaign_number(period_text)
            org, scope, period = await operator_request(
                connection, self._zone, scope_text, None if number is not None else period_text, at
            )
            target = str(scope) if number is None else f"{scope} campaign {number}"
            await audit.append(connection, "system", "results.read", target=target, at=at)
            if number is None:
                return await self.summary(connection, org, scope, period, locale)
            found = await self.campaign_summary(connection, org, scope, number, at, locale)
            if isinstance(found, Refused):
                raise BadCampaign(str(number))
            return found

        return await self._db.run(work)

    async def summary(
        self, connection: AsyncConnection, org: Org, scope: Scope, period: Period, locale: str
    ) -> Summary:
        branches = [org.branches[code] for code in org.branch_codes_within(scope)]
        now_figures, before = await store.figures_of(
            connection,
            [windows_for(branches, period), windows_for(branches, period.previous())],
            totals_only={1},  # the previous period is compared as a whole
        )
        surveys = await self._surveys(connection, now_figures, before)
        return self._assemble(locale, scope, period, branches, now_figures, before, surveys)

    async def campaign_summary(
        self,
        connection: AsyncConnection,
        org: Org,
        scope: Scope,
        number: int,
        at: datetime,
        locale: str,
    ) -> Summary | Refused:
        """One campaign's figures in `scope`: the sessions its invitations opened and its
        invitations, whenever they happened. A campaign reaching no branch of the scope is
        refused as outside it; there is no previous period to compare with."""
        campaign = await campaign_store.get(connection, number)
        if campaign is None or campaign.setup is not None:
            return Refused(locale, "unknown_campaign", {"number": number})
        reach = set(org.branch_codes_within(Scope.parse(campaign.scope) or Scope("all")))
        codes = [code for code in org.branch_codes_within(scope) if code in reach]
        if not codes:
            return Refused(locale, "scope")
        branches = [org.branches[code] for code in codes]
        zones: dict[str, list[int]] = defaultdict(list)
        for branch in branches:
            zones[branch.timezone].append(branch.id)
        found = await invitations.campaign_figures(connection, number, sorted(zones.items()))
        today = at.astimezone(self._zone).date()
        first = (campaign.started_at or campaign.created_at).astimezone(self._zone).date()
        end = campaign.expires_at.astimezone(self._zone).date() if campaign.expires_at else today
        period = Period(first, max(first, min(today, end)))
        return self._assemble(
            locale,
            scope,
            period,
            branches,
            found,
            store.Figures(),
            await self._surveys(connection, found),
            CampaignRef(campaign.id, campaign.name),
        )

    def _assemble(
        self,
        locale: str,
        scope: Scope,
        period: Period,
        branches: list[Branch],
        now_figures: store.Figures,
        before: store.Figures,
        surveys: dict[int, Survey],
        campaign: CampaignRef | None = None,
    ) -> Summary:
        names = _Names(surveys, locale)
        split = now_figures.by_branch()
        per_branch = [
            BranchScores(
                b.code, b.name, b.timezone, _scores(split.get(b.id, store.Figures()), names)
            )
            for b in branches
        ]
        ranked = sorted(
            per_branch,
            key=lambda b: (
                b.small_sample,
                -(b.scores.nps.score if b.scores.nps.score is not None else -1000),
                -(b.scores.csat_top2 or 0),
                b.code,
            ),
        )
        return Summary(
            locale,
            scope,
            period,
            _scores(now_figures, names),
            _scores(before, names),
            tuple(ranked),
            _weeks(now_figures, period),
            campaign,
        )

    async def _surveys(
        self, connection: AsyncConnection, *found: store.Figures
    ) -> dict[int, Survey]:
        ids = {
            key[1]
            for figures in found
            for key in (*figures.scores, *figures.choices, *figures.stopped)
        }
        return {sid: (await self._catalog.pinned(connection, sid)).survey for sid in sorted(ids)}


class BadScope(ValueError):
    """A scope that names no region or branch."""


async def staff_request(
    connection: AsyncConnection,
    actor: Actor,
    at: datetime,
    zone: ZoneInfo,
    scope_text: str | None,
    period_text: str | None,
) -> tuple[Org, Scope, Period] | Refused:
    """The scope (the actor's own by default) and period a staff member asked for, refused
    when unknown, outside their scope or malformed."""
    locale = actor.member.locale
    org = await Org.load(connection)
    scope = actor.scope if scope_text is None else parse_scope(scope_text, org)
    if scope is None:
        return Refused(locale, "unknown_scope", {"scope": scope_text})
    if not org.covers(actor.scope, scope):
        return Refused(locale, "scope")
    try:
        return org, scope, Period.parse(period_text, at.astimezone(zone).date())
    except BadPeriod:
        return Refused(locale, "usage")


async def operator_request(
    connection: AsyncConnection,
    zone: ZoneInfo,
    scope_text: str | None,
    period_text: str | None,
    at: datetime,
) -> tuple[Org, Scope, Period]:
    """The command line's scope (the whole bank by default) and period as of `at`; BadScope,
    BadPeriod."""
    org = await Org.load(connection)
    scope = Scope("all") if scope_text is None else parse_scope(scope_text, org)
    if scope is None:
        raise BadScope(scope_text or "")
    return org, scope, Period.parse(period_text, at.astimezone(zone).date())


def split_arguments(args: list[str]) -> tuple[str | None, str | None, bool]:
    """(scope, period, wrong) from the command's words, in either order."""
    scope = period = None
    words: list[str] = []
    for word in args:  # `campaign 12` is one period
        if words and words[-1].lower() == "campaign":
            words[-1] = f"campaign {word}"
        else:
            words.append(word)
    if any(w.lower().startswith("campaign") and campaign_number(w) is None for w in words):
        return None, None, True
    for word in words:
        if looks_like_period(word) and period is None:
            period = word
        elif scope is None and not looks_like_period(word):
            scope = word
        else:
            return None, None, True
    return scope, period, False


def parse_scope(text: str, org: Org) -> Scope | None:
    """`all`, a branch or region code, or `branch:X` / `region:X`, if it exists."""
    parsed = Scope.parse(text)
    if parsed is not None and parsed.kind != "all" and parsed.kind in ("branch", "region"):
        return parsed if org.exists(parsed) else None
    if parsed is not None:
        return parsed
    code = text.strip().upper()
    for kind in ("branch", "region"):
        candidate = Scope(kind, code)
        if org.exists(candidate):
            return candidate
    return None


def windows_for(branches: Iterable[Branch], period: Period) -> list[store.Window]:
    by_zone: dict[str, list[int]] = defaultdict(list)
    for branch in branches:
        by_zone[branch.timezone].append(branch.id)
    windows = []
    for zone_name, ids in sorted(by_zone.items()):
        zone = ZoneInfo(zone_name)
        since = datetime.combine(period.first, time(), zone).astimezone(UTC)
        until = datetime.combine(period.last + timedelta(days=1), time(), zone).astimezone(UTC)
        windows.append(store.Window(zone_name, tuple(ids), period.first, period.last, since, until))
    return windows


class _Names:
    """The labels and scales a summary shows, each looked up once per summary: a bank's
    summary names the same few questions for every branch."""

    def __init__(self, surveys: dict[int, Survey], locale: str) -> None:
        self._surveys = surveys
        self._locale = locale
        self._questions: dict[tuple[int, str], tuple[str, int]] = {}
        self._options: dict[tuple[int, str, str], str] = {}

    def question(self, survey_id: int, question_id: str) -> tuple[str, int]:
        """A question's label and its rating scale."""
        found = self._questions.get((survey_id, question_id))
        if found is None:
            survey = self._surveys[survey_id]
            found = (_label(survey, question_id, self._locale), _scale(survey, question_id))
            self._questions[survey_id, question_id] = found
        return found

    def option(self, survey_id: int, question_id: str, option_id: str) -> str:
        found = self._options.get((survey_id, question_id, option_id))
        if found is None:
            survey = self._surveys[survey_id]
            found = option_label(survey, question_id, option_id, self._locale)
            self._options[survey_id, question_id, option_id] = found
        return found


def _scores(found: store.Figures, names: _Names) -> Scores:
    """Scores over every count in `found` (already limited to the branches wanted)."""
    nps: Counter[int] = Counter()
    ces: Counter[int] = Counter()
    csat: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)
    for (_branch, survey_id, question_id, kind, value), count in found.scores.items():
        if kind == "nps":
            nps[value] += count
        elif kind == "ces":
            ces[value] += count
        else:
            csat[names.question(survey_id, question_id)][value] += count
    choices: dict[str, Counter[str]] = defaultdict(Counter)
    for (_branch, survey_id, question_id, option), count in found.choices.items():
        label = names.question(survey_id, question_id)[0]
        choices[label][names.option(survey_id, question_id, option)] += count
    stopped: Counter[str] = Counter()
    for (_branch, survey_id, reached), count in found.stopped.items():
        stopped[names.question(survey_id, reached)[0]] += count
    return Scores(
        started=sum(found.started.values()),
        responses=sum(found.completed.values()),
        nps=nps_of(nps),
        csat=tuple(CsatLine(q, s, csat_of(c, s)) for (q, s), c in sorted(csat.items())),
        ces=ces_of(ces),
        choices=tuple((q, tuple(c.most_common(3))) for q, c in sorted(choices.items())),
        drop_off=tuple(stopped.most_common()),
        invitations=sum(found.invited.values()),
        invitations_answered=sum(found.responded.values()),
    )


def _weeks(found: store.Figures, period: Period) -> tuple[tuple[date, NpsSummary], ...]:
    """NPS by week (weeks start on the period's first day), for the trend."""
    weeks: dict[date, Counter[int]] = defaultdict(Counter)
    for (day, value), count in found.nps_days.items():
        start = period.first + timedelta(days=7 * ((day - period.first).days // 7))
        weeks[start][value] += count
    return tuple((start, nps_of(counts)) for start, counts in sorted(weeks.items()))


@functools.lru_cache(maxsize=4096)
def _scale(survey: Survey, question_id: str) -> int:
    found = survey.question(question_id).scale if survey.has_question(question_id) else None
    return found or DEFAULT_SCALE


@functools.lru_cache(maxsize=4096)
def _label(survey: Survey, question_id: str, locale: str) -> str:
    if not survey.has_question(question_id):
        return question_id
    return localized(survey.question(question_id).text, locale, survey.default_locale)


@functools.lru_cache(maxsize=4096)
def option_label(survey: Survey, question_id: str, option_id: str, locale: str) -> str:
    if not survey.has_question(question_id):
        return option_id
    option = survey.question(question_id).option(option_id)
    return option_id if option is None else localized(option.text, locale, survey.default_locale)
