"""The survey catalog: survey files on disk become stored versions, parsed once and cached.

A session pins the stored version it started on, so editing a file never disturbs a run in
flight; versions are immutable, so the parsed cache never needs invalidating.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import ConfigError
from flows import Survey, SurveyDefinitionError, load_survey
from storage import orgs
from storage import surveys as survey_store
from storage.db import Database
from storage.models import now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pinned:
    """A parsed survey with the stored version it came from."""

    id: int
    version: int
    survey: Survey


@dataclass(frozen=True)
class SyncReport:
    added: tuple[str, ...]
    unchanged: tuple[str, ...]
    rejected: tuple[str, ...]  # one report per broken file
    # file name without .yaml -> the first problem, in one sentence naming the file
    broken: dict[str, str] = field(default_factory=dict)


def _read_surveys(directory: Path) -> list[tuple[Path, str | None]]:
    """Every `*.yaml` file's text, or None where it cannot be read."""
    found: list[tuple[Path, str | None]] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            found.append((path, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            found.append((path, None))
    return found


class SurveyCatalog:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_id: dict[int, Pinned] = {}
        self._broken: dict[str, str] = {}
        self._directory = Path("surveys")

    async def sync_directory(self, directory: Path) -> SyncReport:
        """Store every valid `*.yaml` survey; a broken file is reported and skipped."""
        added: list[str] = []
        unchanged: list[str] = []
        rejected: list[str] = []
        broken: dict[str, str] = {}
        for path, text in await asyncio.to_thread(_read_surveys, directory):
            try:
                if text is None:
                    raise OSError
                survey = load_survey(text, source=str(path))
            except SurveyDefinitionError as error:
                rejected.append(str(error))
                more = len(error.problems) - 1
                broken[path.stem] = f"{path} is invalid: {error.problems[0]}" + (
                    f" (and {more} more problems)" if more else ""
                )
                log.error("%s", error)
                continue
            except OSError:
                rejected.append(f"{path}: the file cannot be read as UTF-8 text.")
                broken[path.stem] = f"{path} cannot be read as UTF-8 text"
                log.error("%s", rejected[-1])
                continue
            pinned, is_new = await self.register(survey, text)
            (added if is_new else unchanged).append(f"{survey.id} v{pinned.version}")
        self._broken, self._directory = broken, directory
        return SyncReport(tuple(added), tuple(unchanged), tuple(rejected), broken)

    async def check_in_use(self, default_key: str) -> None:
        """ConfigError naming the file and its problem when a survey that customers can reach
        (DEFAULT_SURVEY, a branch's survey, an open survey link) did not load: otherwise the
        bot would start and tell those customers that their link has expired."""
        async with self._db.transaction() as connection:
            users = {default_key: "DEFAULT_SURVEY"}
            for branch in await orgs.all_branches(connection):
                if branch.survey_key:
                    users.setdefault(branch.survey_key, f"branch {branch.code}")
            for link in await survey_store.links(connection):
                if link.expires_at is None or link.expires_at > now():
                    users.setdefault(link.survey_key, f"survey link c_{link.token}")
            for key, user in users.items():
                if key in self._broken:
                    raise ConfigError(f"Survey file {self._broken[key]}, and {user} uses it.")
                if await survey_store.latest(connection, key) is None:
                    where = self._directory / f"{key}.yaml"
                    raise ConfigError(
                        f"Survey file {where} is missing, and {user} uses survey {key!r}."
                    )

    async def register(self, survey: Survey, text: str) -> tuple[Pinned, bool]:
        async with self._db.transaction() as connection:
            stored, is_new = await survey_store.register(
                connection, survey.id, text, survey.checksum
            )
        pinned = Pinned(stored.id, stored.version, survey)
        self._by_id[stored.id] = pinned
        if is_new:
            log.info("survey %s stored as version %d", survey.id, stored.version)
        return pinned, is_new

    async def latest(self, connection: AsyncConnection, key: str) -> Pinned | None:
        stored = await survey_store.latest(connection, key)
        return None if stored is None else self._pin(stored)

    async def pinned(self, connection: AsyncConnection, survey_id: int) -> Pinned:
        """The parsed survey a session pinned; parsed from the database once per process."""
        found = self._by_id.get(survey_id)
        if found is not None:
            return found
        stored = await survey_store.by_id(connection, survey_id)
        if stored is None:
            raise LookupError(f"survey version {survey_id} does not exist")
        return self._pin(stored)

    def _pin(self, stored: survey_store.SurveyVersion) -> Pinned:
        found = self._by_id.get(stored.id)
        if found is None:
            survey = load_survey(stored.source, source=f"{stored.key} v{stored.version}")
            found = self._by_id[stored.id] = Pinned(stored.id, stored.version, survey)
        return found
