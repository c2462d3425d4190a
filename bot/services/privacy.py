"""The privacy notice: a versioned file the bank edits, in every supported language."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import ConfigError
from bot.services.i18n import DEFAULT_LOCALE, LOCALES


@dataclass(frozen=True)
class PrivacyNotice:
    version: str
    texts: dict[str, str]

    def text(self, locale: str) -> str:
        return self.texts.get(locale) or self.texts[DEFAULT_LOCALE]


def load_notice(path: Path) -> PrivacyNotice:
    """Read the notice; any problem stops start-up with one sentence naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError(f"The privacy notice file {path} cannot be read.") from None
    except yaml.YAMLError:
        raise ConfigError(f"The privacy notice file {path} is not valid YAML.") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), dict):
        raise ConfigError(
            f"The privacy notice file {path} needs a version and a text per language."
        )
    version = str(data.get("version") or "").strip()
    texts = {str(k): str(v).strip() for k, v in data["text"].items() if v}
    missing = [locale for locale in LOCALES if locale not in texts]
    if not version or len(version) > 32:
        raise ConfigError(
            f"The privacy notice file {path} needs a version of at most 32 characters."
        )
    if missing:
        raise ConfigError(f"The privacy notice file {path} has no text for: {', '.join(missing)}.")
    return PrivacyNotice(version, texts)
