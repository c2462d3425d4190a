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


async def load_example(connection: AsyncConnection) -> list[str]:
    """Create (or refresh) the example organisation; returns the deep-link payloads to try."""
    regions = {
        code: await orgs.ensure_region(connection, code, name) for code, name in REGIONS.items()
    }
    for branch in BRANCHES:
        await orgs.ensure_branch(
            connection, branch.code, branch.name, regions[branch.region], branch.timezone
        )
    payloads = [f"b_{branch.code}" for branch in BRANCHES]
    existing = [
        link for link in await survey_store.links(connection) if link.survey_key == DIGITAL_SURVEY
    ]
    link = existing[0] if existing else await survey_store.create_link(connection, DIGITAL_SURVEY)
    payloads.append(f"c_{link.token}")
    return payloads
