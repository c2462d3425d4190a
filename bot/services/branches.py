"""Regions and branches from a CSV file: every row checked, then all stored or none.

The columns are region code, region name, branch code, branch name, IANA time zone and survey
key (blank: the default survey); a first row naming the columns is skipped. Parsing is separate
from storing so a file sent in chat can be checked the same way as one on the command line.
Re-importing a file updates the branches and regions it names in place.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.ext.asyncio import AsyncConnection

from storage import audit, orgs
from storage import surveys as survey_store
from storage.db import Database

COLUMNS = ("region code", "region name", "branch code", "branch name", "time zone", "survey key")
MAX_ROWS = 5000
MAX_NAME = 100
_CODE = re.compile(r"^[A-Z0-9_-]{1,16}$")
_SURVEY_KEY = re.compile(r"^[a-z0-9_]{1,32}$")

# problem code -> the English sentence; params fill the braces.
MESSAGES: dict[str, str] = {
    "not_utf8": "the file is not UTF-8 text",
    "empty": "the file has no rows",
    "too_many_rows": "the file has more than {limit} rows",
    "not_csv": "the file is not readable CSV ({detail})",
    "column_count": "expected {expected} columns, got {got}",
    "bad_code": "{value!r} is not a code; use 1 to 16 of A-Z, 0-9, _ and -",
    "empty_name": "the name is empty",
    "long_name": "the name has {length} characters; at most {limit}",
    "duplicate_branch": "branch {value} is already on row {first}",
    "region_renamed": "region {value} is named {name!r} on row {first}",
    "bad_zone": "{value!r} is not an IANA time zone such as Asia/Jakarta",
    "unknown_survey": "there is no survey {value!r} in the catalog",
}


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with the file: its row (1 = the first line) and column, if any."""

    row: int | None
    column: str | None
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"row {self.row}" if self.row is not None else None,
                self.column,
            )
            if part
        )
        message = MESSAGES[self.code].format(**self.params)
        return f"{where}: {message}." if where else f"The file is unusable: {message}."


@dataclass(frozen=True)
class BranchRow:
    row: int
    region_code: str
    region_name: str
    branch_code: str
    branch_name: str
    timezone: str
    survey_key: str | None


@dataclass(frozen=True)
class ImportReport:
    rows: tuple[BranchRow, ...]
    problems: tuple[RowProblem, ...]
    created: int = 0
    updated: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _is_header(cells: list[str]) -> bool:
    return [c.strip().lower().replace("_", " ") for c in cells[:3]] == list(COLUMNS[:3])


def parse_branches(data: bytes, known_surveys: Collection[str]) -> ImportReport:
    """Check every row; the rows to store, or every problem found (then nothing is stored)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ImportReport((), (RowProblem(None, None, "not_utf8"),))
    try:
        lines = [
            (number, cells)
            for number, cells in enumerate(csv.reader(io.StringIO(text, newline="")), 1)
            if any(cell.strip() for cell in cells)
        ]
    except csv.Error as error:
        return ImportReport((), (RowProblem(None, None, "not_csv", {"detail": str(error)}),))
    if lines and _is_header(lines[0][1]):
        lines = lines[1:]
    if not lines:
        return ImportReport((), (RowProblem(None, None, "empty"),))
    if len(lines) > MAX_ROWS:
        return ImportReport((), (RowProblem(None, None, "too_many_rows", {"limit": MAX_ROWS}),))
    zones = available_timezones()
    rows: list[BranchRow] = []
    problems: list[RowProblem] = []
    branch_rows: dict[str, int] = {}
    region_names: dict[str, tuple[str, int]] = {}
    for number, cells in lines:
        if len(cells) != len(COLUMNS):
            problems.append(
                RowProblem(
                    number, None, "column_count", {"expected": len(COLUMNS), "got": len(cells)}
                )
            )
            continue
        found = _check_row(number, [c.strip() for c in cells], zones, known_surveys)
        problems.extend(found[1])
        row = found[0]
        if row is None:
            continue
        first = branch_rows.setdefault(row.branch_code, number)
        if first != number:
            problems.append(
                RowProblem(
                    number,
                    COLUMNS[2],
                    "duplicate_branch",
                    {"value": row.branch_code, "first": first},
                )
            )
        name, first = region_names.setdefault(row.region_code, (row.region_name, number))
        if name != row.region_name:
            problems.append(
                RowProblem(
                    number,
                    COLUMNS[1],
                    "region_renamed",
                    {"value": row.region_code, "name": name, "first": first},
                )
            )
        rows.append(row)
    if problems:
        return ImportReport((), tuple(problems))
    return ImportReport(tuple(rows), ())


def _check_row(
    number: int, cells: list[str], zones: Collection[str], known_surveys: Collection[str]
) -> tuple[BranchRow | None, list[RowProblem]]:
    region_code, region_name, branch_code, branch_name, zone, survey_key = cells
    problems: list[RowProblem] = []
    for column, code in ((COLUMNS[0], region_code), (COLUMNS[2], branch_code)):
        if not _CODE.match(code.upper()):
            problems.append(RowProblem(number, column, "bad_code", {"value": code}))
    for column, name in ((COLUMNS[1], region_name), (COLUMNS[3], branch_name)):
        if not name:
            problems.append(RowProblem(number, column, "empty_name"))
        elif len(name) > MAX_NAME:
            problems.append(
                RowProblem(number, column, "long_name", {"length": len(name), "limit": MAX_NAME})
            )
    if not _known_zone(zone, zones):
        problems.append(RowProblem(number, COLUMNS[4], "bad_zone", {"value": zone}))
    if survey_key and (not _SURVEY_KEY.match(survey_key) or survey_key not in known_surveys):
        problems.append(RowProblem(number, COLUMNS[5], "unknown_survey", {"value": survey_key}))
    if problems:
        return None, problems
    row = BranchRow(
        number,
        region_code.upper(),
        region_name,
        branch_code.upper(),
        branch_name,
        zone,
        survey_key or None,
    )
    return row, []


def _known_zone(name: str, zones: Collection[str]) -> bool:
    if name not in zones:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def import_branches(
    db: Database, data: bytes, actor: str = "system", *, at: datetime
) -> ImportReport:
    """Check the file and, if every row is good, store all of it in one unit of work; a bad
    file changes nothing. Audited either way, as of `at`."""

    async def work(connection: AsyncConnection) -> ImportReport:
        report = parse_branches(data, await survey_store.keys(connection))
        if not report.ok:
            await audit.append(
                connection,
                actor,
                "branches.import",
                outcome="refused",
                details={"problems": len(report.problems)},
                at=at,
            )
            return report
        existing = {branch.code for branch in await orgs.all_branches(connection)}
        regions: dict[str, orgs.Region] = {}
        for row in report.rows:
            region = regions.get(row.region_code)
            if region is None:
                region = regions[row.region_code] = await orgs.ensure_region(
                    connection, row.region_code, row.region_name
                )
            await orgs.ensure_branch(
                connection, row.branch_code, row.branch_name, region, row.timezone, row.survey_key
            )
        updated = sum(1 for row in report.rows if row.branch_code in existing)
        created = len(report.rows) - updated
        await audit.append(
            connection,
            actor,
            "branches.import",
            details={"created": created, "updated": updated, "regions": len(regions)},
            at=at,
        )
        return ImportReport(report.rows, (), created, updated)

    return await db.run(work)
