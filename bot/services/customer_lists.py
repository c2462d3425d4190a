"""The bank's customer lists: import a checked list (customer_csv), hand out personal links,
tie a Telegram account to its imported customer when the link is opened or the phone is
shared, and the deep link of a branch poster.

Rows of unknown branches or outside the importer's scope are rejected; the rest are imported
in one unit of work. The ref is the key: importing the same file again changes
nothing, and a changed row updates its customer. A new customer gets a personal link
(`?start=p_<token>`) whose token is stored only as a keyed hash, so it can be printed once and
never again: a re-import keeps existing links working, and `renew` issues fresh ones (the old
ones stop working) for a bank that lost the file or wants to send them again.
"""

from __future__ import annotations

import csv
import io
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.services.access import Org, Scope
from bot.services.clock import Clock, system_clock
from bot.services.customer_csv import (
    COLUMNS,
    NO_BRANCH,
    OUT_OF_SCOPE,
    TOO_LARGE,
    BadList,
    ListRow,
    ParsedList,
    RowError,
    e164,
    parse_csv,
)
from bot.services.i18n import gettext as _
from bot.services.i18n import use_locale
from bot.services.staff import SYSTEM, Actor, Refused, StaffAccess, Who
from storage import audit, orgs
from storage import customer_lists as store
from storage import customers as customer_store
from storage import surveys as survey_store
from storage.crypto import get_keyring
from storage.db import Database

# -- keyed hashes ---------------------------------------------------------------------------


def ref_index(ref: str) -> str:
    return get_keyring().blind_index(f"customer-ref:{ref}")


def link_index(token: str) -> str:
    return get_keyring().blind_index(f"customer-link:{token}")


def _row_index(row: ListRow) -> str:
    return get_keyring().blind_index(
        "customer-row:" + "\x1f".join((row.ref, row.name, row.phone, row.branch, row.locale))
    )


# -- importing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewLink:
    ref: str
    name: str
    token: str


@dataclass(frozen=True)
class ImportReport:
    locale: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)
    links: list[NewLink] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({error.number for error in self.rejected})


@dataclass(frozen=True)
class ListUnreadable:
    locale: str
    reason: str  # a message id


@dataclass(frozen=True)
class PosterLink:
    locale: str
    branch_code: str
    branch_name: str
    payload: str  # b_<BRANCH> or c_<token>


@dataclass(frozen=True)
class UnknownName:
    """`/qr` named a branch or survey that does not exist."""

    locale: str
    what: str  # branch | survey
    name: str


async def import_rows(
    connection: AsyncConnection,
    parsed: ParsedList,
    *,
    actor: str,
    at: datetime,
    scope: Scope,
    renew: bool = False,
    locale: str = "en",
) -> ImportReport:
    """Apply a checked list in the caller's transaction, only for branches inside `scope`;
    audited as `actor`."""
    org = Org.of(await orgs.all_regions(connection), await orgs.all_branches(connection))
    inside = {
        branch.id
        for branch in org.branches.values()
        if org.covers(scope, Scope("branch", branch.code))
    }
    rejected = list(parsed.errors)
    accepted: list[tuple[ListRow, int]] = []
    for row in parsed.rows:
        branch = org.branches.get(row.branch)
        if branch is None:
            rejected.append(RowError(row.number, "branch", NO_BRANCH))
        elif branch.id not in inside:
            rejected.append(RowError(row.number, "branch", OUT_OF_SCOPE))
        else:
            accepted.append((row, branch.id))
    known = await store.by_ref_hashes(connection, [ref_index(row.ref) for row, _ in accepted])
    created: list[store.NewCustomer] = []
    links: list[NewLink] = []
    updated = unchanged = 0
    for row, branch_id in accepted:
        listed = known.get(ref_index(row.ref))
        if listed is not None and listed.branch_id not in inside:
            # Moving a customer out of a branch needs a scope covering that branch too.
            rejected.append(RowError(row.number, "ref", OUT_OF_SCOPE))
            continue
        token = secrets.token_urlsafe(16)
        if listed is None:
            created.append(
                store.NewCustomer(
                    row.ref,
                    ref_index(row.ref),
                    _row_index(row),
                    row.name,
                    row.phone,
                    customer_store.phone_index(row.phone),
                    branch_id,
                    row.locale,
                    link_index(token),
                )
            )
            links.append(NewLink(row.ref, row.name, token))
            continue
        changes: dict[str, object] = {}
        if listed.row_hash != _row_index(row):
            changes.update(
                name=row.name,
                phone=row.phone,
                phone_hash=customer_store.phone_index(row.phone),
                branch_id=branch_id,
                row_hash=_row_index(row),
            )
            if not listed.claimed:  # once they use the bot, the language is theirs to choose
                changes["locale"] = row.locale
            updated += 1
        else:
            unchanged += 1
        if renew or not listed.has_link:
            changes["link_hash"] = link_index(token)
            links.append(NewLink(row.ref, row.name, token))
        if changes:
            await store.update(connection, listed.id, **changes)
    await store.insert(connection, created, at)
    report = ImportReport(
        locale,
        len(created),
        updated,
        unchanged,
        sorted(rejected, key=lambda e: (e.number, COLUMNS.index(e.column) if e.column else -1)),
        links,
    )
    await audit.append(
        connection,
        actor,
        "customers.import",
        details={
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": report.rejected_rows,
            "links": len(links),
            "renew": renew,
        },
        at=at,
    )
    return report


def links_csv(links: list[NewLink], bot_username: str) -> bytes:
    """ref, name, link: for the bank's SMS or e-mail gateway."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("ref", "name", "link"))
    for link in links:
        writer.writerow((link.ref, link.name, personal_link(bot_username, link.token)))
    return out.getvalue().encode("utf-8")


def personal_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start=p_{token}"


def describe(report: ImportReport, *, limit: int | None = None) -> str:
    """The report in the report's language: counts, then each rejected row and why."""
    with use_locale(report.locale):
        lines = [
            _(
                "Customers: {created} new, {updated} updated, {unchanged} unchanged; "
                "{rejected} rows rejected."
            ).format(
                created=report.created,
                updated=report.updated,
                unchanged=report.unchanged,
                rejected=report.rejected_rows,
            )
        ]
        shown = report.rejected if limit is None else report.rejected[:limit]
        for error in shown:
            lines.append(row_error_text(error))
        if len(shown) < len(report.rejected):
            lines.append(_("… and {count} more.").format(count=len(report.rejected) - len(shown)))
        return "\n".join(lines)


def row_error_text(error: RowError) -> str:
    """One rejected row, in the current language."""
    if error.column is None:
        return _("Row {row}: {reason}").format(row=error.number, reason=_(error.reason))
    return _("Row {row}, {column}: {reason}").format(
        row=error.number, column=error.column, reason=_(error.reason)
    )


class CustomerLists:
    """Imports from the command line (the system actor) and from staff in chat."""

    def __init__(self, db: Database, staff: StaffAccess, clock: Clock = system_clock) -> None:
        self._db = db
        self._staff = staff
        self.clock = clock

    async def import_as_system(self, data: bytes, *, renew: bool = False) -> ImportReport:
        """`run_bot.py import-customers`: every branch; raises BadList for an unreadable file."""
        parsed = parse_csv(data)

        async def work(connection: AsyncConnection) -> ImportReport:
            return await import_rows(
                connection,
                parsed,
                actor=SYSTEM,
                at=self.clock(),
                scope=Scope("all"),
                renew=renew,
            )

        return await self._db.run(work)

    async def import_file(
        self, who: Who, file_name: str, data: bytes | None, *, renew: bool = False
    ) -> ImportReport | ListUnreadable | Refused:
        """A CSV uploaded in chat (None: too large to fetch): only rows of branches inside the
        staff member's scope."""

        async def body(
            connection: AsyncConnection, actor: Actor, at: datetime
        ) -> ImportReport | ListUnreadable:
            locale = actor.member.locale
            try:
                if data is None:
                    raise BadList(TOO_LARGE)
                parsed = parse_csv(data)
            except BadList as error:
                return ListUnreadable(locale, error.reason)
            return await import_rows(
                connection,
                parsed,
                actor=actor.ref,
                at=at,
                scope=actor.scope,
                renew=renew,
                locale=locale,
            )

        return await self._staff.run_command(
            who, "customers.import", body, target=f"file:{file_name}"[:80]
        )

    async def poster(
        self, who: Who, branch_code: str, survey_key: str | None
    ) -> PosterLink | UnknownName | Refused:
        """`/qr <branch> [survey]`: the deep link a branch poster carries."""

        async def body(
            connection: AsyncConnection, actor: Actor, at: datetime
        ) -> PosterLink | UnknownName | Refused:
            locale = actor.member.locale
            code = branch_code.upper()
            branch = await orgs.branch_by_code(connection, code)
            if branch is None:
                return UnknownName(locale, "branch", branch_code)
            org = Org.of(await orgs.all_regions(connection), await orgs.all_branches(connection))
            if not org.covers(actor.scope, Scope("branch", code)):
                return Refused(locale, "scope")
            if survey_key is None or survey_key == branch.survey_key:
                return PosterLink(locale, code, branch.name, f"b_{code}")
            if await survey_store.latest(connection, survey_key) is None:
                return UnknownName(locale, "survey", survey_key)
            existing = next(
                (
                    link
                    for link in await survey_store.links(connection)
                    if link.survey_key == survey_key
                    and link.branch_id == branch.id
                    and link.expires_at is None
                ),
                None,
            )
            link = existing or await survey_store.create_link(connection, survey_key, branch.id)
            return PosterLink(locale, code, branch.name, f"c_{link.token}")

        return await self._staff.run_command(
            who, "qr.poster", body, target=f"branch:{branch_code}"[:80]
        )


# -- a Telegram account meets its imported customer ----------------------------------------


async def claim_link(
    connection: AsyncConnection, customer_id: int, token: str, at: datetime
) -> str | None:
    """`/start p_<token>` by the account behind `customer_id`: the imported customer becomes
    that account's (one row). The branch deep link to open next, or None for a link that is
    unknown, erased or already another account's."""
    found = await store.by_link_hash(connection, link_index(token))
    if found is None or (found.telegram_id is not None and found.id != customer_id):
        return None
    return await _claim(connection, customer_id, found, "link", at)


async def claim_phone(
    connection: AsyncConnection, customer_id: int, phone: str, at: datetime
) -> str | None:
    """A contact the customer shared of themselves: like a personal link, found by the phone."""
    normalised = e164(phone if phone.startswith("+") else f"+{phone}")
    if normalised is None:
        return None
    hashed = customer_store.phone_index(normalised)
    own = await customer_store.by_phone(connection, normalised)
    found = await store.unclaimed_by_phone_hash(connection, hashed)
    if own is not None and own.id == customer_id:
        found = store.Claimable(own.id, own.telegram_id, own.branch_id)
    if found is None:
        return None
    return await _claim(connection, customer_id, found, "phone", at)


async def _claim(
    connection: AsyncConnection, customer_id: int, found: store.Claimable, via: str, at: datetime
) -> str | None:
    # An account that is already another bank customer's opens the survey and ties nothing.
    if found.id != customer_id and await store.ref_hash_of(connection, customer_id) is None:
        await store.merge_into(connection, customer_id, found.id)
        await audit.append(
            connection,
            f"customer:{customer_id}",
            "customer.claim",
            target=f"customer:{found.id}",
            details={"via": via},
            at=at,
        )
    if found.branch_id is None:
        return None
    branch = await orgs.branch_by_id(connection, found.branch_id)
    return None if branch is None else f"b_{branch.code}"
