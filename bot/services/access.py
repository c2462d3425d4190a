"""Who may do what, and where: roles, scopes and the one permission table.

Roles are ordered: super_admin > admin > editor > viewer. A scope is `all`, `region:<code>` or
`branch:<code>`; a region's scope covers its branches. Each staff action names the least role
allowed, here and nowhere else; risky actions also need a TOTP code from the last few minutes
(step-up). Services check both on every call, so no handler can forget them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from storage import orgs
from storage.orgs import Branch, Region


class Role(IntEnum):
    VIEWER = 1
    EDITOR = 2
    ADMIN = 3
    SUPER_ADMIN = 4

    @classmethod
    def parse(cls, text: str) -> Role | None:
        try:
            return cls[text.strip().upper().replace("-", "_")]
        except KeyError:
            return None

    @property
    def label(self) -> str:
        return self.name.lower()


# action -> the least role allowed. Handlers and the command line name actions, never roles.
PERMISSIONS: dict[str, Role] = {
    "staff.whoami": Role.VIEWER,
    "staff.logout": Role.VIEWER,
    "staff.list": Role.ADMIN,
    "staff.invite": Role.ADMIN,
    "staff.role": Role.ADMIN,
    "staff.scope": Role.ADMIN,
    "staff.off": Role.ADMIN,
    "staff.on": Role.ADMIN,
    "staff.reset": Role.SUPER_ADMIN,
    "audit.read": Role.SUPER_ADMIN,
    "survey.list": Role.EDITOR,
    "survey.upload": Role.EDITOR,
    "survey.preview": Role.EDITOR,
    "survey.use": Role.ADMIN,
    "results.read": Role.VIEWER,
    "export.read": Role.VIEWER,
    # Names and phones of customers who agreed to be contacted, after a fresh code.
    "export.contacts": Role.ADMIN,
    # Lists hold many customers' personal data and their links tie Telegram accounts to them.
    "customers.import": Role.ADMIN,
    # A poster carries only a public branch link: editors prepare branch material.
    "qr.poster": Role.EDITOR,
    "campaign.list": Role.ADMIN,
    "campaign.show": Role.ADMIN,
    "campaign.create": Role.ADMIN,
    "campaign.launch": Role.ADMIN,
    "campaign.pause": Role.ADMIN,
    "campaign.resume": Role.ADMIN,
    "campaign.cancel": Role.ADMIN,
    # The closed loop is the branch's own work: every role that reads the branch's results
    # may take its alerts and follow its detractors up.
    "alerts.set": Role.VIEWER,
    "followups.list": Role.VIEWER,
    "followup.take": Role.VIEWER,
    "followup.resolve": Role.VIEWER,
}

# Actions that need a fresh code (step-up) before they are carried out.
RISKY = frozenset({"staff.role", "staff.scope", "staff.off", "staff.reset", "export.contacts"})

_SCOPE = re.compile(r"^(all|region:[A-Za-z0-9_-]{1,16}|branch:[A-Za-z0-9_-]{1,16})$")


@dataclass(frozen=True)
class Scope:
    kind: str  # all | region | branch
    code: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """`all`, `region:JKT` or `branch:JKT01` (codes upper-cased), else None."""
        text = text.strip()
        if not _SCOPE.match(text):
            return None
        if text == "all":
            return cls("all")
        kind, code = text.split(":", 1)
        return cls(kind, code.upper())

    def __str__(self) -> str:
        return "all" if self.kind == "all" else f"{self.kind}:{self.code}"


@dataclass(frozen=True)
class Org:
    """A snapshot of regions and branches, to decide what a scope covers."""

    regions: dict[str, Region]
    branches: dict[str, Branch]

    @classmethod
    def of(cls, regions: Iterable[Region], branches: Iterable[Branch]) -> Org:
        return cls({r.code: r for r in regions}, {b.code: b for b in branches})

    @classmethod
    async def load(cls, connection: AsyncConnection) -> Org:
        return cls.of(await orgs.all_regions(connection), await orgs.all_branches(connection))

    def exists(self, scope: Scope) -> bool:
        if scope.kind == "all":
            return True
        table = self.regions if scope.kind == "region" else self.branches
        return scope.code in table

    def region_of(self, branch_code: str) -> str | None:
        branch = self.branches.get(branch_code)
        if branch is None:
            return None
        return next((r.code for r in self.regions.values() if r.id == branch.region_id), None)

    def covers(self, outer: Scope, inner: Scope) -> bool:
        """Whether everything `inner` names lies inside `outer`."""
        if outer.kind == "all":
            return True
        if outer.kind == "region":
            if inner.kind == "region":
                return inner.code == outer.code
            return inner.kind == "branch" and self.region_of(inner.code or "") == outer.code
        return inner == outer

    def scopes_within(self, outer: Scope) -> list[str] | None:
        """Every scope string inside `outer`, for filtering a query (None: no filter)."""
        if outer.kind == "all":
            return None
        if outer.kind == "branch":
            return [str(outer)]
        region = self.regions.get(outer.code or "")
        inside = [
            f"branch:{b.code}"
            for b in self.branches.values()
            if region and b.region_id == region.id
        ]
        return [str(outer), *inside]

    def branch_codes_within(self, outer: Scope) -> list[str]:
        allowed = self.scopes_within(outer)
        return sorted(
            code for code in self.branches if allowed is None or f"branch:{code}" in allowed
        )
