"""Encryption at rest: keys, key files, blind indexes, phones, and the column type on both
databases. Secrets and plaintext must never leak into messages, logs or the database file."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.crypto import (
    CryptoError,
    EncryptedText,
    KeyFileError,
    KeyMaterial,
    KeyMissing,
    Keyring,
    WrongKey,
    add_key_to_file,
    create_key_file,
    encrypted_columns,
    generate_key_material,
    get_keyring,
    key_material_from_settings,
    load_key_file,
    normalise_phone,
    retire_old_keys,
    rotate_all,
    set_keyring,
    using_keyring,
)

PG_URL = os.environ.get("SUARA_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SECRET_NAME = "Siti Nurhaliza binti Rahmat"
SECRET_ANSWER = "Teller di cabang Sudirman sangat ramah, antrian cepat ✓"


def secrets_of(material: KeyMaterial) -> list[str]:
    return [*material.fernet_keys, material.hash_key]


@pytest.fixture
def material() -> KeyMaterial:
    return generate_key_material()


@pytest.fixture
def keyring(material: KeyMaterial) -> Iterator[Keyring]:
    ring = Keyring(material)
    with using_keyring(ring):
        yield ring


# --------------------------------------------------------------------------- keyring


def test_round_trip(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET_ANSWER)
    assert token.startswith("gAAAAA")
    assert SECRET_ANSWER not in token
    assert keyring.decrypt(token) == SECRET_ANSWER
    assert keyring.encrypt(SECRET_ANSWER) != token  # randomised
    assert keyring.decrypt(keyring.encrypt("")) == ""


def test_wrong_key_raises_wrong_key_without_secrets(keyring: Keyring) -> None:
    token = keyring.encrypt(SECRET_NAME)
    other = generate_key_material()
    with pytest.raises(WrongKey) as info:
        Keyring(other).decrypt(token)
    message = str(info.value)
    assert SECRET_NAME not in message
    assert token not in message
    assert all(secret not in message for secret in secrets_of(other))
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize("garbage", ["", "not a token", "gAAAAAB" + "A" * 80, "tökén"])
def test_garbage_tokens_are_wrong_key(keyring: Keyring, garbage: str) -> None:
    with pytest.raises(WrongKey):
        keyring.decrypt(garbage)


def test_encrypt_refuses_non_text(keyring: Keyring) -> None:
    with pytest.raises(TypeError):
        keyring.encrypt(b"bytes")  # type: ignore[arg-type]


def test_canary(material: KeyMaterial) -> None:
    ring = Keyring(material)
    canary = ring.make_canary()
    ring.check_canary(canary)
    Keyring(material).check_canary(canary)

    with pytest.raises(WrongKey, match="encryption key"):
        Keyring(generate_key_material()).check_canary(canary)
    with pytest.raises(WrongKey):
        ring.check_canary("garbage")
    # Right Fernet key, wrong hash key: phone look-ups would silently miss, so refuse.
    other_hash = KeyMaterial(material.fernet_keys, generate_key_material().hash_key)
    with pytest.raises(WrongKey, match="hash key"):
        Keyring(other_hash).check_canary(canary)
    # Any token that is not the canary is refused too.
    with pytest.raises(WrongKey):
        ring.check_canary(ring.encrypt("something else"))


def test_multifernet_rotation(material: KeyMaterial) -> None:
    old = Keyring(material)
    token = old.encrypt(SECRET_NAME)
    new_key = Fernet.generate_key().decode()
    both = Keyring(KeyMaterial((new_key, *material.fernet_keys), material.hash_key))
    newest_only = Keyring(KeyMaterial((new_key,), material.hash_key))

    assert both.decrypt(token) == SECRET_NAME
    with pytest.raises(WrongKey):
        newest_only.decrypt(token)
    assert both.needs_rotation(token)

    rotated = both.rotate(token)
    assert rotated != token
    assert not both.needs_rotation(rotated)
    assert newest_only.decrypt(rotated) == SECRET_NAME
    # New values are written under the newest key only.
    assert newest_only.decrypt(both.encrypt(SECRET_NAME)) == SECRET_NAME
    # Agrees with cryptography's own MultiFernet.
    multi = MultiFernet([Fernet(new_key), *(Fernet(k) for k in material.fernet_keys)])
    assert multi.decrypt(rotated.encode()).decode() == SECRET_NAME

    with pytest.raises(WrongKey):
        newest_only.needs_rotation(token)
    with pytest.raises(WrongKey):
        newest_only.rotate(token)


def test_blind_index_is_stable_and_key_dependent(material: KeyMaterial) -> None:
    phone = "+6281234567890"
    first = Keyring(material).blind_index(phone)
    assert first == Keyring(material).blind_index(phone)
    assert len(first) == 64 and int(first, 16) >= 0
    assert phone not in first
    assert Keyring(material).blind_index("+6281234567891") != first
    # Only the hash key matters, so Fernet rotation keeps every index valid.
    rotated = KeyMaterial(
        (Fernet.generate_key().decode(), *material.fernet_keys), material.hash_key
    )
    assert Keyring(rotated).blind_index(phone) == first
    assert Keyring(generate_key_material()).blind_index(phone) != first
    # Documented construction: HMAC-SHA256 over UTF-8 with the decoded hash key.
    raw_key = __import__("base64").urlsafe_b64decode(material.hash_key)
    assert first == hmac.new(raw_key, phone.encode(), hashlib.sha256).hexdigest()


def test_active_keyring(material: KeyMaterial) -> None:
    with using_keyring(None):
        with pytest.raises(KeyMissing) as info:
            get_keyring()
        assert isinstance(info.value, CryptoError)
        ring = Keyring(material)
        with using_keyring(ring):
            assert get_keyring() is ring
        with pytest.raises(KeyMissing):
            get_keyring()
        set_keyring(ring)
        assert get_keyring() is ring
        set_keyring(None)
        with pytest.raises(KeyMissing):
            get_keyring()


def test_reprs_hide_secrets(material: KeyMaterial) -> None:
    for text in (repr(material), str(material), repr(Keyring(material))):
        assert all(secret not in text for secret in secrets_of(material))


# --------------------------------------------------------------------------- key material


def test_key_material_json_round_trip(material: KeyMaterial) -> None:
    assert KeyMaterial.from_json(material.to_json()) == material
    assert json.loads(material.to_json())["fernet_keys"] == list(material.fernet_keys)


@pytest.mark.parametrize(
    "text",
    [
        "not json {",
        "[]",
        '{"format": "other"}',
        '{"format": "suara-keys", "version": 99}',
        '{"format": "suara-keys", "version": 1, "fernet_keys": "x", "hash_key": "y"}',
        '{"format": "suara-keys", "version": 1, "fernet_keys": [], "hash_key": "y"}',
    ],
)
def test_key_material_from_bad_json(text: str) -> None:
    with pytest.raises(ValueError):
        KeyMaterial.from_json(text)


def test_key_material_from_json_hides_contents(material: KeyMaterial) -> None:
    broken = material.to_json()[:-3]  # truncated JSON
    with pytest.raises(ValueError) as info:
        KeyMaterial.from_json(broken)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert all(secret not in str(info.value) for secret in secrets_of(material))


def test_key_material_from_settings(material: KeyMaterial) -> None:
    assert key_material_from_settings(None, None) is None
    assert key_material_from_settings("", "  ") is None

    newer = Fernet.generate_key().decode()
    keys = f" {newer} , {material.fernet_keys[0]},"
    parsed = key_material_from_settings(keys, material.hash_key)
    assert parsed == KeyMaterial((newer, material.fernet_keys[0]), material.hash_key)


@pytest.mark.parametrize(
    ("keys", "hash_key", "phrase"),
    [
        ("FERNET", None, "HASH_KEY is not"),
        (None, "HASH", "ENCRYPTION_KEYS is not"),
        ("FERNET,not-a-key", "HASH", "Key 2 of 2"),
        ("FERNET," + "!" * 43 + "=", "HASH", "Key 2 of 2"),
        ("FERNET,FERNET", "HASH", "more than once"),
        ("FERNET", "c2hvcnQ=", "HASH_KEY is not valid"),
        ("FERNET", "not base64 at all!", "HASH_KEY is not valid"),
    ],
)
def test_key_material_from_settings_rejects_malformed(
    material: KeyMaterial, keys: str | None, hash_key: str | None, phrase: str
) -> None:
    def fill(value: str | None) -> str | None:
        if value is None:
            return None
        return value.replace("FERNET", material.fernet_keys[0]).replace("HASH", material.hash_key)

    with pytest.raises(ValueError, match=phrase) as info:
        key_material_from_settings(fill(keys), fill(hash_key))
    message = str(info.value)
    assert message.endswith(".")
    assert all(secret not in message for secret in secrets_of(material))
    assert "not-a-key" not in message and "not base64" not in message


# --------------------------------------------------------------------------- key file


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_created_private(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "data" / "suara.key"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        material = create_key_file(path)
    finally:
        os.umask(old_umask)
    assert mode_of(path) == 0o600
    assert load_key_file(path) == material
    assert [p.name for p in path.parent.iterdir()] == ["suara.key"]  # no temporary left


def test_key_file_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "suara.key"
    material = create_key_file(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        create_key_file(path)
    assert path.read_bytes() == before
    assert load_key_file(path) == material
    assert [p.name for p in tmp_path.iterdir()] == ["suara.key"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_key_file_refused_when_open_to_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "suara.key"
    material = create_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600") as info:
        load_key_file(path)
    assert all(secret not in str(info.value) for secret in secrets_of(material))


def test_key_file_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyMissing):
        load_key_file(tmp_path / "absent.key")


def test_key_file_malformed(tmp_path: Path) -> None:
    path = tmp_path / "suara.key"
    secret_looking = "gAAAA-" + secrets.token_urlsafe(30)
    path.write_text('{"format": "suara-keys", "fernet_keys": ["' + secret_looking)
    path.chmod(0o600)
    with pytest.raises(KeyFileError) as info:
        load_key_file(path)
    assert secret_looking not in str(info.value)

    directory = tmp_path / "dir.key"
    directory.mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        load_key_file(directory)


def test_add_and_retire_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "suara.key"
    first = create_key_file(path)
    token = Keyring(first).encrypt(SECRET_NAME)

    second = add_key_to_file(path)
    assert mode_of(path) == 0o600
    assert second.fernet_keys[1:] == first.fernet_keys
    assert second.fernet_keys[0] not in first.fernet_keys
    assert second.hash_key == first.hash_key
    assert load_key_file(path) == second
    assert Keyring(second).decrypt(token) == SECRET_NAME

    rotated = Keyring(second).rotate(token)
    final = retire_old_keys(path)
    assert final.fernet_keys == second.fernet_keys[:1]
    assert mode_of(path) == 0o600
    assert Keyring(load_key_file(path)).decrypt(rotated) == SECRET_NAME
    assert [p.name for p in tmp_path.iterdir()] == ["suara.key"]

    assert caplog.records  # the steps are logged ...
    for secret in {*secrets_of(first), *secrets_of(second)}:
        assert secret not in caplog.text  # ... without their keys


# --------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0812-3456-7890", "+6281234567890"),
        ("+62 812 3456 7890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("+6281234567890", "+6281234567890"),
        ("812 3456 7890", "+6281234567890"),
        ("(021) 5299-1234", "+622152991234"),
        ("+62 (0)812.3456.7890", "+6281234567890"),
        ("+62 0812 3456 7890", "+6281234567890"),
        ("0062 812 3456 7890", "+6281234567890"),
        ("  0812 3456 789\t", "+628123456789"),
        ("+65 6123 4567", "+6561234567"),
        ("+1 (202) 555-0143", "+12025550143"),
    ],
)
def test_normalise_phone(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


def test_normalise_phone_other_default_country() -> None:
    assert normalise_phone("06 1234 5678", default_country="31") == "+31612345678"


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        ("", "empty"),
        ("+", "empty"),
        ("0812", "too short"),
        ("+62 812", "too short"),
        ("0812-3456-7890-1234", "too long"),
        ("+1234567890123456", "too long"),
        ("0812-ABCD-7890", "letters"),
        ("call me", "letters"),
        ("0812#3456#7890", "only digits"),
        ("+0812345678", "country code"),
        ("٠٨١٢٣٤٥٦٧٨٩٠", "only digits"),
    ],
)
def test_normalise_phone_rejects(raw: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase) as info:
        normalise_phone(raw)
    message = str(info.value)
    assert message.endswith(".")
    assert not raw.strip() or raw.strip() not in message


def test_normalise_phone_bad_default_country() -> None:
    with pytest.raises(ValueError):
        normalise_phone("0812 3456 7890", default_country="+62")


# --------------------------------------------------------------------------- column type


def test_encrypted_column_refuses_sql_comparison() -> None:
    table = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", EncryptedText),
    )
    for make in (
        lambda c: c == "x",
        lambda c: c != "x",
        lambda c: "x" == c,  # noqa: SIM300 - the reflected form must refuse too
        lambda c: c.in_(["x"]),
        lambda c: c.like("x%"),
        lambda c: c.startswith("x"),
    ):
        with pytest.raises(TypeError, match="blind-index"):
            make(table.c.name)
    # NULL tests and ordering still compile.
    assert "IS NULL" in str(table.c.name.is_(None))
    assert "IS NULL" in str(table.c.name == None)  # noqa: E711
    assert "IS NOT NULL" in str(table.c.name.is_not(None))
    assert "DESC" in str(table.c.name.desc())


def test_bind_refuses_non_text(keyring: Keyring) -> None:
    with pytest.raises(TypeError):
        EncryptedText().process_bind_param(123, sa.Dialect())  # type: ignore[arg-type]


def test_encrypted_columns_finds_every_one() -> None:
    metadata = sa.MetaData()
    people = sa.Table(
        "people",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", EncryptedText),
        sa.Column("phone", EncryptedText),
        sa.Column("phone_index", sa.String(64)),
    )
    sa.Table("plain", metadata, sa.Column("id", sa.Integer, primary_key=True))
    found = encrypted_columns(metadata)
    assert list(found) == [people]
    assert [c.name for c in found[people]] == ["name", "phone"]


# --------------------------------------------------------------------------- databases


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'suara.db'}"
        engine = create_async_engine(url, hide_parameters=True)
    else:
        engine = create_async_engine(PG_URL, hide_parameters=True, connect_args={"timeout": 5})
        try:
            async with engine.connect():
                pass
        except Exception as error:
            await engine.dispose()
            reason = f"PostgreSQL at {PG_URL} is not reachable ({type(error).__name__})"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{reason}, and CI=true requires it.")
            pytest.skip(f"{reason}; set SUARA_TEST_PG_URL or start PostgreSQL to run this.")
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def tables(engine: AsyncEngine) -> AsyncIterator[tuple[sa.MetaData, sa.Table, sa.Table]]:
    """Uniquely named tables, so parallel runs on a shared PostgreSQL do not collide."""
    suffix = secrets.token_hex(4)
    metadata = sa.MetaData()
    customers = sa.Table(
        f"crypto_customer_{suffix}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", EncryptedText),
        sa.Column("phone", EncryptedText, nullable=True),
        sa.Column("phone_index", sa.String(64)),
        sa.Column("note", sa.Text),
    )
    answers = sa.Table(
        f"crypto_answer_{suffix}",
        metadata,
        sa.Column("session_id", sa.Integer, primary_key=True),
        sa.Column("question", sa.String(32), primary_key=True),
        sa.Column("text", EncryptedText),
    )
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield metadata, customers, answers
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)


async def test_encrypted_text_core_round_trip(
    engine: AsyncEngine, tables: tuple[sa.MetaData, sa.Table, sa.Table], keyring: Keyring
) -> None:
    _, customers, _ = tables
    phone = normalise_phone("0812-3456-7890")
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(customers),
            [
                {
                    "id": 1,
                    "name": SECRET_NAME,
                    "phone": phone,
                    "phone_index": keyring.blind_index(phone),
                    "note": "plain",
                },
                {"id": 2, "name": "Budi", "phone": None, "phone_index": None, "note": None},
            ],
        )
        await conn.execute(
            sa.update(customers).where(customers.c.id == 2).values(name=SECRET_ANSWER)
        )

    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(customers).order_by(customers.c.id))).all()
        assert [(r.id, r.name, r.phone) for r in rows] == [
            (1, SECRET_NAME, phone),
            (2, SECRET_ANSWER, None),
        ]
        # Look-up through the blind index.
        found = await conn.scalar(
            sa.select(customers.c.name).where(
                customers.c.phone_index == keyring.blind_index(normalise_phone("+62 812 3456 7890"))
            )
        )
        assert found == SECRET_NAME
        # What the database holds is a token, not the text.
        raw = (
            await conn.execute(sa.text(f"SELECT name, phone FROM {customers.name} ORDER BY id"))
        ).all()
        for value in (raw[0].name, raw[0].phone, raw[1].name):
            assert value.startswith("gAAAAA")
        assert SECRET_NAME not in raw[0].name and phone not in raw[0].phone
        assert raw[1].phone is None
        assert await conn.scalar(sa.select(sa.func.count()).where(customers.c.phone.is_(None))) == 1

    # Reading with another key fails loudly rather than returning garbage.
    with using_keyring(Keyring(generate_key_material())):
        async with engine.connect() as conn:
            with pytest.raises(WrongKey):
                (await conn.execute(sa.select(customers.c.name))).all()


async def test_encrypted_text_orm(engine: AsyncEngine, keyring: Keyring) -> None:
    suffix = secrets.token_hex(4)

    class Base(DeclarativeBase):
        pass

    class Staff(Base):
        __tablename__ = f"crypto_staff_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        totp_secret: Mapped[str | None] = mapped_column(EncryptedText)

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            staff = Staff(id=7, totp_secret="JBSWY3DPEHPK3PXP")
            session.add(staff)
            await session.commit()
            staff.totp_secret = "KRSXG5CTMVRXEZLU"
            await session.commit()
        async with AsyncSession(engine) as session:
            loaded = await session.get(Staff, 7)
            assert loaded is not None and loaded.totp_secret == "KRSXG5CTMVRXEZLU"
            await session.delete(loaded)
            await session.commit()
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)


async def test_no_keyring_writes_nothing(
    engine: AsyncEngine, tables: tuple[sa.MetaData, sa.Table, sa.Table]
) -> None:
    _, customers, _ = tables
    with using_keyring(None):
        async with engine.begin() as conn:
            with pytest.raises(sa.exc.StatementError) as info:
                await conn.execute(sa.insert(customers).values(id=1, name=SECRET_NAME))
    assert isinstance(info.value.orig, KeyMissing)
    assert SECRET_NAME not in str(info.value)  # engines are built with hide_parameters=True
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(customers)) == 0


def database_bytes(directory: Path, name: str) -> bytes:
    """The database file with its journal or WAL, where a leak could also hide."""
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.name.startswith(name))


async def test_sqlite_file_holds_no_plaintext(tmp_path: Path, keyring: Keyring) -> None:
    db = tmp_path / "raw.db"
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}", hide_parameters=True)
    metadata = sa.MetaData()
    table = sa.Table(
        "answers",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("text", EncryptedText),
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(sa.insert(table).values(id=1, text=SECRET_ANSWER))
        async with engine.connect() as conn:
            assert await conn.scalar(sa.select(table.c.text)) == SECRET_ANSWER
    finally:
        await engine.dispose()

    data = database_bytes(tmp_path, "raw.db")
    assert b"gAAAAA" in data
    for needle in (SECRET_ANSWER, "Sudirman", "ramah"):
        assert needle.encode() not in data
        assert needle.encode("utf-16-le") not in data


async def test_rotate_all(
    engine: AsyncEngine,
    tables: tuple[sa.MetaData, sa.Table, sa.Table],
    material: KeyMaterial,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    metadata, customers, answers = tables
    old = Keyring(material)
    with using_keyring(old):
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(customers),
                [
                    {
                        "id": i,
                        "name": f"{SECRET_NAME} {i}",
                        "phone": None if i % 2 else f"+62812000{i:04d}",
                        "note": f"plain {i}",
                    }
                    for i in range(1, 8)
                ],
            )
            await conn.execute(
                sa.insert(answers),
                [
                    {"session_id": s, "question": q, "text": f"{SECRET_ANSWER} {s}{q}"}
                    for s in (1, 2, 3)
                    for q in ("q1", "q2")
                ],
            )
        # A value already written under the new key must not be counted.
        new_key = Fernet.generate_key().decode()
        both = Keyring(KeyMaterial((new_key, *material.fernet_keys), material.hash_key))
        with using_keyring(both):
            async with engine.begin() as conn:
                await conn.execute(
                    sa.insert(answers).values(session_id=4, question="q1", text="fresh")
                )

    async with engine.begin() as conn:
        before = await conn.scalar(sa.select(sa.type_coerce(customers.c.name, sa.Text)))
        count = await rotate_all(conn, metadata, both, batch=2)
    assert count == 7 + 3 + 6  # names, non-null phones, old answers; None and "fresh" skipped
    assert "Re-encrypted" in caplog.text

    newest_only = Keyring(KeyMaterial((new_key,), material.hash_key))
    with using_keyring(newest_only):
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(customers).order_by(customers.c.id))).all()
            assert [r.name for r in rows] == [f"{SECRET_NAME} {i}" for i in range(1, 8)]
            assert [r.phone for r in rows] == [
                None if i % 2 else f"+62812000{i:04d}" for i in range(1, 8)
            ]
            assert [r.note for r in rows] == [f"plain {i}" for i in range(1, 8)]
            texts = (
                (
                    await conn.execute(
                        sa.select(answers.c.text).order_by(answers.c.session_id, answers.c.question)
                    )
                )
                .scalars()
                .all()
            )
            assert texts == [f"{SECRET_ANSWER} {s}{q}" for s in (1, 2, 3) for q in ("q1", "q2")] + [
                "fresh"
            ]
            after = await conn.scalar(sa.select(sa.type_coerce(customers.c.name, sa.Text)))
            assert after != before  # really rewritten, not double-encrypted
            assert newest_only.decrypt(after) == f"{SECRET_NAME} 1"

    async with engine.begin() as conn:
        assert await rotate_all(conn, metadata, newest_only) == 0  # idempotent

    for secret in (*secrets_of(material), new_key, SECRET_NAME, SECRET_ANSWER):
        assert secret not in caplog.text


async def test_rotate_all_stops_on_unreadable_value(
    engine: AsyncEngine, tables: tuple[sa.MetaData, sa.Table, sa.Table], keyring: Keyring
) -> None:
    metadata, customers, _ = tables
    stranger = Keyring(generate_key_material())
    async with engine.begin() as conn:
        await conn.execute(sa.insert(customers).values(id=1, name=SECRET_NAME))
        with using_keyring(stranger):
            await conn.execute(sa.insert(customers).values(id=2, name=SECRET_ANSWER))
    async with engine.connect() as conn:
        with pytest.raises(WrongKey, match=customers.name) as info:
            await rotate_all(conn, metadata, keyring)
        await conn.rollback()
    assert SECRET_NAME not in str(info.value) and SECRET_ANSWER not in str(info.value)


async def test_rotate_all_needs_a_primary_key(engine: AsyncEngine, keyring: Keyring) -> None:
    metadata = sa.MetaData()
    sa.Table(f"crypto_nopk_{secrets.token_hex(4)}", metadata, sa.Column("v", EncryptedText))
    async with engine.connect() as conn:
        with pytest.raises(ValueError, match="primary key"):
            await rotate_all(conn, metadata, keyring)
