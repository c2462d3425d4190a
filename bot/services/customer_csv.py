"""A customer list as the bank sends it: a CSV of customer ref (the bank's customer number),
name, phone, branch code and locale. Every row is checked on its own, and each problem is named
by row number, column and reason (a message id, shown in the reader's language); branches are
checked against the database when the list is imported.

Pure: no database, no Telegram.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import phonenumbers

from bot.services.i18n import LOCALES, N_

COLUMNS = ("ref", "name", "phone", "branch", "locale")
MAX_BYTES = 5 * 1024 * 1024
MAX_NAME = 100
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$")

MISSING = N_("missing")
WRONG_COLUMNS = N_("expected 5 columns: customer ref, name, phone, branch code, locale")
BAD_REF = N_("not a customer number: letters, digits and . _ / - only, at most 40")
LONG_NAME = N_("longer than 100 characters")
BAD_PHONE = N_("not a valid phone number")
NO_BRANCH = N_("no such branch")
OUT_OF_SCOPE = N_("outside your scope")
BAD_LOCALE = N_("not a supported language: use id or en")
REPEATED = N_("the same customer ref as an earlier row")
NOT_UTF8 = N_("The file is not UTF-8 text: save it as CSV (UTF-8) and send it again.")
EMPTY = N_("The file has no customer rows.")
TOO_LARGE = N_("The file is too large: at most 5 MB.")
REF_COLUMNS = N_("expected the customer ref first: one column, or the 5 columns of a customer list")
NO_REFS = N_("The file has no valid customer ref: put them in its first column.")


class BadList(ValueError):
    """The file as a whole cannot be read; `reason` is a message id."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ListRow:
    number: int  # the row in the file, the header included, as a spreadsheet shows it
    ref: str
    name: str
    phone: str  # E.164
    branch: str
    locale: str


@dataclass(frozen=True)
class RowError:
    number: int
    column: str | None
    reason: str  # a message id


@dataclass(frozen=True)
class ParsedList:
    rows: list[ListRow]
    errors: list[RowError]


def e164(raw: str) -> str | None:
    """A phone number in E.164 form; numbers without a country code are Indonesian (+62)."""
    try:
        number = phonenumbers.parse(raw.strip(), "ID")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_csv(data: bytes) -> ParsedList:
    """Every row checked on its own; an optional header row (its phone cell holds no digit)
    is skipped. Comma, semicolon and tab separators are recognised."""
    text = _text(data)
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    rows: list[ListRow] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, cells in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1):
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        if number == 1 and len(cells) == len(COLUMNS) and not re.search(r"\d", cells[2]):
            continue  # a header
        row, problems = _check(number, cells)
        if row is not None and row.ref in seen:
            row, problems = None, [RowError(number, "ref", REPEATED)]
        if row is None:
            errors.extend(problems)
        else:
            seen.add(row.ref)
            rows.append(row)
    if not rows and not errors:
        raise BadList(EMPTY)
    return ParsedList(rows, errors)


@dataclass(frozen=True)
class RefList:
    """The customer refs of a list a campaign targets: (row number, ref), each ref once."""

    refs: list[tuple[int, str]]
    errors: list[RowError]


def parse_refs(data: bytes) -> RefList:
    """A list to target: the customer list format (only its ref column is read) or one column of
    customer refs. A first row without a digit is a header. A ref given twice counts once."""
    text = _text(data)
    delimiter = max(",;\t", key=text.split("\n", 1)[0].count)
    refs: list[tuple[int, str]] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, cells in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1):
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        if number == 1 and not re.search(r"\d", "".join(cells[:1] + cells[2:3])):
            continue  # a header
        if len(cells) not in (1, len(COLUMNS)):
            errors.append(RowError(number, None, REF_COLUMNS))
        elif not cells[0]:
            errors.append(RowError(number, "ref", MISSING))
        elif not _REF.match(cells[0]):
            errors.append(RowError(number, "ref", BAD_REF))
        elif cells[0] not in seen:
            seen.add(cells[0])
            refs.append((number, cells[0]))
    if not refs:
        raise BadList(NO_REFS if errors else EMPTY)
    return RefList(refs, errors)


def _text(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise BadList(TOO_LARGE)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadList(NOT_UTF8) from None


def _check(number: int, cells: list[str]) -> tuple[ListRow | None, list[RowError]]:
    if len(cells) != len(COLUMNS):
        return None, [RowError(number, None, WRONG_COLUMNS)]
    ref, name, phone, branch, locale = cells
    problems: list[RowError] = []

    def wrong(column: str, reason: str) -> None:
        problems.append(RowError(number, column, reason))

    if not ref:
        wrong("ref", MISSING)
    elif not _REF.match(ref):
        wrong("ref", BAD_REF)
    if not name:
        wrong("name", MISSING)
    elif len(name) > MAX_NAME:
        wrong("name", LONG_NAME)
    normalised = e164(phone) if phone else None
    if not phone:
        wrong("phone", MISSING)
    elif normalised is None:
        wrong("phone", BAD_PHONE)
    if not branch:
        wrong("branch", MISSING)
    locale = locale.lower() or "id"
    if locale not in LOCALES:
        wrong("locale", BAD_LOCALE)
    if problems:
        return None, problems
    assert normalised is not None
    return ListRow(number, ref, name, normalised, branch.upper(), locale), []
