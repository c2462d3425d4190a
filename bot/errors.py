"""Errors raised by Suara's own code on purpose.

SuaraError
└── ConfigError          a setting is missing or malformed; stops start-up with one sentence
"""

from __future__ import annotations


class SuaraError(Exception):
    """Base of every error Suara raises on purpose."""


class ConfigError(SuaraError):
    """A setting is missing or malformed; the message is one sentence for the operator."""
