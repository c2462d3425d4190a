"""Which encryption keys this process uses, and the proof that they open this database.

Keys come from ENCRYPTION_KEYS/HASH_KEY, or else from the key file (created, owner-only, only
for a brand-new database). A canary stored in the database is checked at start-up: with a
missing or wrong key the bot refuses to start rather than write data it cannot read back.
"""

from __future__ import annotations

from bot.errors import ConfigError
from bot.wiring.config import Settings
from storage import meta
from storage.crypto import (
    CryptoError,
    KeyMaterial,
    KeyMissing,
    Keyring,
    WrongKey,
    add_key_to_file,
    create_key_file,
    key_material_from_settings,
    load_key_file,
    retire_old_keys,
    rotate_all,
    set_keyring,
)
from storage.db import Database
from storage.models import metadata


def _material(settings: Settings, database_is_new: bool) -> KeyMaterial:
    try:
        configured = key_material_from_settings(
            settings.encryption_keys.get_secret_value() if settings.encryption_keys else None,
            settings.hash_key.get_secret_value() if settings.hash_key else None,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if configured is not None:
        return configured
    try:
        return load_key_file(settings.key_file)
    except KeyMissing:
        if not database_is_new:
            raise ConfigError(
                f"The encryption key file {settings.key_file} is missing, but the database holds "
                "encrypted data: restore the key file or set ENCRYPTION_KEYS and HASH_KEY."
            ) from None
        return create_key_file(settings.key_file)
    except CryptoError as error:
        raise ConfigError(str(error)) from None


def _source(settings: Settings) -> str:
    """Where this process's keys came from, for the operator to check."""
    if settings.encryption_keys is not None or settings.hash_key is not None:
        return "ENCRYPTION_KEYS and HASH_KEY"
    return f"the key file {settings.key_file}"


async def activate(settings: Settings, db: Database) -> Keyring:
    """Load the keys, prove they open this database, and make them the active keyring."""
    async with db.transaction() as connection:
        canary = await meta.get(connection, meta.CANARY)
    keyring = Keyring(_material(settings, database_is_new=canary is None))
    if canary is None:
        async with db.transaction() as connection:
            await meta.put(connection, meta.CANARY, keyring.make_canary())
    else:
        try:
            keyring.check_canary(canary)
        except WrongKey as error:
            source = _source(settings)
            raise ConfigError(f"{str(error).rstrip('.')} (keys from {source}).") from None
    set_keyring(keyring)
    return keyring


async def rotate(settings: Settings, db: Database) -> int:
    """Re-encrypt everything under a new newest key; returns how many values were rewritten.

    With a key file a new key is added, everything re-encrypted and committed, and only then
    are the old keys retired. With ENCRYPTION_KEYS the operator lists the new key first
    (keeping the old ones) before running this, and drops the old ones after.
    """
    from_file = settings.encryption_keys is None
    await activate(settings, db)  # proves the current keys open this database
    if from_file:
        try:
            keyring = Keyring(add_key_to_file(settings.key_file))
        except CryptoError as error:
            raise ConfigError(str(error)) from None
    else:
        keyring = Keyring(_material(settings, database_is_new=False))
    async with db.transaction() as connection:
        count = await rotate_all(connection, metadata, keyring)
        await meta.put(connection, meta.CANARY, keyring.make_canary())
    if from_file:
        retire_old_keys(settings.key_file)
    set_keyring(keyring)
    return count
