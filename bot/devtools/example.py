"""The example organisation: two regions, four branches across Indonesia's three time zones.

`run_bot.py init --example` loads it so a newcomer with a token can open a branch deep link at
once; the demo seeds the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from storage import orgs
from storage import surveys as survey_store


@dataclass(frozen=True)
class ExampleBranch:
    code: str
    name: str
    region: str
    timezone: str


REGIONS = {"BAR": "Indonesia Barat", "TIM": "Indonesia Timur"}
BRANCHES = (
    ExampleBranch("JKT01", "KC Jakarta Sudirman", "BAR", "Asia/Jakarta"),
    ExampleBranch("BDG01", "KC Bandung Asia Afrika", "BAR", "Asia/Jakarta"),
    ExampleBranch("MKS01", "KC Makassar Panakkukang", "TIM", "Asia/Makassar"),
    ExampleBranch("JYP01", "KC Jayapura Ahmad Yani", "TIM", "Asia/Jayapura"),
)
DIGITAL_SURVEY = "digital_banking"


@dataclass(frozen=True)
class ExampleLink:
    """A deep-link payload to try and what it opens: a branch's poster (its survey is
    DEFAULT_SURVEY, `survey_key` None) or a survey link."""

    payload: str
    survey_key: str | None
    branch: str | None = None


async def load_example(connection: AsyncConnection) -> list[ExampleLink]:
    """Create (or refresh) the example organisation; returns the deep links to try."""
    regions = {
        code: await orgs.ensure_region(connection, code, name) for code, name in REGIONS.items()
    }
    for branch in BRANCHES:
        await orgs.ensure_branch(
            connection, branch.code, branch.name, regions[branch.region], branch.timezone
        )
    payloads = [ExampleLink(f"b_{branch.code}", None, branch.name) for branch in BRANCHES]
    existing = [
        link for link in await survey_store.links(connection) if link.survey_key == DIGITAL_SURVEY
    ]
    link = existing[0] if existing else await survey_store.create_link(connection, DIGITAL_SURVEY)
    payloads.append(ExampleLink(f"c_{link.token}", DIGITAL_SURVEY))
    return payloads
