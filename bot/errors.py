"""Errors raised by Suara's services.

SuaraError
├── ConfigError          a setting is missing or malformed; stops start-up
└── ServiceError         a request the service refuses; shown to the user as one sentence
    ├── Duplicate        the same Telegram update arrived again; nothing to do
    ├── Conflict         another update changed the same session first; retry
    ├── StaleAction      a button press that no longer matches the stored state
    └── NotFound         a deep link, survey or branch that does not exist
"""

from __future__ import annotations


class SuaraError(Exception):
    """Base of every error Suara raises on purpose."""


class ConfigError(SuaraError):
    """A setting is missing or malformed; the message is one sentence for the operator."""


class ServiceError(SuaraError):
    """A refused request; handlers turn it into a localised sentence."""


class Duplicate(ServiceError):
    """The update was processed before (Telegram redelivers webhooks)."""


class Conflict(ServiceError):
    """Optimistic concurrency lost the race; the caller retries with fresh state."""


class StaleAction(ServiceError):
    """A press for a question that is no longer current, or a forged press."""


class NotFound(ServiceError):
    """The thing a link or command names does not exist."""
