"""Encryption at rest for personal data (UU PDP No. 27/2022).

Names, phones, free-text answers, TOTP secrets and invitation tokens are stored as Fernet
tokens through the `EncryptedText` column type, so nothing personal reaches the database file
in clear text. Equality look-ups (phones, invitation tokens) go through `Keyring.blind_index`,
a keyed HMAC, because Fernet tokens are randomised and cannot be compared in SQL.

Keys come from configuration (`ENCRYPTION_KEYS` and `HASH_KEY`) or, for the embedded SQLite
default, from a key file created on first run with owner-only permissions. Rotation is
`add_key_to_file` (or a new key at the head of `ENCRYPTION_KEYS`), then `rotate_all`, then
`retire_old_keys`. The hash key does not rotate: every blind index depends on it.

No exception raised here ever carries key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import operators
from sqlalchemy.types import Concatenable, Text, TypeDecorator

__all__ = [
    "CryptoError",
    "EncryptedText",
    "KeyFileError",
    "KeyMaterial",
    "KeyMissing",
    "Keyring",
    "WrongKey",
    "add_key_to_file",
    "create_key_file",
    "encrypted_columns",
    "generate_key_material",
    "get_keyring",
    "key_material_from_settings",
    "load_key_file",
    "normalise_phone",
    "retire_old_keys",
    "rotate_all",
    "set_keyring",
    "using_keyring",
]

log = logging.getLogger(__name__)

_KEY_FILE_FORMAT = "suara-keys"
_KEY_FILE_VERSION = 1
_FERNET_KEY_RE = re.compile(r"[A-Za-z0-9_-]{43}=")
_HASH_KEY_RE = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_MIN_HASH_KEY_BYTES = 32
_CANARY_LABEL = "suara-key-check-v1"


# --------------------------------------------------------------------------- errors


class CryptoError(Exception):
    """Base class, so start-up can catch every key problem in one place."""


class KeyMissing(CryptoError):
    """No key is available, so encrypted data can be neither read nor written."""


class WrongKey(CryptoError):
    """The configured keys cannot open data that this database holds."""


class KeyFileError(CryptoError):
    """The key file exists but is unsafe or unreadable."""


# --------------------------------------------------------------------------- key material


def _is_fernet_key(key: object) -> bool:
    if not isinstance(key, str) or not _FERNET_KEY_RE.fullmatch(key):
        return False
    try:
        Fernet(key)
    except (ValueError, binascii.Error):
        return False
    return True


def _decode_hash_key(key: object) -> bytes | None:
    """Return the raw HMAC key, or None when `key` is not url-safe base64 of 32+ bytes."""
    if not isinstance(key, str) or not _HASH_KEY_RE.fullmatch(key):
        return None
    try:
        raw = base64.b64decode(key + "=" * (-len(key) % 4), altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if len(raw) >= _MIN_HASH_KEY_BYTES else None


def _check_keys(
    keys: tuple[str, ...],
    hash_key: object,
    *,
    keys_name: str = "the Fernet keys",
    hash_name: str = "The hash key",
) -> None:
    """The one check of key material, from a key file or the settings; the messages name
    where the keys came from and never show them."""
    if not keys:
        raise ValueError(f"At least one Fernet key is needed in {keys_name}.")
    for number, key in enumerate(keys, start=1):
        if not _is_fernet_key(key):
            raise ValueError(
                f"Key {number} of {len(keys)} in {keys_name} is not a valid Fernet key: "
                "it must be 32 bytes in url-safe base64 (44 characters ending in '=')."
            )
    if len(set(keys)) != len(keys):
        raise ValueError(f"The same key is listed more than once in {keys_name}.")
    if _decode_hash_key(hash_key) is None:
        raise ValueError(
            f"{hash_name} is not valid: it must be at least {_MIN_HASH_KEY_BYTES} random "
            "bytes in url-safe base64."
        )


@dataclass(frozen=True, repr=False)
class KeyMaterial:
    """Every secret the keyring needs; its repr never shows them, so logging it is safe."""

    fernet_keys: tuple[str, ...]  # newest first
    hash_key: str

    def __post_init__(self) -> None:
        keys = self.fernet_keys
        if isinstance(keys, str) or not isinstance(keys, tuple | list):
            raise ValueError("The Fernet keys must be given as a list, newest first.")
        object.__setattr__(self, "fernet_keys", tuple(keys))
        _check_keys(self.fernet_keys, self.hash_key)

    def __repr__(self) -> str:
        return f"KeyMaterial(<{len(self.fernet_keys)} Fernet key(s) and a hash key, hidden>)"

    def to_json(self) -> str:
        """Serialise for the key file."""
        document = {
            "format": _KEY_FILE_FORMAT,
            "version": _KEY_FILE_VERSION,
            "fernet_keys": list(self.fernet_keys),
            "hash_key": self.hash_key,
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyMaterial:
        """Parse a key file; ValueError (without its contents) when it is malformed."""
        try:
            document = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            # The decoder's exception keeps the whole document; never chain it.
            raise ValueError("The key data is not valid JSON.") from None
        if not isinstance(document, dict) or document.get("format") != _KEY_FILE_FORMAT:
            raise ValueError("The key data is not a Suara key file.")
        if document.get("version") != _KEY_FILE_VERSION:
            raise ValueError(
                f"The key file has version {document.get('version')!r}; "
                f"this Suara reads version {_KEY_FILE_VERSION}."
            )
        keys = document.get("fernet_keys")
        if not isinstance(keys, list):
            raise ValueError("The key data has no list of Fernet keys.")
        return cls(fernet_keys=tuple(keys), hash_key=document.get("hash_key"))


def generate_key_material() -> KeyMaterial:
    """Fresh keys for a new installation."""
    return KeyMaterial(
        fernet_keys=(Fernet.generate_key().decode("ascii"),),
        hash_key=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii"),
    )


def key_material_from_settings(keys: str | None, hash_key: str | None) -> KeyMaterial | None:
    """Parse ENCRYPTION_KEYS (comma-separated, newest first) and HASH_KEY.

    Returns None when neither is set, so the caller falls back to the key file.
    """
    key_list = [part.strip() for part in (keys or "").split(",") if part.strip()]
    hash_key = (hash_key or "").strip()
    if not key_list and not hash_key:
        return None
    if not key_list:
        raise ValueError("HASH_KEY is set but ENCRYPTION_KEYS is not; set both or neither.")
    if not hash_key:
        raise ValueError("ENCRYPTION_KEYS is set but HASH_KEY is not; set both or neither.")
    _check_keys(tuple(key_list), hash_key, keys_name="ENCRYPTION_KEYS", hash_name="HASH_KEY")
    return KeyMaterial(fernet_keys=tuple(key_list), hash_key=hash_key)


# --------------------------------------------------------------------------- key file


def _fsync_dir(directory: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_private_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write `data` so that `path` appears complete, with mode 0600, or not at all."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    # The mode is given at creation, so the file is never readable by others, even briefly.
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, and fails rather than replace an existing file
            except FileExistsError:
                raise FileExistsError(
                    f"The key file {path} already exists; it was left unchanged."
                ) from None
            finally:
                tmp.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load_key_file(path: str | os.PathLike[str]) -> KeyMaterial:
    """Read the key file, refusing one that other users could read or change."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyMissing(f"There is no encryption key file at {path}.") from None
    except OSError as error:
        raise KeyFileError(
            f"The encryption key file {path} cannot be opened ({error.strerror})."
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"The encryption key path {path} is not a regular file.")
        if os.name != "nt" and info.st_mode & 0o077:
            raise KeyFileError(
                f"The encryption key file {path} is open to other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); restrict it with chmod 600."
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
    finally:
        os.close(fd)
    try:
        return KeyMaterial.from_json(data)
    except ValueError as error:
        raise KeyFileError(f"The encryption key file {path} is unusable: {error}") from None


def create_key_file(path: str | os.PathLike[str]) -> KeyMaterial:
    """Generate keys for a first run; FileExistsError rather than replace existing keys."""
    material = generate_key_material()
    _write_private_file(Path(path), material.to_json().encode("ascii"), overwrite=False)
    log.info("Created a new encryption key file at %s.", path)
    return material


def add_key_to_file(path: str | os.PathLike[str]) -> KeyMaterial:
    """First step of rotation: a new newest key, the old ones kept so old data still opens."""
    current = load_key_file(path)
    material = KeyMaterial(
        fernet_keys=(Fernet.generate_key().decode("ascii"), *current.fernet_keys),
        hash_key=current.hash_key,
    )
    _write_private_file(Path(path), material.to_json().encode("ascii"), overwrite=True)
    log.info("Added a new encryption key to %s; %d key(s) now.", path, len(material.fernet_keys))
    return material


def retire_old_keys(path: str | os.PathLike[str]) -> KeyMaterial:
    """Last step of rotation, only after `rotate_all`: keep the newest key alone."""
    current = load_key_file(path)
    material = KeyMaterial(fernet_keys=current.fernet_keys[:1], hash_key=current.hash_key)
    _write_private_file(Path(path), material.to_json().encode("ascii"), overwrite=True)
    log.info("Retired %d old encryption key(s) in %s.", len(current.fernet_keys) - 1, path)
    return material


# --------------------------------------------------------------------------- keyring


class Keyring:
    """Encrypts with the newest key, decrypts with any, and computes blind indexes."""

    def __init__(self, material: KeyMaterial) -> None:
        self._fernets = tuple(Fernet(key) for key in material.fernet_keys)
        self._multi = MultiFernet(self._fernets)
        hash_key = _decode_hash_key(material.hash_key)
        assert hash_key is not None  # KeyMaterial validated it
        self._hash_key = hash_key

    def __repr__(self) -> str:
        return f"Keyring(<{len(self._fernets)} Fernet key(s), hidden>)"

    def encrypt(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"Only text can be encrypted, not {type(text).__name__}.")
        return self._fernets[0].encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            data = self._multi.decrypt(_token_bytes(token))
        except InvalidToken:
            raise WrongKey(
                "A stored value cannot be decrypted with the configured encryption keys."
            ) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("A decrypted value is not valid UTF-8 text.") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt under the newest key (always a new token)."""
        try:
            return self._multi.rotate(_token_bytes(token)).decode("ascii")
        except InvalidToken:
            raise WrongKey(
                "A stored value cannot be decrypted with the configured encryption keys."
            ) from None

    def needs_rotation(self, token: str) -> bool:
        """True when `token` opens only with an older key; WrongKey when it opens with none."""
        return self._rotated_or_none(token) is not None

    def _rotated_or_none(self, token: str) -> str | None:
        raw = _token_bytes(token)
        with contextlib.suppress(InvalidToken):
            self._fernets[0].decrypt(raw)
            return None
        return self.rotate(token)

    def blind_index(self, value: str) -> str:
        """HMAC-SHA256 hex of `value`; the caller normalises first (e.g. `normalise_phone`)."""
        if not isinstance(value, str):
            raise TypeError(f"A blind index is computed from text, not {type(value).__name__}.")
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def _canary_text(self) -> str:
        # Binds the hash key too: a wrong HASH_KEY would silently break every phone look-up.
        return f"{_CANARY_LABEL}:{self.blind_index(_CANARY_LABEL)}"

    def make_canary(self) -> str:
        """A token storage keeps so start-up can prove these keys open this database."""
        return self.encrypt(self._canary_text())

    def check_canary(self, token: str) -> None:
        """WrongKey unless `token` came from `make_canary` with this Fernet and hash key."""
        try:
            text = self.decrypt(token)
        except CryptoError:
            raise WrongKey(
                "The configured encryption key does not open this database; "
                "start-up stops rather than write data that could not be read back."
            ) from None
        if not hmac.compare_digest(text.encode("utf-8"), self._canary_text().encode("utf-8")):
            raise WrongKey(
                "The configured hash key does not match this database; "
                "start-up stops rather than break phone and invitation look-ups."
            )


def _token_bytes(token: str | bytes) -> bytes:
    if isinstance(token, bytes):
        return token
    if isinstance(token, str):
        try:
            return token.encode("ascii")
        except UnicodeEncodeError:
            raise WrongKey("A stored value is not an encrypted token.") from None
    raise TypeError(f"An encrypted token is text, not {type(token).__name__}.")


_active_keyring: Keyring | None = None


def set_keyring(keyring: Keyring | None) -> None:
    """Install the keyring the column types use; None removes it."""
    global _active_keyring
    _active_keyring = keyring


def get_keyring() -> Keyring:
    """The active keyring; KeyMissing when none is set, so nothing is written in clear text."""
    if _active_keyring is None:
        raise KeyMissing(
            "No encryption key is configured, so encrypted columns can be neither read nor written."
        )
    return _active_keyring


@contextlib.contextmanager
def using_keyring(keyring: Keyring | None) -> Iterator[Keyring | None]:
    """Install a keyring for a block and restore the previous one (tests, CLI commands)."""
    previous = _active_keyring
    set_keyring(keyring)
    try:
        yield keyring
    finally:
        set_keyring(previous)


# --------------------------------------------------------------------------- column type


def _is_null(value: Any) -> bool:
    return value is None or isinstance(value, sa.sql.elements.Null)


class EncryptedText(TypeDecorator[str]):
    """Text stored as a Fernet token with the active keyring.

    SQL comparisons on it (==, IN, LIKE, ...) raise TypeError, because a randomised token never
    equals a freshly encrypted one; compare a blind-index column instead. IS NULL still works.
    """

    impl = Text
    cache_ok = True

    class comparator_factory(TypeDecorator.Comparator[str], Concatenable.Comparator[str]):
        def _refuse(self, op: Any, others: tuple[Any, ...]) -> None:
            if operators.is_comparison(op) and not all(_is_null(other) for other in others):
                raise TypeError(
                    "Encrypted columns cannot be compared in SQL; "
                    "look values up through a blind-index column instead."
                )

        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            self._refuse(op, other)
            return super().operate(op, *other, **kwargs)

        def reverse_operate(self, op: Any, other: Any, **kwargs: Any) -> Any:
            self._refuse(op, (other,))
            return super().reverse_operate(op, other, **kwargs)

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"An encrypted column stores text, not {type(value).__name__}.")
        return get_keyring().encrypt(value)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return get_keyring().decrypt(value)


# --------------------------------------------------------------------------- rotation


def encrypted_columns(metadata: sa.MetaData) -> dict[sa.Table, list[sa.Column[Any]]]:
    """Every EncryptedText column, by table, so rotation cannot forget one."""
    found: dict[sa.Table, list[sa.Column[Any]]] = {}
    for table in metadata.sorted_tables:
        columns = [column for column in table.columns if isinstance(column.type, EncryptedText)]
        if columns:
            found[table] = columns
    return found


async def rotate_all(
    connection: AsyncConnection, metadata: sa.MetaData, keyring: Keyring, batch: int = 500
) -> int:
    """Re-encrypt every value not yet under the newest key; returns how many were rewritten.

    Values already under the newest key are left alone, so an interrupted run can simply be
    repeated. Runs in the caller's transaction; commit it before retiring old keys.
    """
    if batch < 1:
        raise ValueError("The rotation batch size must be at least 1.")
    total = 0
    for table, columns in encrypted_columns(metadata).items():
        count = await _rotate_table(connection, table, columns, keyring, batch)
        if count:
            log.info("Re-encrypted %d value(s) in table %s.", count, table.name)
        total += count
    return total


async def _rotate_table(
    connection: AsyncConnection,
    table: sa.Table,
    columns: list[sa.Column[Any]],
    keyring: Keyring,
    batch: int,
) -> int:
    pk = list(table.primary_key.columns)
    if not pk:
        raise ValueError(
            f"Table {table.name} has no primary key, so its encrypted columns cannot be rotated."
        )
    encrypted_names = {column.key for column in columns}
    if any(column.key in encrypted_names for column in pk):
        raise ValueError(f"Table {table.name} has an encrypted primary key, which is unsupported.")

    # type_coerce bypasses EncryptedText both ways: read raw tokens, write tokens verbatim.
    raw = [sa.type_coerce(column, Text).label(f"_enc_{i}") for i, column in enumerate(columns)]
    where_pk = [column == sa.bindparam(f"_pk_{j}") for j, column in enumerate(pk)]
    updates = [
        sa.update(table)
        .where(*where_pk)
        .values({column.key: sa.bindparam("_new_token", type_=Text)})
        for column in columns
    ]

    rewritten = 0
    last: tuple[Any, ...] | None = None
    while True:
        query = sa.select(*pk, *raw).order_by(*pk).limit(batch)
        if last is not None:
            bound = [sa.literal(value, column.type) for value, column in zip(last, pk, strict=True)]
            query = query.where(
                pk[0] > bound[0] if len(pk) == 1 else sa.tuple_(*pk) > sa.tuple_(*bound)
            )
        rows = (await connection.execute(query)).all()
        if not rows:
            break
        pending: list[list[dict[str, Any]]] = [[] for _ in columns]
        for row in rows:
            keys = {f"_pk_{j}": row[j] for j in range(len(pk))}
            for i, column in enumerate(columns):
                token = row[len(pk) + i]
                if token is None:
                    continue
                try:
                    new_token = keyring._rotated_or_none(token)
                except WrongKey:
                    raise WrongKey(
                        f"A value in {table.name}.{column.name} cannot be decrypted with any "
                        "configured key; rotation stopped."
                    ) from None
                if new_token is not None:
                    pending[i].append({**keys, "_new_token": new_token})
        for statement, params in zip(updates, pending, strict=True):
            if params:
                await connection.execute(statement, params)
                rewritten += len(params)
        if len(rows) < batch:
            break
        last = tuple(rows[-1][: len(pk)])
    return rewritten


# --------------------------------------------------------------------------- phones

_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")
_DIGITS = re.compile(r"[0-9]+")


def normalise_phone(raw: str, default_country: str = "62") -> str:
    """Canonical "+<country><number>" form, so the same phone always has the same blind index.

    "0812-3456-7890", "+62 812 3456 7890", "6281234567890" and "812 3456 7890" all become
    "+6281234567890". Raises ValueError, without echoing the input, for anything else.
    """
    if not isinstance(raw, str):
        raise TypeError(f"A phone number is text, not {type(raw).__name__}.")
    if not re.fullmatch(r"[1-9][0-9]{0,2}", default_country):
        raise ValueError("The default country must be a calling code of 1 to 3 digits, like 62.")
    text = raw.strip().replace("(0)", "")
    compact = _PHONE_SEPARATORS.sub("", text)
    if compact.startswith("+"):
        digits, international = compact[1:], True
    elif compact.startswith("00"):
        digits, international = compact[2:], True
    else:
        digits, international = compact, False

    if not digits:
        raise ValueError("The phone number is empty.")
    if not _DIGITS.fullmatch(digits):
        if any(char.isalpha() for char in digits):
            raise ValueError("A phone number cannot contain letters.")
        raise ValueError(
            "A phone number may contain only digits, spaces, hyphens, dots, brackets "
            "and a leading plus sign."
        )

    if international:
        full = digits
    elif digits.startswith("0"):
        full = default_country + digits[1:]
    elif digits.startswith(default_country):
        full = digits
    else:
        full = default_country + digits

    if full.startswith(default_country + "0"):  # "+62 0812 ..." is a common slip
        full = default_country + full[len(default_country) + 1 :]
    if full.startswith("0"):
        raise ValueError("The phone number's country code cannot start with 0.")

    if full.startswith(default_country):
        national = len(full) - len(default_country)
        if national < 7:
            raise ValueError("The phone number is too short.")
        if national > 12:
            raise ValueError("The phone number is too long.")
    elif len(full) < 8:
        raise ValueError("The phone number is too short.")
    if len(full) > 15:
        raise ValueError("The phone number is too long.")
    return "+" + full
