"""Customer list validation: every row checked, each problem named by row and column."""

from __future__ import annotations

import pytest

from bot.services.customer_csv import (
    BAD_LOCALE,
    BAD_PHONE,
    BAD_REF,
    EMPTY,
    LONG_NAME,
    MISSING,
    NO_REFS,
    NOT_UTF8,
    REF_COLUMNS,
    REPEATED,
    WRONG_COLUMNS,
    BadList,
    RowError,
    e164,
    parse_csv,
    parse_refs,
)


def test_a_clean_list_with_a_header_and_every_phone_form() -> None:
    parsed = parse_csv(
        "customer ref,name,phone,branch,locale\n"
        "C-001,Budi Santoso,0812-3456-7890,jkt01,id\n"
        "C-002,Siti Aminah,+62 812 3456 7891,BDG01,EN\n"
        "C-003,Ani,812 3456 7892,MKS01,\n"
        "\n"
        "C-004,Tan,+65 9123 4567,JYP01,en\n".encode("utf-8-sig")
    )
    assert parsed.errors == []
    assert [(r.number, r.ref, r.phone, r.branch, r.locale) for r in parsed.rows] == [
        (2, "C-001", "+6281234567890", "JKT01", "id"),
        (3, "C-002", "+6281234567891", "BDG01", "en"),
        (4, "C-003", "+6281234567892", "MKS01", "id"),
        (6, "C-004", "+6591234567", "JYP01", "en"),
    ]


def test_semicolons_as_spreadsheets_in_indonesia_save_them() -> None:
    parsed = parse_csv(b"C-1;Budi;081234567890;JKT01;id\n")
    assert [r.ref for r in parsed.rows] == ["C-1"] and parsed.errors == []


def test_each_bad_row_is_named_with_its_column_and_reason() -> None:
    parsed = parse_csv(
        b"C-1,Budi,081234567890,JKT01,id\n"
        b"C 2,,12,JKT01,fr\n"
        b"C-3,Ani,081234567891,,id\n"
        b"C-4,Tan,081234567892\n"
        b"C-1,Budi lagi,081234567893,JKT01,id\n"
        + b"C-5,"
        + b"x" * 101
        + b",081234567894,JKT01,id\n"
    )
    assert [r.ref for r in parsed.rows] == ["C-1"]
    assert parsed.errors == [
        RowError(2, "ref", BAD_REF),
        RowError(2, "name", MISSING),
        RowError(2, "phone", BAD_PHONE),
        RowError(2, "locale", BAD_LOCALE),
        RowError(3, "branch", MISSING),
        RowError(4, None, WRONG_COLUMNS),
        RowError(5, "ref", REPEATED),
        RowError(6, "name", LONG_NAME),
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", EMPTY), (b"ref,name,phone,branch,locale\n", EMPTY), (b"\xff\xfe,a", NOT_UTF8)],
)
def test_unreadable_files(data: bytes, reason: str) -> None:
    with pytest.raises(BadList) as raised:
        parse_csv(data)
    assert raised.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("081234567890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("+62 (21) 555-0123", "+62215550123"),
        ("+6591234567", "+6591234567"),
        ("12", None),
        ("not a phone", None),
    ],
)
def test_phones_become_e164_with_indonesia_as_the_default(raw: str, expected: str | None) -> None:
    assert e164(raw) == expected


def test_a_list_to_target_is_one_column_of_refs_or_the_customer_list_format() -> None:
    one_column = parse_refs(b"customer ref\nC-1\nC-2\nC-1\n\nbad ref!\nC-3,x\n")
    assert one_column.refs == [(2, "C-1"), (3, "C-2")]  # a ref given twice counts once
    assert one_column.errors == [RowError(6, "ref", BAD_REF), RowError(7, None, REF_COLUMNS)]
    full = parse_refs(b"ref;name;phone;branch;locale\nC-9;Budi;0812;JKT01;id\n;Ani;0813;JKT01;id\n")
    assert full.refs == [(2, "C-9")]  # only the ref is read: the short phone does not matter
    assert full.errors == [RowError(3, "ref", MISSING)]
    assert parse_refs(b"C-7\n").refs == [(1, "C-7")]  # a first row with a digit is no header


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"ref\n", EMPTY), (b"ref\n??\n", NO_REFS), (b"\xff\xfe", NOT_UTF8)],
)
def test_a_list_to_target_without_a_valid_ref_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(BadList) as refused:
        parse_refs(data)
    assert refused.value.reason == reason
