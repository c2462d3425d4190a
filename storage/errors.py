"""Errors the storage layer raises on purpose.

StorageError
├── VersionConflict    a versioned update found the row changed by someone else
└── UnitOfWorkError    a unit of work would write after a write it committed alone
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of storage errors."""


class VersionConflict(StorageError):
    """Optimistic concurrency lost: reload and try again."""


class UnitOfWorkError(StorageError):
    """A programming error: see storage.unit."""
