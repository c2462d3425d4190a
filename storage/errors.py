"""Errors the storage layer raises on purpose.

StorageError
├── VersionConflict    a versioned update found the row changed by someone else
└── SchemaOutOfDate    the database is not at the migration head the code expects
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of storage errors."""


class VersionConflict(StorageError):
    """Optimistic concurrency lost: reload and try again."""


class SchemaOutOfDate(StorageError):
    """The database schema is older or newer than this code."""
